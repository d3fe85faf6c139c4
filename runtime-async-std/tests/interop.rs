//! A tokio node and an async-std node talk over real loopback TCP: every two-runtime
//! scenario of `timed_runtime::conformance`, with each runtime in each role. The test body
//! runs on async-std; the tokio nodes on their own tokio runtime (`Tokio::on`).

use std::time::Duration;
use timed_async_std::AsyncStd;
use timed_tokio::Tokio;

#[test]
fn tokio_and_async_std_nodes_interoperate() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let t = Tokio::on(tokio_rt.handle().clone());
    async_std::task::block_on(timed_runtime::conformance::across(&t, &AsyncStd::default()));
    tokio_rt.shutdown_timeout(Duration::from_secs(2));
}
