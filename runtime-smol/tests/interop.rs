//! A tokio node and a smol node talk over real loopback TCP: every two-runtime scenario of
//! `timed_runtime::conformance`, with each runtime in each role. The test body runs on smol;
//! the tokio nodes run on their own tokio runtime (`Tokio::on`), which the handles reach from
//! smol because the driver's channels need no runtime.

use std::time::Duration;
use timed_smol::Smol;
use timed_tokio::Tokio;

#[test]
fn tokio_and_smol_nodes_interoperate() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let t = Tokio::on(tokio_rt.handle().clone());
    smol::block_on(timed_runtime::conformance::across(&t, &Smol::default()));
    tokio_rt.shutdown_timeout(Duration::from_secs(2));
}
