//! `timed devnet`.
use crate::cli::{DevnetArgs, SettingsError};

pub fn run(_args: &DevnetArgs) -> Result<(), SettingsError> {
    Ok(())
}
