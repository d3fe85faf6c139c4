//! `timed-sim`: see `timed-sim --help` and the crate docs.

fn main() -> std::process::ExitCode {
    timed_sim::cli::main()
}
