//! Durable device state in a directory: slot records and anti-replay
//! counters, one file each, written so that a crash leaves the old or the
//! new content and a returned write is on disk.
//!
//! A write goes to `NAME.tmp`, which is fsynced, renamed over `NAME`, and the
//! directory is fsynced (tmkms persists with rename but never fsyncs,
//! tmkms#1220; a counter that is not on disk when the signature leaves is a
//! double-sign waiting for a power cut). Every file carries a magic, its own
//! name's kind and number, its length and a CRC-32, so a torn, truncated or
//! swapped file is refused rather than read as an empty slot or a lower
//! counter: the device fails closed.
//!
//! The directory is held with an exclusive lock for as long as the store is
//! open: two signer processes on one state would each keep their own
//! high-water marks in memory and could sign two actions at one sequence.
//!
//! Slot records hold generated secret keys. Where a sealing key is given
//! ([`FileStore::with_sealing_key`], on dstack a key that only this app's
//! measured CVM can derive), slot records are encrypted and authenticated
//! with ChaCha20-Poly1305 under it; otherwise they are stored in the clear
//! with mode 0600, and `docs/security.md` says what that means.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use tee_core::codec;
use tee_core::device::{BackendError, CounterId, HighWater};
use tee_core::primitives::CRC32;
use tee_core::protocol::NUM_SLOTS;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TSS1";
/// Header: magic, kind, number, flags, payload length (u32 LE).
const HEADER: usize = 4 + 1 + 1 + 1 + 4;
/// The largest payload a record file may carry (a sealed slot record).
const MAX_PAYLOAD: usize = 4096;
/// Flag: the payload is `nonce (12) ‖ ChaCha20-Poly1305 ciphertext`.
const SEALED: u8 = 1;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory could not be created or read.
    #[error("state directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Others can read or write the state directory, or it is not ours.
    #[error(
        "state directory {path} is open to others (mode {mode:o}, owner uid {owner}): it holds keys and anti-replay marks; make it yours alone (chmod 700) or give another directory"
    )]
    Permissions {
        /// The directory.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        owner: u32,
    },
    /// Another process holds the state directory.
    #[error(
        "state directory {path} is in use by another signer (two signers on one state could sign twice at one sequence)"
    )]
    Locked {
        /// The directory.
        path: String,
    },
}

/// What a record file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Slot = 1,
    Counter = 2,
    AdminCounter = 3,
}

/// Device state on disk. See the module documentation.
pub struct FileStore {
    dir: PathBuf,
    seal: Option<Zeroizing<[u8; 32]>>,
    /// Held for the store's lifetime: the exclusive lock.
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("sealed", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// Opens (creating it, mode 0700) the state directory `dir` and takes
    /// its exclusive lock. A directory that others can read or write, or
    /// that another user owns, is refused: whoever can write it can swap
    /// the records a signer trusts.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        let shown = || dir.display().to_string();
        let io_err = |source| StoreError::Io { path: shown(), source };
        create_private_dir(dir).map_err(io_err)?;
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let lock = options.open(dir.join("LOCK")).map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = fs::metadata(dir).map_err(io_err)?;
            // The lock file was created (or is opened for writing) by this
            // process: its owner is who we are.
            let me = lock.metadata().map_err(io_err)?.uid();
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 || meta.uid() != me {
                return Err(StoreError::Permissions { path: shown(), mode, owner: meta.uid() });
            }
        }
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path: shown() }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        Ok(FileStore { dir: dir.to_owned(), seal: None, _lock: lock })
    }

    /// Seals slot records under `key` from now on: records written are
    /// encrypted, and records read must be (a clear record is refused, so
    /// a sealed store cannot be downgraded by swapping files).
    #[must_use]
    pub fn with_sealing_key(mut self, key: Zeroizing<[u8; 32]>) -> FileStore {
        self.seal = Some(key);
        self
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(kind: Kind, n: u8) -> String {
        match kind {
            Kind::Slot => format!("slot-{n}.rec"),
            Kind::Counter => format!("counter-{n}.rec"),
            Kind::AdminCounter => "counter-admin.rec".to_owned(),
        }
    }

    fn cipher(&self) -> Option<ChaCha20Poly1305> {
        self.seal.as_ref().and_then(|k| ChaCha20Poly1305::new_from_slice(&k[..]).ok())
    }

    /// Associated data of a sealed record: the file it belongs in, so a
    /// record moved to another slot does not open.
    fn aad(kind: Kind, n: u8) -> [u8; 6] {
        [b'T', b'S', b'S', b'1', kind as u8, n]
    }

    /// Reads and checks a record file; `Ok(None)` if it does not exist.
    fn read(&self, kind: Kind, n: u8) -> Result<Option<Zeroizing<Vec<u8>>>, BackendError> {
        let path = self.dir.join(Self::name(kind, n));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(BackendError::Failed),
        };
        let mut raw = Zeroizing::new(Vec::new());
        file.take((HEADER + MAX_PAYLOAD + 4 + 1) as u64)
            .read_to_end(&mut raw)
            .map_err(|_| BackendError::Failed)?;
        let (head, rest) = raw.split_at_checked(HEADER).ok_or(BackendError::Failed)?;
        let len = u32::from_le_bytes(
            head.get(7..11).and_then(|b| b.try_into().ok()).ok_or(BackendError::Failed)?,
        ) as usize;
        let flags = head.get(6).copied().ok_or(BackendError::Failed)?;
        if head.get(..4) != Some(&MAGIC[..])
            || head.get(4..6) != Some(&[kind as u8, n][..])
            || flags & !SEALED != 0
            || len > MAX_PAYLOAD
            || rest.len() != len + 4
        {
            return Err(BackendError::Failed);
        }
        let (payload, crc) = rest.split_at(len);
        let covered = raw.get(..HEADER + len).ok_or(BackendError::Failed)?;
        if CRC32.checksum(covered).to_le_bytes() != crc {
            return Err(BackendError::Failed);
        }
        let sealed = flags & SEALED != 0;
        match (kind, sealed, self.cipher()) {
            (Kind::Slot, true, Some(cipher)) => {
                let (nonce, ct) = payload.split_at_checked(12).ok_or(BackendError::Failed)?;
                let aad = Self::aad(kind, n);
                let nonce = Nonce::try_from(nonce).map_err(|_| BackendError::Failed)?;
                let clear = cipher
                    .decrypt(&nonce, Payload { msg: ct, aad: &aad })
                    .map_err(|_| BackendError::Failed)?;
                Ok(Some(Zeroizing::new(clear)))
            }
            // A sealed store reads no clear slot, and an unsealed one no sealed slot.
            (Kind::Slot, _, _) if sealed || self.seal.is_some() => Err(BackendError::Failed),
            (_, true, _) => Err(BackendError::Failed),
            _ => Ok(Some(Zeroizing::new(payload.to_vec()))),
        }
    }

    /// Writes a record file durably: temp file, fsync, rename, fsync dir.
    fn write(&self, kind: Kind, n: u8, payload: &[u8]) -> Result<(), BackendError> {
        let (flags, body) = match (kind, self.cipher()) {
            (Kind::Slot, Some(cipher)) => {
                let mut nonce = [0u8; 12];
                getrandom::fill(&mut nonce).map_err(|_| BackendError::Failed)?;
                let aad = Self::aad(kind, n);
                let ct = cipher
                    .encrypt(&Nonce::from(nonce), Payload { msg: payload, aad: &aad })
                    .map_err(|_| BackendError::Failed)?;
                (SEALED, Zeroizing::new([&nonce[..], &ct].concat()))
            }
            _ => (0, Zeroizing::new(payload.to_vec())),
        };
        if body.len() > MAX_PAYLOAD {
            return Err(BackendError::Failed);
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(HEADER + body.len() + 4));
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&[kind as u8, n, flags]);
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(&body);
        let crc = CRC32.checksum(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        write_durably(&self.dir, &Self::name(kind, n), &raw).map_err(|_| BackendError::Failed)
    }

    /// Slot `slot`'s record (`KeyStore::load_slot`).
    pub fn load_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<Option<usize>, BackendError> {
        check_slot(slot)?;
        match self.read(Kind::Slot, slot)? {
            None => Ok(None),
            Some(rec) => {
                buf.get_mut(..rec.len()).ok_or(BackendError::Failed)?.copy_from_slice(&rec);
                Ok(Some(rec.len()))
            }
        }
    }

    /// Replaces slot `slot`'s record durably (`KeyStore::store_slot`).
    pub fn store_slot(&mut self, slot: u8, record: &[u8]) -> Result<(), BackendError> {
        check_slot(slot)?;
        self.write(Kind::Slot, slot, record)
    }

    fn counter_file(id: CounterId) -> Result<(Kind, u8), BackendError> {
        match id {
            CounterId::Slot(n) => check_slot(n).map(|()| (Kind::Counter, n)),
            CounterId::Admin => Ok((Kind::AdminCounter, 0)),
        }
    }

    /// A durable counter (`CounterStore::load_counter`).
    pub fn load_counter(&mut self, id: CounterId) -> Result<Option<HighWater>, BackendError> {
        let (kind, n) = Self::counter_file(id)?;
        match self.read(kind, n)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|_| BackendError::Failed),
        }
    }

    /// Commits a counter durably (`CounterStore::commit_counter`). The
    /// device commits only values above the last one (it checks that
    /// itself, for every backend), so this does not read before it writes.
    pub fn commit_counter(&mut self, id: CounterId, value: &HighWater) -> Result<(), BackendError> {
        let (kind, n) = Self::counter_file(id)?;
        let mut buf = [0u8; 64];
        let bytes = codec::encode(value, &mut buf).map_err(|_| BackendError::Failed)?;
        self.write(kind, n, bytes)
    }
}

fn check_slot(slot: u8) -> Result<(), BackendError> {
    if usize::from(slot) < NUM_SLOTS { Ok(()) } else { Err(BackendError::Failed) }
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
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use tee_core::B256;

    use super::*;

    /// A private state directory inside a temp dir (temp dirs may be
    /// created with the umask's mode, which the store refuses).
    struct Private(#[allow(dead_code, reason = "kept for its drop")] tempfile::TempDir, PathBuf);

    impl Private {
        fn new() -> Private {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join("state");
            Private(t, p)
        }
        fn path(&self) -> &Path {
            &self.1
        }
    }

    fn hw(value: u64) -> HighWater {
        HighWater { value, digest: B256([value as u8; 32]) }
    }

    #[test]
    fn records_and_counters_survive_reopening() {
        let dir = Private::new();
        let mut s = FileStore::open(dir.path()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.load_slot(0, &mut buf), Ok(None));
        assert_eq!(s.load_counter(CounterId::Slot(0)), Ok(None));
        s.store_slot(0, b"record zero").unwrap();
        s.store_slot(7, b"record seven").unwrap();
        s.commit_counter(CounterId::Slot(0), &hw(5)).unwrap();
        s.commit_counter(CounterId::Admin, &hw(9)).unwrap();
        drop(s);
        let mut s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load_slot(0, &mut buf), Ok(Some(11)));
        assert_eq!(&buf[..11], b"record zero");
        assert_eq!(s.load_slot(7, &mut buf), Ok(Some(12)));
        assert_eq!(s.load_counter(CounterId::Slot(0)), Ok(Some(hw(5))));
        assert_eq!(s.load_counter(CounterId::Admin), Ok(Some(hw(9))));
        assert_eq!(s.load_counter(CounterId::Slot(1)), Ok(None));
        // Out of range slots, and a buffer too small, are errors.
        assert_eq!(s.load_slot(NUM_SLOTS as u8, &mut buf), Err(BackendError::Failed));
        assert_eq!(s.store_slot(NUM_SLOTS as u8, b"x"), Err(BackendError::Failed));
        assert_eq!(s.load_slot(7, &mut [0u8; 4]), Err(BackendError::Failed));
    }

    #[test]
    fn private_directory_and_files() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = Private::new();
        let dir = root.path().join("a/b/state");
        let mut s = FileStore::open(&dir).unwrap();
        s.commit_counter(CounterId::Slot(1), &hw(3)).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("LOCK")), 0o600);
        assert_eq!(mode(&dir.join("counter-1.rec")), 0o600);
        drop(s);
        // A directory others can read or write is refused, with the reason.
        for open in [0o777, 0o750, 0o705] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(open)).unwrap();
            let e = FileStore::open(&dir).unwrap_err();
            assert!(matches!(e, StoreError::Permissions { .. }), "{e}");
            assert!(e.to_string().contains("open to others"), "{e}");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        FileStore::open(&dir).unwrap();
    }

    #[test]
    fn one_signer_per_state_directory() {
        let dir = Private::new();
        let s = FileStore::open(dir.path()).unwrap();
        let e = FileStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        drop(s);
        FileStore::open(dir.path()).unwrap();
    }

    #[test]
    fn damaged_or_moved_files_are_refused_not_read_as_empty() {
        let dir = Private::new();
        let mut s = FileStore::open(dir.path()).unwrap();
        s.store_slot(1, b"slot one").unwrap();
        s.commit_counter(CounterId::Slot(1), &hw(3)).unwrap();
        let counter = dir.path().join("counter-1.rec");
        let good = fs::read(&counter).unwrap();
        // Every flipped bit and every truncation is refused.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                fs::write(&counter, &bad).unwrap();
                assert_eq!(
                    s.load_counter(CounterId::Slot(1)),
                    Err(BackendError::Failed),
                    "{i}/{bit}"
                );
            }
            fs::write(&counter, &good[..i]).unwrap();
            assert_eq!(s.load_counter(CounterId::Slot(1)), Err(BackendError::Failed), "cut at {i}");
        }
        fs::write(&counter, [&good[..], b"x"].concat()).unwrap();
        assert_eq!(s.load_counter(CounterId::Slot(1)), Err(BackendError::Failed));
        // A counter copied to another slot's name does not pass for it.
        fs::write(dir.path().join("counter-2.rec"), &good).unwrap();
        assert_eq!(s.load_counter(CounterId::Slot(2)), Err(BackendError::Failed));
        fs::copy(dir.path().join("slot-1.rec"), dir.path().join("slot-2.rec")).unwrap();
        assert_eq!(s.load_slot(2, &mut [0u8; 64]), Err(BackendError::Failed));
        // A temp file left by a crash is ignored.
        fs::write(&counter, &good).unwrap();
        fs::write(dir.path().join("counter-1.rec.tmp"), b"half").unwrap();
        assert_eq!(s.load_counter(CounterId::Slot(1)), Ok(Some(hw(3))));
        s.commit_counter(CounterId::Slot(1), &hw(4)).unwrap();
        assert!(!dir.path().join("counter-1.rec.tmp").exists());
    }

    #[test]
    fn sealed_records_open_only_under_their_key_and_slot() {
        let dir = Private::new();
        let secret = b"a generated secret key, 32 bytes";
        {
            let mut s =
                FileStore::open(dir.path()).unwrap().with_sealing_key(Zeroizing::new([7; 32]));
            s.store_slot(0, secret).unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(s.load_slot(0, &mut buf), Ok(Some(32)));
            assert_eq!(&buf[..32], secret);
        }
        let raw = fs::read(dir.path().join("slot-0.rec")).unwrap();
        assert!(!raw.windows(8).any(|w| w == &secret[..8]), "the record is encrypted");
        // Another key, no key, another slot: refused.
        let mut other =
            FileStore::open(dir.path()).unwrap().with_sealing_key(Zeroizing::new([8; 32]));
        assert_eq!(other.load_slot(0, &mut [0u8; 64]), Err(BackendError::Failed));
        drop(other);
        let mut clear = FileStore::open(dir.path()).unwrap();
        assert_eq!(clear.load_slot(0, &mut [0u8; 64]), Err(BackendError::Failed));
        // A clear record planted in a sealed store is refused too.
        clear.store_slot(1, b"planted").unwrap();
        drop(clear);
        let mut s = FileStore::open(dir.path()).unwrap().with_sealing_key(Zeroizing::new([7; 32]));
        assert_eq!(s.load_slot(1, &mut [0u8; 64]), Err(BackendError::Failed));
        fs::copy(dir.path().join("slot-0.rec"), dir.path().join("slot-3.rec")).unwrap();
        assert_eq!(s.load_slot(3, &mut [0u8; 64]), Err(BackendError::Failed));
    }
}
