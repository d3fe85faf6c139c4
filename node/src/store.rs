//! The node's store: `timed-store`'s LMDB store in `DATA_DIR/store`. Everything the node needs
//! from it goes through these few functions, so switching implementations is one line.

use crate::cli::SettingsError;
use std::path::Path;
use timed_core::{Network, NodeId, Store};

pub type NodeStore = timed_store::HeedStore;

fn fail(problem: String, fix: &str) -> SettingsError {
    SettingsError {
        problem,
        fix: fix.into(),
    }
}

/// Opens (or creates) the store and checks the stored chain.
pub fn open(
    data_dir: &Path,
    network: Network,
    map_size: Option<usize>,
) -> Result<NodeStore, SettingsError> {
    let path = data_dir.join("store");
    let mut options = timed_store::StoreOptions::default();
    if let Some(n) = map_size {
        options.map_size = n;
    }
    let store = timed_store::HeedStore::open_with(&path, network, options).map_err(|e| {
        fail(
            format!("cannot open the store: {e}"),
            "use the --data-dir of a node of this --network, or a new one; check permissions and free space",
        )
    })?;
    store.verify().map_err(|e| {
        fail(
            format!("the store failed its check: {e}"),
            "restore the data dir from a backup or start with a fresh --data-dir",
        )
    })?;
    Ok(store)
}

/// The node's persisted identity, created from `fresh` on first start.
pub fn identity(store: &mut NodeStore, fresh: [u8; 32]) -> Result<NodeId, SettingsError> {
    store
        .load_or_create_identity(|| NodeId(fresh))
        .map_err(|e| {
            fail(
                format!("cannot read or store the node identity: {e}"),
                "check the data dir's permissions and free space",
            )
        })
}

pub fn height(store: &NodeStore) -> Result<u64, SettingsError> {
    store.tip().map(|(h, _)| h).map_err(|e| {
        fail(
            format!("cannot read the chain tip: {e}"),
            "check the data dir",
        )
    })
}
