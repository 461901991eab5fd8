//! Replicas of one dstack app derive the same key. Each with only its own
//! marks, two replicas sign two different actions at one (key, sequence);
//! sharing their marks in PostgreSQL (`serve --marks`), never: whichever
//! claims a sequence first signs at it, the other refuses with a replay
//! naming the shared mark, and an exact retry of the first's action on the
//! other gets the same signature. Replicas race on colliding sequences from
//! many threads; a mark the database rewrote stops that key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use tee_client::{Client, ClientError};
use tee_core::protocol::*;
use tee_host::server::Served;
use tee_tests::replica::{Replica, action, app, replica, sign};
use tee_tests::signer::pg_database;
use tee_transport::connect;

#[test]
fn without_shared_marks_two_replicas_sign_twice_at_one_sequence() {
    // The problem the shared marks solve, shown: same key, own marks each.
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let mut a = replica(dir.path(), "a", &dstack, None);
    let mut b = replica(dir.path(), "b", &dstack, None);
    let key_a = a.call(&GetPublicKey { slot: 0 }).unwrap().address;
    assert_eq!(key_a, b.call(&GetPublicKey { slot: 0 }).unwrap().address, "one app, one key");
    let (x, y) = (sign(&mut a, 1, 7).unwrap(), sign(&mut b, 2, 7).unwrap());
    assert_ne!(x.digest, y.digest, "two different actions signed at sequence 7 by one key");
}

#[test]
fn with_shared_marks_a_sequence_is_signed_once_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_once");
    let mut a = replica(dir.path(), "a", &dstack, Some(&url));
    let mut b = replica(dir.path(), "b", &dstack, Some(&url));
    let first = sign(&mut a, 1, 7).unwrap();
    // Another action at 7 on the other replica: refused, naming the mark.
    assert_eq!(sign(&mut b, 2, 7), Err(DeviceError::Replay { high_water: 7 }));
    // Below it too (b's own marks never saw 7).
    assert_eq!(sign(&mut b, 2, 3), Err(DeviceError::Replay { high_water: 7 }));
    // The exact retry of a's action, on b: the same signature.
    let again = b.call(&Sign { slot: 0, sequence: 7, action: action(1, 7) }).unwrap();
    assert_eq!(again, first);
    // Above it, either replica signs.
    sign(&mut b, 2, 8).unwrap();
    assert_eq!(sign(&mut a, 1, 8), Err(DeviceError::Replay { high_water: 8 }));
}

#[test]
fn racing_replicas_never_sign_two_actions_at_one_sequence() {
    const REPLICAS: u8 = 3;
    const SEQUENCES: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_race");
    let barrier = Arc::new(Barrier::new(usize::from(REPLICAS)));
    let threads: Vec<_> = (0..REPLICAS)
        .map(|r| {
            let mut p = replica(dir.path(), &format!("r{r}"), &dstack, Some(&url));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut signed = Vec::new();
                for seq in 1..=SEQUENCES {
                    match sign(&mut p, r, seq) {
                        Ok(s) => signed.push((seq, s.digest)),
                        Err(DeviceError::Replay { high_water }) => assert!(high_water >= seq),
                        Err(e) => panic!("replica {r} at {seq}: {e:?}"),
                    }
                }
                signed
            })
        })
        .collect();
    let mut by_sequence: BTreeMap<u64, Vec<tee_core::B256>> = BTreeMap::new();
    for t in threads {
        for (seq, digest) in t.join().unwrap() {
            by_sequence.entry(seq).or_default().push(digest);
        }
    }
    assert!(
        by_sequence.values().all(|d| d.len() == 1),
        "a sequence signed by two replicas: {by_sequence:?}"
    );
    assert!(!by_sequence.is_empty());
}

#[test]
fn a_mark_the_database_lowered_stops_the_key_and_an_unreachable_one_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_tamper");
    let mut a = replica(dir.path(), "a", &dstack, Some(&url));
    let mut b = replica(dir.path(), "b", &dstack, Some(&url));
    sign(&mut a, 1, 10).unwrap();
    // The database operator lowers the mark to have b sign at 5..10 again.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(db.execute("UPDATE tee_signer_marks SET value = 4", &[]).unwrap(), 1);
    assert_eq!(sign(&mut b, 2, 5), Err(DeviceError::Storage));
    assert_eq!(sign(&mut b, 2, 11), Err(DeviceError::Storage), "the key stays stopped");
    // A replica whose database is gone refuses; it never signs on its own marks.
    let mut c = replica(dir.path(), "c", &dstack, Some(&url));
    db.batch_execute("DROP TABLE tee_signer_marks").unwrap();
    assert_eq!(sign(&mut c, 3, 20), Err(DeviceError::Storage));
}

/// The database stops while two replicas sign colliding sequences from
/// their own threads (a cluster of the test's own, over TLS), and starts
/// again: a request made while it is down is refused with `Storage`, never
/// signed on local marks alone; each replica is refused at least once;
/// the replicas sign again by themselves once it is back (no restart of
/// theirs); and no sequence is ever signed for two actions. The phases
/// follow what happened (signatures made, refusals seen), not a clock.
#[test]
fn a_database_stopped_mid_run_refuses_then_resumes_and_never_signs_twice() {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    const UP: u8 = 0;
    const DOWN: u8 = 1;
    const STARTING: u8 = 2;
    const BACK: u8 = 3;
    let pg = tee_tests::postgres::Cluster::start(true);
    let url = pg.url(&format!("sslmode=verify-full sslrootcert={}", pg.ca().display()));
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let phase = Arc::new(AtomicU8::new(UP));
    let signed_total = Arc::new(AtomicU64::new(0));
    let signed_down = Arc::new(AtomicU64::new(0));
    let refused_down: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let threads: Vec<_> = (0..2u8)
        .map(|r| {
            let mut p = replica(dir.path(), &format!("r{r}"), &dstack, Some(&url));
            let (phase, signed_total, signed_down, refused_down) =
                (phase.clone(), signed_total.clone(), signed_down.clone(), refused_down.clone());
            std::thread::spawn(move || {
                let (mut signed, mut after) = (Vec::new(), 0u32);
                let mut seq = 1;
                loop {
                    // The phase when the request starts: one started while
                    // the database was down cannot have been claimed.
                    let now = phase.load(Ordering::SeqCst);
                    if now == BACK && after > 0 {
                        return signed;
                    }
                    match sign(&mut p, r, seq) {
                        Ok(s) => {
                            signed.push((seq, s.digest));
                            signed_total.fetch_add(1, Ordering::SeqCst);
                            signed_down.fetch_add(u64::from(now == DOWN), Ordering::SeqCst);
                            after += u32::from(now == BACK);
                            seq += 1;
                        }
                        Err(DeviceError::Replay { high_water }) => {
                            assert!(high_water >= seq);
                            seq += 1;
                        }
                        // The database is away: the same request again
                        // (paced, not timed).
                        Err(DeviceError::Storage) => {
                            if now == DOWN {
                                refused_down[usize::from(r)].fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        Err(e) => panic!("replica {r} at {seq}: {e:?}"),
                    }
                }
            })
        })
        .collect();
    while signed_total.load(Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }
    pg.stop();
    phase.store(DOWN, Ordering::SeqCst);
    while refused_down.iter().any(|n| n.load(Ordering::SeqCst) == 0)
        && signed_down.load(Ordering::SeqCst) == 0
    {
        std::thread::yield_now();
    }
    assert_eq!(signed_down.load(Ordering::SeqCst), 0, "signed while the database was down");
    phase.store(STARTING, Ordering::SeqCst);
    pg.start_again();
    phase.store(BACK, Ordering::SeqCst);
    let mut by_sequence: BTreeMap<u64, Vec<tee_core::B256>> = BTreeMap::new();
    for t in threads {
        for (seq, digest) in t.join().unwrap() {
            by_sequence.entry(seq).or_default().push(digest);
        }
    }
    assert_eq!(signed_down.load(Ordering::SeqCst), 0, "signed while the database was down");
    assert!(
        by_sequence.values().all(|d| d.len() == 1),
        "a sequence signed by two replicas: {by_sequence:?}"
    );
}

/// Through the server, where a signature's mark is claimed in the database
/// outside the device lock before the device commits it: two replicas
/// served over unix sockets, eight client threads on each signing
/// colliding sequences on the one key at once. Never two actions at one
/// sequence, every released signature's sequence refused to any other
/// action afterwards, and no claim left behind.
#[test]
fn claims_made_outside_the_device_lock_never_sign_twice() {
    const CLIENTS: u8 = 8;
    const SEQUENCES: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_server");
    let replicas: Vec<Replica> =
        (0..2u8).map(|r| replica(dir.path(), &format!("s{r}"), &dstack, Some(&url))).collect();
    let devices: Vec<_> = replicas.iter().map(|r| (r.device.clone(), r.endpoint.clone())).collect();
    let barrier = Arc::new(Barrier::new(usize::from(CLIENTS) * 2));
    let threads: Vec<_> = (0..CLIENTS * 2)
        .map(|c| {
            let endpoint = devices[usize::from(c % 2)].1.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut client =
                    Client::new(connect(&endpoint, std::time::Duration::from_secs(30)).unwrap());
                barrier.wait();
                let mut signed = Vec::new();
                for seq in 1..=SEQUENCES {
                    match client.call(&Sign { slot: 0, sequence: seq, action: action(c, seq) }) {
                        Ok(s) => signed.push((seq, c, s.digest)),
                        Err(ClientError::Device(DeviceError::Replay { high_water })) => {
                            assert!(high_water >= seq)
                        }
                        Err(e) => panic!("client {c} at {seq}: {e:?}"),
                    }
                }
                signed
            })
        })
        .collect();
    let mut by_sequence: BTreeMap<u64, Vec<(u8, tee_core::B256)>> = BTreeMap::new();
    for t in threads {
        for (seq, c, digest) in t.join().unwrap() {
            by_sequence.entry(seq).or_default().push((c, digest));
        }
    }
    assert!(
        by_sequence.values().all(|d| d.len() == 1),
        "a sequence signed for two actions: {by_sequence:?}"
    );
    assert!(!by_sequence.is_empty());
    // Every released sequence stays taken on both replicas, for any other action.
    for (seq, who) in &by_sequence {
        let (c, _) = who[0];
        for (_, endpoint) in &devices {
            let mut client =
                Client::new(connect(endpoint, std::time::Duration::from_secs(30)).unwrap());
            let other = Sign { slot: 0, sequence: *seq, action: action(c + 100, *seq) };
            assert!(matches!(
                client.call(&other),
                Err(ClientError::Device(DeviceError::Replay { .. }))
            ));
        }
    }
    for (device, _) in &devices {
        let d = device.lock().unwrap();
        assert_eq!(d.backend().claims().unwrap().pending(), 0, "a claim left behind");
    }
}

/// A claim waiting on the database never holds the device: while the
/// database keeps a key's row locked (a slow or hostile database, another
/// replica's long transaction), the server's claim for that key waits, and
/// the same device still answers other requests; the signature follows
/// once the row is free.
#[test]
fn a_claim_waiting_on_the_database_does_not_hold_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_lock");
    let marks = format!("{url} application_name=replicas_lock");
    let a = replica(dir.path(), "a", &dstack, Some(&marks));
    let client = || a.client();
    client().call(&Sign { slot: 0, sequence: 1, action: action(1, 1) }).unwrap();

    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut lock = db.transaction().unwrap();
    lock.query("SELECT value FROM tee_signer_marks FOR UPDATE", &[]).unwrap();
    let mut signer = client();
    let waiting = std::thread::spawn(move || {
        signer.call(&Sign { slot: 0, sequence: 2, action: action(1, 2) }).map(|s| s.digest)
    });
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut claim_waits = || -> bool {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = 'replicas_lock' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        n == 1
    };
    while !claim_waits() {
        assert!(!waiting.is_finished(), "the claim never waited on the locked row");
        std::thread::yield_now();
    }
    // The device answers while the claim waits.
    client().call(&DeviceInfo).unwrap();
    assert!(claim_waits(), "the device answered only once the claim had given up");
    lock.commit().unwrap();
    waiting.join().unwrap().unwrap();
}

/// Power lost on a replica after the database committed a capped claim
/// (the value reserved, the sequence spent) and before its journal made the
/// mark durable: no signature left. The other replica cannot spend the
/// reservation; the restarted replica's exact retry finds its claim and
/// signs, reserving nothing again; the window counts the value once.
#[test]
fn a_reservation_made_before_a_power_loss_is_kept_and_retried_once() {
    use tee_core::U256;
    use tee_store::store::{Fault, JOURNAL};
    use tee_testkit::sample;
    use tee_tests::replica::{reopen, replica_under};
    use tee_tests::signer::config;
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let url = pg_database("replicas_cap_crash");
    let policy = Policy {
        kinds: KindSet::NONE.with(tee_core::ActionKind::GenericTx),
        max_value: U256([0xff; 32]),
        spend_cap: Some(SpendCap { max: U256::from_u64(10), window_secs: 3_600 }),
        ..tee_testkit::typed_policy()
    };
    let pay = |sequence: u64, wei: u64| Sign {
        slot: 0,
        sequence,
        action: sample::transfer(U256::from_u64(wei), sequence),
    };
    let left = |r: Result<SignResponse, DeviceError>| match r {
        Err(DeviceError::OverCap(c)) => c.remaining(),
        other => panic!("not a cap refusal: {other:?}"),
    };
    let mut a = replica_under(dir.path(), "a", &dstack, Some(&url), policy.clone());
    let mut b = replica_under(dir.path(), "b", &dstack, Some(&url), policy);
    let group = a.device.lock().unwrap().backend().metered().0.unwrap();
    group.inject(Fault::BeforeSync(group.syncs() + 1));
    assert_eq!(a.call(&pay(1, 6)), Err(DeviceError::Storage));
    let durable = group.crash_image_len();
    assert_eq!(left(b.call(&pay(2, 5))), 4, "the other replica spent the reservation");
    // The restart finds the journal as the power loss left it.
    drop(a);
    let journal = std::fs::OpenOptions::new().write(true).open(dir.path().join("a").join(JOURNAL));
    journal.unwrap().set_len(durable).unwrap();
    let mut a =
        reopen(dir.path(), "a2", &config(&dir.path().join("a"), &dstack, Some(&url))).unwrap();
    a.call(&pay(1, 6)).unwrap();
    a.call(&pay(2, 4)).unwrap();
    assert_eq!(left(b.call(&pay(3, 1))), 0);
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let spent: String =
        db.query_one("SELECT spent::text FROM tee_signer_spend", &[]).unwrap().get(0);
    assert_eq!(spent, "10");
}
