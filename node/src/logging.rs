//! `tracing` setup: `--log LEVEL` (or a filter) and `--log-format pretty|json`, to stderr.

use crate::cli::{LogFormat, SettingsError};
use tracing_subscriber::EnvFilter;

pub fn init(level: &str, format: LogFormat) -> Result<(), SettingsError> {
    let filter = EnvFilter::try_new(level).map_err(|e| SettingsError {
        problem: format!("`{level}` is not a log level or filter: {e}"),
        fix: "use --log error|warn|info|debug|trace, or a filter such as info,timed_tokio=debug"
            .into(),
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let res = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    // Already initialised (a test calling twice): keep the first.
    let _ = res;
    Ok(())
}
