//! `timed`: the TIME Coin node. See `timed --help`.

use clap::Parser;
use std::process::ExitCode;
use timed_node::cli::{Cli, Command};
use timed_node::{devnet, logging, run, status_cmd};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // clap names the bad flag and shows usage; `--help`/`--version` exit 0.
        Err(e) => e.exit(),
    };
    match cli.command {
        Some(Command::Status(args)) => report(status_cmd::run(&args)),
        Some(Command::Devnet(args)) => report(devnet::run(&args)),
        None => {
            let settings = match cli.node.resolve() {
                Ok(s) => s,
                Err(e) => return report(Err(e)),
            };
            if let Err(e) = logging::init(&settings.log, settings.log_format) {
                return report(Err(e));
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            report(rt.block_on(run::run(settings)))
        }
    }
}

fn report(res: Result<(), timed_node::cli::SettingsError>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
