//! The state directory's journal through its API: what survives a reopen,
//! a crash's torn write, a compaction; the directory's permissions and
//! lock; a missing key file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tee_core::device::{AuditedMark, CounterId, HighWater, Spent};
use tee_core::policy::SpendWindow;
use tee_core::protocol::{AuditEntry, Outcome};
use tee_core::{Address, B256};
use tee_store::store::{FileStore, JOURNAL, KEY_FILE, MAX_JOURNAL, StateKey, StoreError};

const ADMIN: Address = Address([0xad; 20]);

/// A spend window with `wei` reserved.
fn spent(wei: u64) -> SpendWindow {
    SpendWindow { start: 1_767_225_000, spent: tee_core::U256::from_u64(wei) }
}

/// The audit chain's hash after `entry(i)` (its first entry's chain).
fn chain(i: u64) -> B256 {
    tee_core::device::audit_chain_hash(&B256::ZERO, &entry(i))
}

/// A private state directory inside a temp dir (temp dirs may be created
/// with the umask's mode, which the store refuses).
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

fn open(dir: &Path) -> FileStore {
    FileStore::open(dir, StateKey::File, Some(ADMIN)).unwrap()
}

fn entry(index: u64) -> AuditEntry {
    AuditEntry {
        index,
        command: 6,
        slot: 0,
        sequence: index,
        digest: B256::ZERO,
        outcome: Outcome::Ok,
    }
}

const TOKEN: Address = Address([0x70; 20]);

/// A window reserved in wei.
fn wei(n: u64) -> Spent {
    Spent { asset: None, window: spent(n) }
}

/// Wei's window for even `n`, TOKEN's for odd.
fn by_turns(n: u64) -> Spent {
    Spent { asset: (n % 2 == 1).then_some(TOKEN), window: spent(n) }
}

#[test]
fn records_marks_and_audit_survive_reopening() {
    let dir = Private::new();
    let mut s = open(dir.path());
    let provisioned = s.provisioning();
    assert_eq!(provisioned.admin, ADMIN);
    s.store_slot(1, b"record one").unwrap();
    s.commit_counter(CounterId::Slot(1), &hw(3)).unwrap();
    s.commit_counter_audited(
        CounterId::Slot(1),
        AuditedMark { mark: &hw(4), entry: &entry(0), prev: &B256::ZERO, spend: Some(&wei(5)) },
    )
    .unwrap();
    // A mark that reserved nothing leaves the window as it was.
    s.commit_counter_audited(
        CounterId::Slot(1),
        AuditedMark { mark: &hw(5), entry: &entry(1), prev: &chain(0), spend: None },
    )
    .unwrap();
    // A token's window is its own: the wei window stays.
    let token = Spent { asset: Some(TOKEN), window: spent(7) };
    s.commit_counter_audited(
        CounterId::Slot(1),
        AuditedMark { mark: &hw(6), entry: &entry(2), prev: &chain(1), spend: Some(&token) },
    )
    .unwrap();
    s.commit_counter(CounterId::Admin, &hw(9)).unwrap();
    s.store_slot(1, b"record two").unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(s.provisioning(), provisioned);
    let mut buf = [0u8; 64];
    let n = s.load_slot(1, &mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"record two");
    assert_eq!(s.load_slot(2, &mut buf).unwrap(), None);
    assert_eq!(s.load_counter(CounterId::Slot(1)).unwrap(), Some(hw(6)));
    assert_eq!(s.load_spend(1, None).unwrap(), Some(spent(5)));
    assert_eq!(s.load_spend(1, Some(&TOKEN)).unwrap(), Some(spent(7)));
    assert_eq!(s.load_spend(1, Some(&Address([1; 20]))).unwrap(), None);
    assert_eq!(s.load_spend(2, None).unwrap(), None);
    assert_eq!(s.load_counter(CounterId::Admin).unwrap(), Some(hw(9)));
    assert_eq!(s.audit_entry(0), Some((entry(0), B256::ZERO)));
    // The secret record is sealed: its bytes are nowhere in the journal.
    let raw = fs::read(dir.path().join(JOURNAL)).unwrap();
    assert!(!raw.windows(10).any(|w| w == b"record two"));
    // Out-of-range slots are refused.
    assert!(s.store_slot(255, b"x").is_err());
}

#[test]
fn a_torn_last_write_is_cut_once() {
    let dir = Private::new();
    let mut s = open(dir.path());
    s.commit_counter(CounterId::Slot(0), &hw(1)).unwrap();
    let good = fs::metadata(dir.path().join(JOURNAL)).unwrap().len();
    s.commit_counter(CounterId::Slot(0), &hw(2)).unwrap();
    drop(s);
    // A crash in the middle of the second write.
    let raw = fs::read(dir.path().join(JOURNAL)).unwrap();
    fs::write(dir.path().join(JOURNAL), &raw[..raw.len() - 7]).unwrap();
    let mut s = open(dir.path());
    assert_eq!(s.load_counter(CounterId::Slot(0)).unwrap(), Some(hw(1)));
    assert_eq!(
        fs::metadata(dir.path().join(JOURNAL)).unwrap().len(),
        good,
        "the torn bytes are cut"
    );
    // Writes go on after the last good record.
    s.commit_counter(CounterId::Slot(0), &hw(2)).unwrap();
    drop(s);
    assert_eq!(open(dir.path()).load_counter(CounterId::Slot(0)).unwrap(), Some(hw(2)));
}

#[test]
fn compaction_keeps_the_state_and_the_audit_chain_head() {
    let dir = Private::new();
    let mut s = open(dir.path());
    s.store_slot(3, &[7; 600]).unwrap();
    let mut prev = B256::ZERO;
    let mut i = 0u64;
    // Enough marks and entries to pass the journal's size bound.
    while i == 0 || s.audit_oldest() == 0 {
        let e = entry(i);
        s.commit_counter_audited(
            CounterId::Slot(3),
            // Wei's window and a token's, by turns.
            AuditedMark { mark: &hw(i + 1), entry: &e, prev: &prev, spend: Some(&by_turns(i)) },
        )
        .unwrap();
        prev = tee_core::device::audit_chain_hash(&prev, &e);
        i += 1;
    }
    let size = fs::metadata(dir.path().join(JOURNAL)).unwrap().len();
    assert!(size <= MAX_JOURNAL + 4096, "compacted: {size}");
    assert_eq!(s.audit_head(), Some((i, prev)));
    assert!(s.audit_oldest() > 0, "old entries rotated out");
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(s.load_counter(CounterId::Slot(3)).unwrap(), Some(hw(i)));
    let last = |asset: Option<Address>| (0..i).rev().find(|k| by_turns(*k).asset == asset);
    for asset in [None, Some(TOKEN)] {
        assert_eq!(
            s.load_spend(3, asset.as_ref()).unwrap(),
            last(asset).map(spent),
            "the spend windows survive compaction"
        );
    }
    assert_eq!(s.audit_head(), Some((i, prev)));
    let mut buf = [0u8; 700];
    assert_eq!(s.load_slot(3, &mut buf).unwrap(), Some(600));
}

#[test]
fn private_directory_and_files() {
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = Private::new();
    let dir = root.path().join("a/b/state");
    drop(open(&dir));
    assert_eq!(mode(&dir), 0o700);
    for f in ["LOCK", JOURNAL, KEY_FILE] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    // A directory others can read or write is refused, with the reason.
    for open_to in [0o777, 0o750, 0o705] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(open_to)).unwrap();
        let e = FileStore::open(&dir, StateKey::File, None).unwrap_err();
        assert!(matches!(e, StoreError::Permissions { .. }), "{e}");
        assert!(e.to_string().contains("open to others"), "{e}");
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    drop(open(&dir));
}

#[test]
fn one_signer_per_state_directory() {
    let dir = Private::new();
    let s = open(dir.path());
    let e = FileStore::open(dir.path(), StateKey::File, None).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    drop(s);
    drop(open(dir.path()));
}

#[test]
fn provisioning_needs_an_admin_and_keeps_it() {
    let dir = Private::new();
    let e = FileStore::open(dir.path(), StateKey::File, None).unwrap_err();
    assert!(matches!(e, StoreError::NoAdmin), "{e}");
    drop(open(dir.path()));
    let e = FileStore::open(dir.path(), StateKey::File, Some(Address([1; 20]))).unwrap_err();
    assert!(matches!(e, StoreError::AdminMismatch { .. }), "{e}");
    // Without its key file, a journal is not read (a key made afresh
    // would open nothing, and say so).
    fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let e = FileStore::open(dir.path(), StateKey::File, None).unwrap_err();
    assert!(matches!(e, StoreError::KeyMissing { .. }), "{e}");
    fs::write(dir.path().join(KEY_FILE), [9u8; 32]).unwrap();
    let e = FileStore::open(dir.path(), StateKey::File, None).unwrap_err();
    assert!(e.to_string().contains("does not open under this state key"), "{e}");
}

/// The host fails a compaction's disk operations at one step, then fills
/// the disk (EIO, ENOSPC: it controls the disk), while marks are committed and
/// released (their group commit returned) one after another; a restart then
/// reads the directory back. Whatever step failed, every released mark is
/// there: before the rename the old journal is kept and appended to, from
/// the rename on signing stops at once. Before this, a failed directory
/// sync after the rename was ignored, the store went on appending to the
/// unlinked old journal, released those marks, and a restart lost them.
#[test]
fn a_compaction_failing_at_any_step_never_loses_a_released_mark() {
    use tee_store::store::CompactionStep;
    for step in CompactionStep::ALL {
        let dir = Private::new();
        let mut s = open(dir.path());
        s.set_max_journal(2048);
        // This step fails, then the disk stays full: every later
        // compaction fails before it writes anything.
        s.inject_compaction_faults(&[step, CompactionStep::CreateTemp]);
        let mut released = 0;
        let mut refused = false;
        for value in 1..=200 {
            let committed =
                s.commit_counter(CounterId::Slot(1), &hw(value)).and_then(|()| match s.ticket() {
                    Some(t) => s.make_durable(t),
                    None => Ok(()),
                });
            match committed {
                Ok(()) => {
                    assert!(!refused, "{step:?}: a mark released after signing stopped");
                    released = value;
                }
                Err(_) => refused = true,
            }
        }
        let stops = matches!(step, CompactionStep::Rename | CompactionStep::SyncDir);
        assert_eq!(refused, stops, "{step:?}: signing stops only from the rename on");
        assert!(released > 0, "{step:?}: marks before the compaction were released");
        drop(s);
        let mut again = open(dir.path());
        let kept = again.load_counter(CounterId::Slot(1)).unwrap().map(|h| h.value);
        assert!(kept >= Some(released), "{step:?}: released {released}, a restart reads {kept:?}");
        // And the journal a restart reads is whole: it goes on from there.
        again.commit_counter(CounterId::Slot(1), &hw(released + 1)).unwrap();
    }
}

/// The dstack API record is written before the store opens (and checks)
/// the directory: it must check the directory first, and never write
/// through a link the host left at its temporary name.
#[test]
fn the_dstack_api_record_checks_the_directory_and_follows_no_link() {
    use tee_store::store::{DSTACK_API_FILE, record_dstack_api};
    let dir = Private::new();
    fs::create_dir_all(dir.path()).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o770)).unwrap();
    assert!(matches!(
        record_dstack_api(dir.path(), "v1"),
        Err(StoreError::Permissions { mode: 0o770, .. })
    ));
    assert!(!dir.path().join(DSTACK_API_FILE).exists(), "nothing written to an open directory");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let victim = dir.0.path().join("victim");
    fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(format!("{DSTACK_API_FILE}.tmp"))).unwrap();
    record_dstack_api(dir.path(), "v1").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(fs::read_to_string(dir.path().join(DSTACK_API_FILE)).unwrap(), "v1\n");
}

#[test]
fn heads_order_across_compactions_and_an_anchor_is_reached_only_on_its_own_branch() {
    use tee_store::store::Head;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s");
    let mut store = FileStore::open(&state, StateKey::File, Some(Address([7; 20]))).unwrap();
    let first = store.head();
    assert_eq!(first.generation, 0);
    assert!(store.reached(&first).unwrap(), "its own head");
    store.store_slot(0, b"a record").unwrap();
    let second = store.head();
    assert!(first.behind(&second) && !second.behind(&first));
    assert!(store.reached(&first).unwrap(), "an earlier head of this journal");
    // The same length with another MAC, and a length no record ends at.
    assert!(!store.reached(&Head { mac: [9; 32], ..first }).unwrap());
    assert!(!store.reached(&Head { length: first.length + 1, ..first }).unwrap());
    // A head beyond the journal is not reached.
    assert!(!store.reached(&Head { length: second.length + 100, ..second }).unwrap());
    // A compaction starts the next generation, shorter: still ahead.
    store.set_max_journal(1);
    store.store_slot(1, b"another").unwrap();
    let third = store.head();
    assert_eq!(third.generation, 1);
    assert!(second.behind(&third));
    assert!(store.reached(&second).unwrap(), "an older generation was carried forward");
    assert_eq!(store.group().durable_head(), third, "a compaction is durable");
}
