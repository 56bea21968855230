//! The data directory holds every message and every webhook secret: only its owner may read it.
//! A new directory is made 0700 and the SQLite database files 0600 (SQLite gives its `-wal` and
//! `-shm` files the database file's mode); an existing directory that others can read is left
//! as it is, with a warning at start.

use std::fs;
use std::path::Path;

/// The database file in `dir` (the SQLite default).
const DB_FILES: [&str; 3] = ["confab.db", "confab.db-wal", "confab.db-shm"];

/// Makes `dir` (0700 when new) and the database file (0600) before SQLite opens it, and takes
/// other users' access away from existing database files. Returns a warning for an existing
/// directory that other users can read or enter.
pub fn prepare(dir: &Path) -> Result<Option<String>, String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", dir.display());
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if dir.exists() {
            let mode = fs::metadata(dir)
                .map_err(|e| fail("read", e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                warning = Some(format!(
                    "the data directory {} is open to other users (mode {:o}); it holds every \
                     message and webhook secret: chmod 700 it",
                    dir.display(),
                    mode & 0o777
                ));
            }
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create data directory", e))?;
        }
        let db = dir.join(DB_FILES[0]);
        if !db.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&db)
                .map_err(|e| fail("create the database in", e))?;
        }
        for name in DB_FILES {
            let path = dir.join(name);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail("restrict the database files in", e))?;
            }
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(|e| fail("create data directory", e))?;
    Ok(warning)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        assert_eq!(prepare(&dir).unwrap(), None);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("confab.db")), 0o600);
        assert_eq!(fs::metadata(dir.join("confab.db")).unwrap().len(), 0);
        // again: nothing to say
        assert_eq!(prepare(&dir).unwrap(), None);
    }

    #[test]
    fn an_open_directory_is_reported_and_its_database_files_closed() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["confab.db", "confab.db-wal"] {
            fs::write(dir.path().join(name), b"").unwrap();
            fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o644)).unwrap();
        }
        let warning = prepare(dir.path()).unwrap().expect("a warning");
        assert!(warning.contains("mode 755"), "{warning}");
        assert_eq!(mode(dir.path()), 0o755, "left as the operator made it");
        assert_eq!(mode(&dir.path().join("confab.db")), 0o600);
        assert_eq!(mode(&dir.path().join("confab.db-wal")), 0o600);
    }
}
