//! `timed-sim`: see `timed-sim --help` and the crate docs.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // SAFETY: sets a process-wide allocator option; mimalloc reads it on its next OS allocation.
    unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) };
    timed_sim::cli::main()
}
