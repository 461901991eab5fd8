//! The state directory's files: the directory private and locked, the
//! state key's file, the recorded dstack API, and durable replacement
//! (temp file, fsync, rename, directory fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::StoreError;
pub use crate::layout::{DSTACK_API_FILE, JOURNAL, KEY_FILE};

/// Whether `dir` holds a journal with something in it.
#[must_use]
pub fn has_journal(dir: &Path) -> bool {
    fs::metadata(dir.join(JOURNAL)).is_ok_and(|m| m.len() > 0)
}

/// The dstack API recorded in `dir` ([`DSTACK_API_FILE`]), if any.
pub fn recorded_dstack_api(dir: &Path) -> Result<Option<String>, StoreError> {
    match fs::read_to_string(dir.join(DSTACK_API_FILE)) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { path: dir.display().to_string(), source }),
    }
}

/// Records the dstack API `name` in `dir` (made private if new), durably:
/// only once the directory is checked to be this user's alone (it is
/// written before the store opens and checks it), and never through a link
/// left in its place.
pub fn record_dstack_api(dir: &Path, name: &str) -> Result<(), StoreError> {
    let io_err = |source| StoreError::Io { path: dir.display().to_string(), source };
    create_private_dir(dir).map_err(io_err)?;
    check_private_dir(dir, rustix::process::geteuid().as_raw())?;
    write_durably(dir, DSTACK_API_FILE, format!("{name}\n").as_bytes()).map_err(io_err)
}

/// Refuses a directory that others can read or write, or that `me` does
/// not own: it holds keys and anti-replay marks.
fn check_private_dir(dir: &Path, me: u32) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let shown = || dir.display().to_string();
        let meta = fs::metadata(dir).map_err(|source| StoreError::Io { path: shown(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 || meta.uid() != me {
            return Err(StoreError::Permissions { path: shown(), mode, owner: meta.uid() });
        }
    }
    Ok(())
}

/// Creates the directory private, takes its lock, and refuses a directory
/// that others can read or write or that another user owns.
pub(crate) fn lock_private_dir(dir: &Path) -> Result<File, StoreError> {
    let shown = || dir.display().to_string();
    let io_err = |source| StoreError::Io { path: shown(), source };
    create_private_dir(dir).map_err(io_err)?;
    let lock = private_file(&dir.join("LOCK"), false).map_err(io_err)?;
    check_private_dir(dir, rustix::process::geteuid().as_raw())?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: shown() }),
        Err(fs::TryLockError::Error(e)) => Err(io_err(e)),
    }
}

/// The key file's 32 bytes; made (random, 0600) for a fresh directory.
pub(crate) fn key_file(dir: &Path, fresh: bool) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let path = dir.join(KEY_FILE);
    let io_err = |source| StoreError::Io { path: dir.display().to_string(), source };
    let mut key = Zeroizing::new([0u8; 32]);
    match File::open(&path) {
        Ok(mut f) => {
            let mut raw = Zeroizing::new(Vec::new());
            f.read_to_end(&mut raw).map_err(io_err)?;
            let k: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                io_err(io::Error::new(io::ErrorKind::InvalidData, "state.key is not 32 bytes"))
            })?;
            *key = k;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && fresh => {
            getrandom::fill(&mut key[..]).map_err(|e| io_err(io::Error::other(e.to_string())))?;
            write_durably(dir, KEY_FILE, &key[..]).map_err(io_err)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::KeyMissing { path: dir.display().to_string() });
        }
        Err(e) => return Err(io_err(e)),
    }
    Ok(key)
}

fn private_file(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates `path` anew (a stale one is removed first), private, for
/// appending; never through a symlink left in its place.
pub(crate) fn create_append_only(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `dir/name` so that a crash leaves the old or the new content, and
/// returns only once the new content and its directory entry are on disk.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    // Made anew: a link left at the temporary name is removed, not followed.
    let mut file = create_append_only(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}
