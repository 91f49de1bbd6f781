//! Noticing that a database file was deleted or replaced under a running store.
//!
//! An open SQLite connection keeps writing into the file it opened, even after
//! that file is unlinked or another file is moved over its path: every write is
//! acknowledged, and a restarted app (or any other process opening the path)
//! sees none of them. So the store remembers which file its path named when it
//! opened it, and checks that the path still names that file before each
//! operation: one `stat`, about a microsecond next to a SQLite transaction.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nex_session_core::StoreError;

/// The file a path named at open: its device and inode on Unix. Elsewhere, where
/// the standard library offers no stable file identity, only its existence is
/// checked (a deleted file is caught, a replaced one is not).
pub(crate) struct FileIdentity {
    /// The path made absolute at open (symbolic links kept), so that the app
    /// changing its working directory later does not look like a lost file.
    path: PathBuf,
    id: FileId,
    /// Whether the mismatch was logged already (once per store, not per request).
    reported: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Ok(FileId { dev: meta.dev(), ino: meta.ino() })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(FileId {})
    }
}

/// Whether `path` names no file on disk in SQLite's eyes: an in-memory or
/// temporary database, or a `file:` URI (which this check does not parse).
fn is_not_a_plain_file(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.is_empty() || text == ":memory:" || text.starts_with("file:")
}

impl FileIdentity {
    /// Remembers which file `path` names now; `None` for a database that is no
    /// plain file (see above), which has nothing to check.
    ///
    /// # Errors
    /// The `stat` failed: the file SQLite just opened is already gone.
    pub(crate) fn of(path: &Path) -> Result<Option<Self>, StoreError> {
        if is_not_a_plain_file(path) {
            return Ok(None);
        }
        let gone = |e| StoreError::Unavailable(Box::new(Gone { path: path.to_owned(), why: Some(e) }));
        let absolute = std::path::absolute(path).map_err(gone)?;
        let id = file_id(&absolute).map_err(gone)?;
        Ok(Some(Self { path: absolute, id, reported: AtomicBool::new(false) }))
    }

    /// Checks that the path still names the file opened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] naming the path when the file was deleted or
    /// replaced; logged at error level the first time.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let now = file_id(&self.path);
        if matches!(&now, Ok(id) if *id == self.id) {
            return Ok(());
        }
        let gone = Gone { path: self.path.clone(), why: now.err() };
        if !self.reported.swap(true, Ordering::Relaxed) {
            tracing::error!(target: "nex_session::store", error = %gone, "session database file lost: refusing every operation");
        }
        Err(StoreError::Unavailable(Box::new(gone)))
    }
}

/// The database file a store opened is no longer at its path.
#[derive(Debug, thiserror::Error)]
#[error(
    "the SQLite session database {path:?} was deleted or replaced after this store opened it{}; \
     nothing more is written to the old file (writes there would be lost): restart the app to open the file now at that path",
    why.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
)]
struct Gone {
    path: PathBuf,
    why: Option<std::io::Error>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_fails_the_check_naming_the_path() {
        let dir = std::env::temp_dir().join(format!("nex-session-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        std::fs::write(&path, b"one").unwrap();
        // Held open, as SQLite holds its file: the inode cannot be reused meanwhile.
        let _held = std::fs::File::open(&path).unwrap();
        let identity = FileIdentity::of(&path).unwrap().unwrap();
        identity.check().unwrap();

        std::fs::remove_file(&path).unwrap();
        let err = identity.check().unwrap_err().to_string();
        assert!(err.contains("s.db") && err.contains("deleted or replaced"), "{err}");

        // A new file at the same path is another file (another inode).
        let other = dir.join("other.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        #[cfg(unix)]
        assert!(identity.check().is_err(), "a file moved over the path is not the one opened");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn in_memory_databases_have_nothing_to_check() {
        assert!(FileIdentity::of(Path::new(":memory:")).unwrap().is_none());
        assert!(FileIdentity::of(Path::new("")).unwrap().is_none());
    }
}
