//! The shared anti-replay marks against a real PostgreSQL (`.ci/run` starts
//! one and sets TEE_SIGNER_TEST_PG; by hand: `source .ci/postgres`), as
//! replicas and a hostile database operator would use it: many connections
//! raising colliding sequences on one key, exact retries from another
//! replica, rows lowered or rewritten behind the signer's back, a newer
//! schema, an unreachable server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use tee_core::device::SpendAsk;
use tee_core::protocol::{CapRefusal, SpendCap};
use tee_core::{Address, B256, U256};
use tee_host::marks::replication::ReplicationRule;
use tee_host::marks::{Mark, MarksError, Outcome, PgMarks, SCHEMA_VERSION};
use zeroize::Zeroizing;

const KEY: [u8; 32] = [7; 32];

fn database(schema: &str) -> String {
    tee_tests::signer::pg_database(schema)
}

fn raw(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn marks(url: &str) -> PgMarks {
    PgMarks::connect(url, Zeroizing::new(KEY), ReplicationRule::default()).unwrap()
}

fn mark(signer: u8, value: u64, what: u8) -> Mark<'static> {
    Mark {
        signer: Address([signer; 20]),
        space: "actions",
        value,
        commitment: B256([what; 32]),
        spend: None,
    }
}

#[test]
fn colliding_replicas_get_one_winner_per_sequence() {
    let url = database("marks_collide");
    const REPLICAS: usize = 12;
    const SEQUENCES: u64 = 40;
    let barrier = Arc::new(Barrier::new(REPLICAS));
    let threads: Vec<_> = (0..REPLICAS)
        .map(|r| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut store = marks(&url);
                barrier.wait();
                let mut won = Vec::new();
                for seq in 1..=SEQUENCES {
                    // Each replica signs its own action (commitment r) at
                    // every sequence, and a second key in the same group.
                    let out = store.raise(&[mark(1, seq, r as u8), mark(2, seq, r as u8)]).unwrap();
                    for (key, outcome) in [(1u8, out[0]), (2, out[1])] {
                        match outcome {
                            Outcome::Raised => won.push((key, seq)),
                            Outcome::Used { stored } => assert!(stored >= seq),
                            other => panic!("replica {r}, seq {seq}: {other:?}"),
                        }
                    }
                }
                won
            })
        })
        .collect();
    let mut winners: BTreeMap<(u8, u64), usize> = BTreeMap::new();
    for t in threads {
        for won in t.join().unwrap() {
            *winners.entry(won).or_default() += 1;
        }
    }
    assert!(winners.values().all(|&n| n == 1), "a (key, sequence) raised twice: {winners:?}");
    let mut store = marks(&url);
    for key in [1, 2] {
        let (value, _) = store.load(&Address([key; 20]), "actions").unwrap().unwrap();
        assert_eq!(value, SEQUENCES, "the mark ends at the highest sequence");
    }
}

#[test]
fn an_exact_retry_on_another_replica_is_recognised_and_nothing_else_is() {
    let url = database("marks_retry");
    let (mut a, mut b) = (marks(&url), marks(&url));
    assert_eq!(a.raise(&[mark(1, 5, 0xaa)]).unwrap(), [Outcome::Raised]);
    // The same action at the same sequence, on replica b: the same answer.
    assert_eq!(b.raise(&[mark(1, 5, 0xaa)]).unwrap(), [Outcome::Retry]);
    // Another action at that sequence, or below it: used.
    assert_eq!(b.raise(&[mark(1, 5, 0xbb)]).unwrap(), [Outcome::Used { stored: 5 }]);
    assert_eq!(b.raise(&[mark(1, 4, 0xaa)]).unwrap(), [Outcome::Used { stored: 5 }]);
    // Spaces and keys are independent; u64::MAX is stored exactly.
    let admin = Mark { space: "admin", ..mark(1, u64::MAX, 1) };
    assert_eq!(b.raise(&[admin, mark(3, 1, 1)]).unwrap(), [Outcome::Raised, Outcome::Raised]);
    assert_eq!(a.load(&Address([1; 20]), "admin").unwrap(), Some((u64::MAX, B256([1; 32]))));
    assert_eq!(a.load(&Address([1; 20]), "actions").unwrap(), Some((5, B256([0xaa; 32]))));
    assert_eq!(a.load(&Address([9; 20]), "actions").unwrap(), None);
}

#[test]
fn rows_written_outside_the_app_stop_that_key_only() {
    let url = database("marks_tamper");
    let mut store = marks(&url);
    store.raise(&[mark(1, 10, 1), mark(2, 10, 1)]).unwrap();
    let mut db = raw(&url);
    // The operator lowers key 1's mark to reuse sequences 6..10.
    db.execute("UPDATE tee_signer_marks SET value = 5 WHERE signer = $1", &[&[1u8; 20].as_slice()])
        .unwrap();
    assert_eq!(
        store.raise(&[mark(1, 6, 2), mark(2, 11, 2)]).unwrap(),
        [Outcome::Tampered, Outcome::Raised]
    );
    assert!(matches!(store.load(&Address([1; 20]), "actions"), Err(MarksError::Tampered { .. })));
    // A row under a MAC key that is not the app's: the same.
    let mut other =
        PgMarks::connect(&url, Zeroizing::new([8; 32]), ReplicationRule::default()).unwrap();
    other.raise(&[mark(4, 1, 1)]).unwrap();
    assert_eq!(store.raise(&[mark(4, 2, 1)]).unwrap(), [Outcome::Tampered]);
    // Deleting a row loses it (what the MAC cannot show: docs/security.md).
    db.execute("DELETE FROM tee_signer_marks WHERE signer = $1", &[&[2u8; 20].as_slice()]).unwrap();
    assert_eq!(store.load(&Address([2; 20]), "actions").unwrap(), None);
}

#[test]
fn a_newer_schema_is_refused_and_an_unreachable_server_is_an_error() {
    let url = database("marks_schema");
    marks(&url);
    marks(&url); // a second replica starts on the schema the first made
    raw(&url)
        .execute("UPDATE tee_signer_schema SET version = $1", &[&(SCHEMA_VERSION + 1)])
        .unwrap();
    match PgMarks::connect(&url, Zeroizing::new(KEY), ReplicationRule::default()) {
        Err(MarksError::NewerSchema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("{other:?}"),
    }
    // Nothing listens on port 1: a typed error, within the connect timeout.
    match PgMarks::connect(
        "host=127.0.0.1 port=1 user=postgres connect_timeout=2 sslmode=disable",
        Zeroizing::new(KEY),
        ReplicationRule::default(),
    ) {
        Err(MarksError::Unavailable(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        PgMarks::connect("port=notanumber", Zeroizing::new(KEY), ReplicationRule::default()),
        Err(MarksError::Url(_))
    ));
    // Over TCP, libpq's default sslmode (prefer) would take plain text
    // from whoever answers without TLS: refused before connecting, naming
    // the choice; sslmode=disable says plain text on purpose.
    for prefer in [
        "host=127.0.0.1 port=1 user=postgres",
        "postgres://postgres@127.0.0.1:1/postgres?sslmode=prefer",
    ] {
        match PgMarks::connect(prefer, Zeroizing::new(KEY), ReplicationRule::default()) {
            Err(MarksError::Url(why)) => {
                assert!(why.contains("sslmode=require") && why.contains("disable"), "{why}")
            }
            other => panic!("{prefer}: {other:?}"),
        }
    }
}

#[test]
fn a_dropped_connection_fails_one_call_and_the_next_reconnects() {
    // Its own application name: the other tests' sessions stay up.
    let url = format!("{} application_name=marks_reconnect", database("marks_reconnect"));
    let mut store = marks(&url);
    store.raise(&[mark(1, 1, 1)]).unwrap();
    // The server ends this store's session (what a restart or failover does).
    let mut db = raw(&url);
    let ended = db
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'marks_reconnect' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(ended >= 1);
    match store.raise(&[mark(1, 2, 1)]) {
        Err(MarksError::Unavailable(_)) => {}
        other => panic!("the broken connection must fail the call: {other:?}"),
    }
    // The next call reconnects; the failed raise left nothing behind.
    assert_eq!(store.load(&Address([1; 20]), "actions").unwrap(), Some((1, B256([1; 32]))));
    assert_eq!(store.raise(&[mark(1, 2, 1)]).unwrap(), [Outcome::Raised]);
}

/// TLS to the marks database, as an operator deploys it over a network
/// (a cluster of the test's own with a throwaway CA): with libpq's
/// `sslmode=verify-full sslrootcert=…` the session is encrypted; a server
/// whose certificate another CA signed, or that answers for another host
/// name, is refused as unavailable (a man in the middle), never used.
#[test]
fn marks_over_tls_verify_the_server() {
    let pg = tee_tests::postgres::Cluster::start(true);
    let ca = pg.ca().display().to_string();
    let mut store = marks(&pg.url(&format!("sslmode=verify-full sslrootcert={ca}")));
    assert_eq!(store.raise(&[mark(1, 1, 1)]).unwrap(), [Outcome::Raised]);
    let encrypted: i64 = raw(&pg.socket_url())
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE application_name = 'tee-signer' AND ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(encrypted, 1);
    // Libpq's URL form, the CA percent-encoded.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=require&sslrootcert={}",
        pg.port(),
        percent_encoding::utf8_percent_encode(&ca, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(marks(&url).raise(&[mark(1, 1, 1)]).unwrap(), [Outcome::Retry]);

    let other = pg.other_ca().display().to_string();
    for (what, url) in [
        ("another CA", pg.url(&format!("sslmode=require sslrootcert={other}"))),
        (
            "another host name",
            pg.url(&format!("sslmode=require sslrootcert={ca}"))
                .replace("host=localhost", "host=db.invalid hostaddr=127.0.0.1"),
        ),
        ("the public roots", pg.url("sslmode=require")),
    ] {
        match PgMarks::connect(&url, Zeroizing::new(KEY), ReplicationRule::default()) {
            Err(MarksError::Unavailable(e)) => {
                assert!(format!("{e:?}").to_lowercase().contains("certificate"), "{what}: {e:?}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// The one-statement path (one mark over the row this store last saw)
/// raises only over exactly that row: the database lowering the value
/// under the old MAC, putting an older authentic row back, or deleting the
/// row, each stops the key for a store that saw the higher row; a store
/// that never saw it takes the older authentic row (the limit of a MAC,
/// docs/security.md).
#[test]
fn the_one_statement_path_never_raises_over_a_row_it_did_not_see() {
    let url = database("marks_known");
    let mut store = marks(&url);
    let mut db = raw(&url);
    let key = |k: u8| [k; 20];
    for k in 1..=3u8 {
        for seq in [5, 10] {
            assert_eq!(store.raise(&[mark(k, seq, seq as u8)]).unwrap(), [Outcome::Raised]);
        }
    }
    // Key 1: the value lowered, the MAC of the row at 10 kept.
    db.execute("UPDATE tee_signer_marks SET value = 4 WHERE signer = $1", &[&key(1).as_slice()])
        .unwrap();
    assert_eq!(store.raise(&[mark(1, 6, 6)]).unwrap(), [Outcome::Tampered]);
    // Key 2: the authentic row at 5 put back (saved before it was raised).
    let copy = database("marks_known_copy");
    marks(&copy).raise(&[mark(2, 5, 5)]).unwrap();
    let old: (String, Vec<u8>, Vec<u8>) = {
        let r = raw(&copy)
            .query_one("SELECT value::text, commitment, mac FROM tee_signer_marks", &[])
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    db.execute(
        "UPDATE tee_signer_marks SET value = $2::text::numeric, commitment = $3, mac = $4 WHERE signer = $1",
        &[&key(2).as_slice(), &old.0, &old.1, &old.2],
    )
    .unwrap();
    assert_eq!(store.raise(&[mark(2, 7, 7)]).unwrap(), [Outcome::Tampered]);
    assert_eq!(store.raise(&[mark(2, 11, 11)]).unwrap(), [Outcome::Tampered], "stays stopped");
    // A store that never saw 10 cannot tell the old authentic row apart.
    assert_eq!(marks(&url).raise(&[mark(2, 7, 7)]).unwrap(), [Outcome::Raised]);
    // Key 3: the row deleted.
    db.execute("DELETE FROM tee_signer_marks WHERE signer = $1", &[&key(3).as_slice()]).unwrap();
    assert_eq!(store.raise(&[mark(3, 11, 11)]).unwrap(), [Outcome::Tampered]);
    assert_eq!(
        raw(&url)
            .query_one(
                "SELECT count(*) FROM tee_signer_marks WHERE signer = $1",
                &[&key(3).as_slice()]
            )
            .unwrap()
            .get::<_, i64>(0),
        0,
        "nothing inserted"
    );
}

/// A host that controls the network (or a database that stops answering)
/// gets the store no further than its client-side deadline: a server that
/// accepts and never answers fails the connection's start-up with
/// [`MarksError::Deadline`] (libpq's `connect_timeout` covers only the TCP
/// connect), a session whose packets are held mid-call fails that call
/// the same way, and the store resumes by itself once the network passes
/// again, with the mark where one of the two calls left it, never lower.
/// The 60 s receive is a guard against a hang, not a speed check.
#[test]
fn a_database_that_stops_answering_costs_a_call_its_deadline_never_a_hang() {
    use std::sync::mpsc;
    use tee_tests::netfault::{Proxy, black_hole};
    let guard = std::time::Duration::from_secs(60);
    let within = |f: Box<dyn FnOnce() -> Result<(), MarksError> + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(f()).unwrap());
        rx.recv_timeout(guard).expect("the store hung past its deadline")
    };

    let hole = format!("host=127.0.0.1 port={} user=postgres sslmode=disable", black_hole());
    let r = within(Box::new(move || {
        PgMarks::connect(&hole, Zeroizing::new(KEY), ReplicationRule::default()).map(drop)
    }));
    assert!(matches!(r, Err(MarksError::Deadline)), "{r:?}");

    let shared = std::env::var("TEE_SIGNER_TEST_PG").unwrap();
    let dir = shared
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .expect("TEE_SIGNER_TEST_PG names its socket directory");
    let proxy = Proxy::start(std::path::Path::new(dir));
    let url = database("marks_deadline").replace(
        &format!("host={dir}"),
        &format!("host=127.0.0.1 port={} sslmode=disable", proxy.port()),
    );
    let store = Arc::new(std::sync::Mutex::new(marks(&url)));
    assert_eq!(store.lock().unwrap().raise(&[mark(1, 1, 1)]).unwrap(), [Outcome::Raised]);
    proxy.freeze();
    let s = store.clone();
    let r = within(Box::new(move || s.lock().unwrap().raise(&[mark(1, 2, 2)]).map(drop)));
    assert!(matches!(r, Err(MarksError::Deadline)), "{r:?}");
    proxy.thaw();
    // Held bytes of the abandoned call may reach the database after all:
    // the same mark again is then a retry, never a second winner.
    let mut store = store.lock().unwrap();
    let again = store.raise(&[mark(1, 2, 2)]).unwrap();
    assert!(matches!(again[..], [Outcome::Raised | Outcome::Retry]), "{again:?}");
    assert_eq!(store.raise(&[mark(1, 2, 3)]).unwrap(), [Outcome::Used { stored: 2 }]);
    assert_eq!(store.load(&Address([1; 20]), "actions").unwrap(), Some((2, B256([2; 32]))));
}

/// A capped mark of key `signer`: `wei` reserved under a cap of 10 wei a
/// minute, at `now`.
fn capped(signer: u8, value: u64, what: u8, wei: u64, now: u64) -> Mark<'static> {
    let cap = SpendCap { max: U256::from_u64(10), window_secs: 60 };
    Mark {
        spend: Some(SpendAsk { asset: None, value: U256::from_u64(wei), cap, now }),
        ..mark(signer, value, what)
    }
}

/// Key `signer`'s window as stored: (start, spent, mark).
fn window(db: &mut postgres::Client, signer: u8) -> Option<(String, String, String)> {
    db.query_opt(
        "SELECT start::text, spent::text, mark::text FROM tee_signer_spend WHERE signer = $1",
        &[&[signer; 20].as_slice()],
    )
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[test]
fn a_capped_mark_reserves_with_its_claim_on_every_replica_and_a_refusal_raises_nothing() {
    let url = database("marks_caps");
    let (mut a, mut b) = (marks(&url), marks(&url));
    assert_eq!(a.raise(&[capped(1, 1, 0xa1, 6, 1_000)]).unwrap(), [Outcome::Raised]);
    // The other replica reserves in the same window: 4 left, 59 s to go.
    let over = b.raise(&[capped(1, 2, 0xb2, 5, 1_001)]).unwrap();
    assert_eq!(over, [Outcome::OverCap(CapRefusal::new(4, 59))]);
    // The refusal raised nothing: sequence 2 is still free.
    assert_eq!(b.raise(&[capped(1, 2, 0xb2, 4, 1_001)]).unwrap(), [Outcome::Raised]);
    // An exact retry, on either replica, reserves nothing again (the
    // window is full: a second reservation would be refused).
    assert_eq!(a.raise(&[capped(1, 2, 0xb2, 4, 1_002)]).unwrap(), [Outcome::Retry]);
    // A used sequence is a replay, whatever its value.
    assert_eq!(a.raise(&[capped(1, 2, 0xcc, 1, 1_002)]).unwrap(), [Outcome::Used { stored: 2 }]);
    assert_eq!(
        a.raise(&[capped(1, 3, 0xa3, 1, 1_002)]).unwrap(),
        [Outcome::OverCap(CapRefusal::new(0, 58))]
    );
    let mut db = raw(&url);
    assert_eq!(window(&mut db, 1), Some(("1000".into(), "10".into(), "2".into())));
    // The next window, then a replica whose clock is behind: nothing reopens.
    assert_eq!(a.raise(&[capped(1, 3, 0xa3, 10, 1_060)]).unwrap(), [Outcome::Raised]);
    assert_eq!(
        b.raise(&[capped(1, 4, 0xb4, 1, 900)]).unwrap(),
        [Outcome::OverCap(CapRefusal::new(0, 220))]
    );
    // An uncapped mark of the key (a replica without the cap) reserves
    // nothing and leaves the window as it was.
    assert_eq!(b.raise(&[mark(1, 4, 0xb4)]).unwrap(), [Outcome::Raised]);
    assert_eq!(window(&mut db, 1), Some(("1060".into(), "10".into(), "3".into())));
    // Windows are per key.
    assert_eq!(b.raise(&[capped(2, 1, 0xb1, 10, 1_060)]).unwrap(), [Outcome::Raised]);
}

/// The database operator attacks the windows: rewrites one, puts an older
/// authentic one back, puts the mark back under it, deletes it. Each stops
/// the key where the attack can be seen: a MAC that fails, or a mark under
/// its window, on every replica; a window below (or gone since) one a
/// replica saw, on that replica.
#[test]
fn a_window_the_database_rewrote_or_put_back_stops_the_key() {
    let url = database("marks_caps_tamper");
    let mut db = raw(&url);
    let mut a = marks(&url);
    let mac = |db: &mut postgres::Client, table: &str| -> Vec<u8> {
        let sql = format!("SELECT mac FROM {table}");
        db.query_one(&sql, &[]).unwrap().get(0)
    };
    assert_eq!(a.raise(&[capped(1, 1, 1, 6, 1_000)]).unwrap(), [Outcome::Raised]);
    let (window_1, mark_1) = (mac(&mut db, "tee_signer_spend"), mac(&mut db, "tee_signer_marks"));
    // Rewritten: the cap given back.
    db.execute("UPDATE tee_signer_spend SET spent = 0", &[]).unwrap();
    assert_eq!(a.raise(&[capped(1, 2, 2, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
    assert_eq!(marks(&url).raise(&[capped(1, 2, 2, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
    db.execute("UPDATE tee_signer_spend SET spent = 6", &[]).unwrap();
    assert_eq!(a.raise(&[capped(1, 2, 2, 1, 1_000)]).unwrap(), [Outcome::Raised]);
    let (window_2, mark_2) = (mac(&mut db, "tee_signer_spend"), mac(&mut db, "tee_signer_marks"));
    // The older authentic window put back alone (6 wei at sequence 1, not
    // 7 at 2): the replica that saw the later one refuses it.
    let back = |db: &mut postgres::Client, spent: i32, mark: i32, mac: &[u8]| {
        let n = db
            .execute(
                "UPDATE tee_signer_spend SET spent = $1::int4, mark = $2::int4, mac = $3",
                &[&spent, &mark, &mac],
            )
            .unwrap();
        assert_eq!(n, 1);
    };
    back(&mut db, 6, 1, &window_1);
    assert_eq!(a.raise(&[capped(1, 3, 3, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
    // The window at sequence 2 again, and the mark row put back alone under
    // it: a replica that never saw either refuses too.
    back(&mut db, 7, 2, &window_2);
    let mark_back = "UPDATE tee_signer_marks SET value = $2::int4, commitment = $3, mac = $1";
    let commitment = |what: u8| [what; 32].to_vec();
    db.execute(mark_back, &[&mark_1, &1i32, &commitment(1)]).unwrap();
    assert_eq!(marks(&url).raise(&[capped(1, 3, 3, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
    db.execute(mark_back, &[&mark_2, &2i32, &commitment(2)]).unwrap();
    let mut fresh = marks(&url);
    assert_eq!(fresh.raise(&[capped(1, 3, 3, 1, 1_000)]).unwrap(), [Outcome::Raised]);
    // Deleted: the replicas that saw it refuse.
    db.execute("DELETE FROM tee_signer_spend", &[]).unwrap();
    assert_eq!(fresh.raise(&[capped(1, 4, 4, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
    assert_eq!(a.raise(&[capped(1, 4, 4, 1, 1_000)]).unwrap(), [Outcome::Tampered]);
}
