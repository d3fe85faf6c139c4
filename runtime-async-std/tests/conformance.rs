//! The shared conformance scenarios (`timed_runtime::conformance`) on async-std nodes, each
//! as its own test so a failure names the behaviour.

timed_runtime::conformance_tests!(
    async_std::task::block_on,
    timed_async_std::AsyncStd::default()
);
