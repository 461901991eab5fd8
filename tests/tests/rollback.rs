//! The rollback anchor: with shared marks, the database records each state
//! directory's durable journal head, and a directory put back to an older
//! copy does not start. Worked as the host would: copy the directory while
//! the signer is stopped, let it sign on, put the copy back (also after
//! writing on the copy without the marks, to get past the recorded length),
//! and edit or delete the anchor's row in the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use tee_core::protocol::*;
use tee_host::backend::OpenError;
use tee_host::marks::MarksError;
use tee_host::marks::anchor::{AnchorError, Behind};
use tee_tests::replica::{Replica, app, reopen, replica, sign};
use tee_tests::signer::{config, pg_database};

/// A signer's host: the app's simulated dstack, a marks database of the
/// test's own, the state directory `a` and a place to keep copies of it.
struct Host {
    dir: tempfile::TempDir,
    dstack: tee_sim::SimServer,
    url: String,
}

impl Host {
    fn new(schema: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let dstack = app(dir.path());
        Host { dir, dstack, url: pg_database(schema) }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The signer on `a`, with the shared marks (and its anchor) or
    /// without; `name` its socket's.
    fn open(&self, name: &str, marks: bool) -> Result<Replica, OpenError> {
        let marks = marks.then_some(self.url.as_str());
        reopen(self.dir.path(), name, &config(&self.path("a"), &self.dstack, marks))
    }

    /// Provisions `a` (slot 0: the app's key) with the shared marks and
    /// signs `sequences` for replica 1; stops.
    fn provision(&self, sequences: std::ops::RangeInclusive<u64>) {
        let mut a = replica(self.dir.path(), "a", &self.dstack, Some(&self.url));
        for seq in sequences {
            sign(&mut a, 1, seq).unwrap();
        }
    }

    /// Starts `a` again, signs `sequences` for replica `r`, stops.
    fn sign_on(&self, marks: bool, r: u8, sequences: std::ops::RangeInclusive<u64>) {
        let mut a = self.open("a", marks).unwrap();
        for seq in sequences {
            sign(&mut a, r, seq).unwrap();
        }
    }

    /// Copies the state directory `from` to `to` (a host's backup, or its
    /// restore), replacing `to`.
    fn copy(&self, from: &str, to: &str) {
        let (from, to) = (self.path(from), self.path(to));
        let _ = std::fs::remove_dir_all(&to);
        tee_store::store::create_private_dir(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    /// The journal length the database records for `a`.
    fn recorded(&self) -> u64 {
        let mut db = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        let row = db.query_one("SELECT length::text FROM tee_signer_anchors", &[]).unwrap();
        row.get::<_, String>(0).parse().unwrap()
    }

    /// The length of `a`'s journal on disk.
    fn journal(&self) -> u64 {
        std::fs::metadata(self.path("a").join(tee_store::store::JOURNAL)).unwrap().len()
    }

    fn sql(&self, statement: &str) {
        let mut db = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        db.batch_execute(statement).unwrap();
    }
}

fn behind(r: Result<impl std::fmt::Debug, OpenError>) -> (Behind, String) {
    match r {
        Err(OpenError::Anchor(AnchorError::Behind(b))) => {
            let shown = AnchorError::Behind(b.clone()).to_string();
            (b.why, shown)
        }
        other => panic!("expected a refusal to start behind the anchor, got {other:?}"),
    }
}

#[test]
fn an_older_copy_of_the_state_directory_does_not_start() {
    let host = Host::new("rollback_older");
    host.provision(1..=3);
    // The host copies the stopped signer's directory; a restart over the
    // same directory starts (it is at its anchor) and signs on.
    host.copy("a", "backup");
    host.sign_on(true, 1, 4..=6);
    // The host puts the copy back: the signer does not start, and says why.
    host.copy("backup", "a");
    let (why, shown) = behind(host.open("a", true));
    assert_eq!(why, Behind::Older);
    assert!(
        shown.contains("behind the rollback anchor") && shown.contains("older copy"),
        "{shown}"
    );
    // Without the marks the same copy starts: the directory alone cannot
    // tell it is old.
    drop(host.open("a", false).unwrap());
}

#[test]
fn a_copy_written_on_past_the_recorded_length_is_on_another_branch() {
    let host = Host::new("rollback_fork");
    host.provision(1..=1);
    host.copy("a", "backup");
    host.sign_on(true, 1, 2..=4);
    // The host restores the copy and, started without the marks, makes it
    // write more than the original had (other actions at the same
    // sequences, and beyond), to get past the recorded length.
    host.copy("backup", "a");
    host.sign_on(false, 2, 2..=8);
    let (why, shown) = behind(host.open("a", true));
    assert_eq!(why, Behind::Forked, "{shown}");
    assert!(shown.contains("another branch"), "{shown}");
}

#[test]
fn the_anchor_row_edited_in_the_database_stops_the_directory_and_deleted_lets_an_old_copy_in() {
    let host = Host::new("rollback_row");
    host.provision(1..=1);
    host.copy("a", "backup");
    host.sign_on(true, 1, 2..=3);
    // The database's operator lowers the recorded length to let the copy
    // in: the row fails its MAC, and the directory does not start at all.
    host.sql("UPDATE tee_signer_anchors SET length = 1");
    host.copy("backup", "a");
    match host.open("a", true) {
        Err(OpenError::Anchor(AnchorError::Marks(MarksError::AnchorTampered { .. }))) => {}
        other => panic!("expected the anchor's MAC to fail, got {other:?}"),
    }
    // What the anchor cannot see (docs/security.md): the row deleted, the
    // older copy starts (its sequences stay guarded by the shared marks).
    host.sql("DELETE FROM tee_signer_anchors");
    let mut old = host.open("a", true).unwrap();
    assert_eq!(sign(&mut old, 2, 2), Err(DeviceError::Replay { high_water: 3 }));
    sign(&mut old, 1, 4).unwrap();
}

/// An admin change over the replica's socket, authorized by the admin key
/// at the next admin sequence: a policy that allows the typed kinds on
/// slot 0 (what it had).
fn set_policy(r: &mut Replica) {
    let key = tee_core::SigningKey::from_bytes(&tee_testkit::ADMIN_SECRET).unwrap();
    let device_id = r.call(&DeviceInfo).unwrap().device_id;
    let state = r.call(&AdminState { slot: DEVICE_SLOT, nonce: tee_core::B256([1; 32]) }).unwrap();
    let mut cmd =
        SetPolicy { slot: 0, policy: tee_testkit::typed_policy(), auth: AdminAuth::UNSIGNED };
    authorize(&mut cmd, &key, &device_id, state.statement.last_counter + 1).unwrap();
    r.call(&cmd).unwrap();
}

#[test]
fn an_admin_change_is_anchored_before_its_reply_and_signatures_soon_after() {
    let host = Host::new("rollback_covered");
    let mut a = replica(host.dir.path(), "a", &host.dstack, Some(&host.url));
    for seq in 1..=5 {
        sign(&mut a, 1, seq).unwrap();
        // An admin change's reply leaves only once the database records
        // the journal's head with it.
        set_policy(&mut a);
        assert_eq!(host.recorded(), host.journal(), "the admin change is anchored at its reply");
    }
    // Signatures' replies do not wait; the writer catches up by itself.
    for seq in 6..=10 {
        sign(&mut a, 1, seq).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host.recorded() != host.journal() {
        assert!(std::time::Instant::now() < deadline, "the anchor never caught up");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Restarts at any of these points start (the anchor is never ahead of
    // the disk), and a clean stop leaves the anchor at the journal's end.
    for round in 0..3u64 {
        drop(a);
        assert_eq!(host.recorded(), host.journal(), "a clean stop records the last head");
        a = host.open("a", true).unwrap();
        sign(&mut a, 1, 11 + round).unwrap();
    }
    // Many clients at once.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let mut c = a.client();
            std::thread::spawn(move || {
                for i in 0..10u64 {
                    let seq = 100 + t * 10 + i;
                    let action = tee_tests::replica::action(1, seq);
                    match c.call(&Sign { slot: 0, sequence: seq, action }) {
                        Ok(_)
                        | Err(tee_client::ClientError::Device(DeviceError::Replay { .. })) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(a);
    assert_eq!(host.recorded(), host.journal());
    drop(host.open("a", true).unwrap());
}

#[test]
fn a_copy_from_before_an_admin_change_does_not_start_even_after_a_crash() {
    // A power loss right after an admin change's reply: the anchor was
    // recorded before the reply left, so the copy from before the change
    // is refused, whatever the writer thread had done.
    let host = Host::new("rollback_admin");
    host.provision(1..=1);
    host.copy("a", "backup");
    let mut a = host.open("a", true).unwrap();
    set_policy(&mut a);
    // The crash: the directory as the disk has it now, taken while the
    // signer still runs (it never stops cleanly).
    host.copy("a", "crashed");
    std::mem::forget(a);
    host.copy("backup", "a");
    let (why, _) = behind(host.open("b", true));
    assert_eq!(why, Behind::Older);
    // The crashed directory itself starts.
    host.copy("crashed", "a");
    drop(host.open("b", true).unwrap());
}
