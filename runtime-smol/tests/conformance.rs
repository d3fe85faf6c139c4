//! The shared conformance scenarios (`timed_runtime::conformance`) on smol nodes, each as its
//! own test so a failure names the behaviour.

use timed_smol::Smol;

timed_runtime::conformance_tests!(smol::block_on, Smol::default());

/// A node on an executor the application runs itself, not smol's global one.
#[test]
fn a_node_runs_on_the_applications_own_executor() {
    let ex = std::sync::Arc::new(smol::Executor::new());
    let rt = Smol::on(ex.clone());
    smol::block_on(
        ex.run(timed_runtime::conformance::two_nodes_connect_and_answer_queries(&rt, &rt)),
    );
}
