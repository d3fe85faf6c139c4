//! What can go wrong with the store, phrased for the operator.
//!
//! The node stops on any store error and prints it, so every message names the path, the
//! cause and what to do about it. LMDB and the OS report causes as bare error codes
//! (`MDB_MAP_FULL`, `ENOSPC`, `EACCES`); [`classify`] turns the ones an operator can act on
//! into their own variants and keeps the rest as [`StoreError::Lmdb`] with the original error
//! as its source.

use std::io;
use std::path::{Path, PathBuf};
use timed_core::{BlockHash, Network};

/// A failure of [`HeedStore`](crate::HeedStore). Every variant carries the store's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created or is not a directory.
    #[error("cannot create or use the data directory {}: {source}; check the path, or choose another --data-dir", path.display())]
    CreateDir { path: PathBuf, source: io::Error },

    /// The OS refused access (`EACCES`, `EPERM`) or the file system is read-only (`EROFS`).
    #[error("cannot write the store at {}: {source}; give the node's user read and write access to it, or choose another --data-dir", path.display())]
    PermissionDenied { path: PathBuf, source: io::Error },

    /// The file system ran out of space or quota (`ENOSPC`, `EDQUOT`). LMDB aborted the
    /// transaction: nothing of it was written.
    #[error("the disk holding {} is full ({source}): free space or move --data-dir", path.display())]
    DiskFull { path: PathBuf, source: io::Error },

    /// The store reached the size of its memory map (`MDB_MAP_FULL`). The transaction was
    /// aborted: nothing of it was written.
    #[error(
        "the store at {} is full: it reached its map size of {map_size} bytes (LMDB MDB_MAP_FULL); \
         restart with a larger --store-map-size, or move --data-dir",
        path.display()
    )]
    MapFull { path: PathBuf, map_size: usize },

    /// The directory holds a chain of another network.
    #[error(
        "the data directory {} holds a {found} store, but this node runs {expected}: \
         choose another --data-dir for {expected} (or run this one with --network {found})",
        path.display()
    )]
    WrongNetwork {
        path: PathBuf,
        found: String,
        expected: Network,
    },

    /// The directory holds a chain of the same network name but with another genesis block:
    /// it was created by an incompatible build.
    #[error(
        "the data directory {} holds a {network} store whose genesis is {found}, but this build's \
         {network} genesis is {expected}: it was created by an incompatible build; choose another --data-dir",
        path.display()
    )]
    WrongGenesis {
        path: PathBuf,
        network: Network,
        found: BlockHash,
        expected: BlockHash,
    },

    /// The store was written in a layout this build does not read.
    #[error(
        "the store at {} has format version {found}, but this build reads version {supported}: \
         run the timed version that wrote it, or choose another --data-dir",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The same store was opened twice in one process (heed forbids it; it would let two
    /// handles believe they each own the chain).
    #[error("the store at {} is already open in this process; close the other handle first", path.display())]
    AlreadyOpen { path: PathBuf },

    /// The contents do not make sense: undecodable records, a gap in the chain, a block that
    /// does not link to its parent, or a file that is not an LMDB store at all.
    #[error(
        "the store at {} is corrupt: {detail}; move the directory aside and let the node resync \
         into an empty --data-dir",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    /// `apply` was handed blocks that do not extend the (rolled back) tip. A caller bug: the
    /// transaction was aborted and nothing was written.
    #[error("refusing to apply blocks to the store at {}: {detail}; nothing was written (this is a bug in the caller)", path.display())]
    Unlinked { path: PathBuf, detail: String },

    /// Any other LMDB or I/O failure.
    #[error("error on the store at {}: {source}; check the disk and the directory, or choose another --data-dir", path.display())]
    Lmdb {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// The store directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::CreateDir { path, .. }
            | StoreError::PermissionDenied { path, .. }
            | StoreError::DiskFull { path, .. }
            | StoreError::MapFull { path, .. }
            | StoreError::WrongNetwork { path, .. }
            | StoreError::WrongGenesis { path, .. }
            | StoreError::UnsupportedFormat { path, .. }
            | StoreError::AlreadyOpen { path }
            | StoreError::Corrupt { path, .. }
            | StoreError::Unlinked { path, .. }
            | StoreError::Lmdb { path, .. } => path,
        }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// Sorts an OS error into the variant an operator can act on.
pub(crate) fn classify_io(path: &Path, err: io::Error) -> StoreError {
    classify_io_or(path, err, |path, err| StoreError::Lmdb {
        path,
        source: Box::new(err),
    })
}

/// Like [`classify_io`], with the variant to use when the cause is neither a full disk nor
/// a permission problem.
pub(crate) fn classify_io_or(
    path: &Path,
    err: io::Error,
    otherwise: impl FnOnce(PathBuf, io::Error) -> StoreError,
) -> StoreError {
    let path = path.to_path_buf();
    if is_disk_full(&err) {
        return StoreError::DiskFull { path, source: err };
    }
    // std maps both EACCES and EPERM to `PermissionDenied`.
    if err.kind() == io::ErrorKind::PermissionDenied || is_read_only_fs(&err) {
        return StoreError::PermissionDenied { path, source: err };
    }
    otherwise(path, err)
}

/// Sorts a heed error. `map_size` is what the environment was opened with, for the message.
pub(crate) fn classify(path: &Path, map_size: usize, err: heed::Error) -> StoreError {
    use heed::MdbError as M;
    match err {
        // heed turns LMDB's "other" codes (plain errno values) into `Io`.
        heed::Error::Io(e) => classify_io(path, e),
        heed::Error::Mdb(M::MapFull) => StoreError::MapFull {
            path: path.to_path_buf(),
            map_size,
        },
        heed::Error::Mdb(
            e @ (M::Invalid
            | M::VersionMismatch
            | M::Corrupted
            | M::PageNotFound
            | M::Panic
            | M::Incompatible),
        ) => StoreError::corrupt(path, format!("LMDB reports: {e}")),
        heed::Error::EnvAlreadyOpened => StoreError::AlreadyOpen {
            path: path.to_path_buf(),
        },
        other => StoreError::Lmdb {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

fn is_disk_full(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    }
    #[cfg(not(unix))]
    {
        // ERROR_DISK_FULL (112) and ERROR_HANDLE_DISK_FULL (39) on Windows.
        matches!(err.raw_os_error(), Some(112) | Some(39))
    }
}

fn is_read_only_fs(err: &io::Error) -> bool {
    #[cfg(unix)]
    {
        err.raw_os_error() == Some(libc::EROFS)
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn enospc_names_the_path_and_says_what_to_do() {
        let e = classify(
            Path::new("/x"),
            1 << 30,
            heed::Error::Io(io::Error::from_raw_os_error(libc::ENOSPC)),
        );
        assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with("the disk holding /x is full ("), "{msg}");
        assert!(msg.ends_with("): free space or move --data-dir"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn edquot_is_disk_full_too() {
        let e = classify_io(Path::new("/x"), io::Error::from_raw_os_error(libc::EDQUOT));
        assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
    }

    #[cfg(unix)]
    #[test]
    fn eacces_and_erofs_are_permission_errors() {
        for code in [libc::EACCES, libc::EROFS, libc::EPERM] {
            let e = classify(
                Path::new("/data/timed"),
                0,
                heed::Error::Io(io::Error::from_raw_os_error(code)),
            );
            assert!(matches!(e, StoreError::PermissionDenied { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("/data/timed") && msg.contains("--data-dir"),
                "{msg}"
            );
        }
    }

    #[test]
    fn map_full_reports_the_map_size() {
        let e = classify(
            Path::new("/x"),
            4096,
            heed::Error::Mdb(heed::MdbError::MapFull),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("/x") && msg.contains("4096 bytes") && msg.contains("MDB_MAP_FULL"),
            "{msg}"
        );
        assert_eq!(e.path(), Path::new("/x"));
    }

    #[test]
    fn a_non_lmdb_file_is_reported_as_corrupt() {
        let e = classify(
            Path::new("/x"),
            0,
            heed::Error::Mdb(heed::MdbError::Invalid),
        );
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    }

    #[test]
    fn other_lmdb_errors_keep_their_source() {
        let e = classify(
            Path::new("/x"),
            0,
            heed::Error::Mdb(heed::MdbError::ReadersFull),
        );
        assert!(matches!(e, StoreError::Lmdb { .. }), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
