//! The shared marks across a PostgreSQL failover. Replicas connect with a
//! multi-host string (`host=a,b target_session_attrs=read-write`), so
//! after a failover they find the promoted standby by themselves.
//!
//! With a synchronous standby, the primary killed while replicas sign
//! colliding sequences and the standby promoted: signing resumes on every
//! replica without a restart, no sequence is signed for two actions, and
//! every released signature's mark is on the new primary (a replica that
//! starts afterwards, having seen nothing, is refused every used sequence).
//!
//! With an asynchronous standby the signer refuses the database (naming the
//! standby) unless the operator accepts it; accepted, a standby promoted
//! behind the primary loses marks: the replica that saw the higher row
//! refuses, and one that did not signs a second action at a used sequence
//! (what the refusal prevents).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tee_core::protocol::{DeviceError, Health, Probe, Replication};
use tee_host::backend::{OpenError, open_device};
use tee_host::marks::MarksError;
use tee_tests::postgres::Cluster;
use tee_tests::replica::{Replica, action, app, replica, replica_with, sign};
use tee_tests::signer::config;

/// Both servers, the primary first: whichever accepts writes is used.
fn both(primary: &Cluster, standby: &Cluster) -> String {
    format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres sslmode=disable \
         target_session_attrs=read-write connect_timeout=2",
        primary.port(),
        standby.port()
    )
}

/// Waits until `primary` streams to `name` with `sync_state` `state`.
fn wait_streaming(primary: &Cluster, name: &str, state: &str) {
    let mut db = postgres::Client::connect(&primary.socket_url(), postgres::NoTls).unwrap();
    for _ in 0..600 {
        let row = db
            .query_opt(
                "SELECT sync_state::text FROM pg_stat_replication
                 WHERE application_name = $1 AND state = 'streaming'",
                &[&name],
            )
            .unwrap();
        if row.is_some_and(|r| r.get::<_, String>(0) == state) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{name} never streamed from the primary as {state}");
}

/// Signs `r`'s action at `sequence`, asking again while the database is
/// away (`Storage`: a failover in progress), at most `tries` times.
fn sign_through(
    p: &mut Replica,
    r: u8,
    sequence: u64,
    tries: u32,
) -> Result<tee_core::protocol::SignResponse, DeviceError> {
    let mut last = Err(DeviceError::Storage);
    for _ in 0..tries {
        last = sign(p, r, sequence);
        if last != Err(DeviceError::Storage) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    last
}

#[test]
fn a_failover_to_a_synchronous_standby_keeps_every_mark() {
    const REPLICAS: u8 = 3;
    const UP: u8 = 0;
    const FAILING_OVER: u8 = 1;
    const PROMOTED: u8 = 2;
    let primary = Cluster::start_with(false, "-c synchronous_standby_names=standby");
    let standby = Cluster::standby_of(&primary, "standby");
    wait_streaming(&primary, "standby", "sync");
    let url = both(&primary, &standby);
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let phase = Arc::new(AtomicU8::new(UP));
    let signed_total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..REPLICAS)
        .map(|r| {
            let mut p = replica(dir.path(), &format!("r{r}"), &dstack, Some(&url));
            let health = p.call(&Health).unwrap();
            assert_eq!((health.marks, health.replication), (Probe::Ok, Replication::Synchronous));
            let (phase, signed_total) = (phase.clone(), signed_total.clone());
            std::thread::spawn(move || {
                let (mut signed, mut after) = (Vec::new(), 0u32);
                let mut seq = 1;
                loop {
                    let now = phase.load(Ordering::SeqCst);
                    if now == PROMOTED && after >= 3 {
                        return signed;
                    }
                    match sign(&mut p, r, seq) {
                        Ok(s) => {
                            signed.push((seq, r, s.digest));
                            signed_total.fetch_add(1, Ordering::SeqCst);
                            after += u32::from(now == PROMOTED);
                            seq += 1;
                        }
                        Err(DeviceError::Replay { high_water }) => {
                            assert!(high_water >= seq);
                            seq += 1;
                        }
                        // The primary gone, the standby not yet promoted:
                        // the same request again (paced, not timed).
                        Err(DeviceError::Storage) => {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        Err(e) => panic!("replica {r} at {seq}: {e:?}"),
                    }
                }
            })
        })
        .collect();
    while signed_total.load(Ordering::SeqCst) < 30 {
        std::thread::yield_now();
    }
    // The primary dies mid-run (no checkpoint, sessions cut); the standby
    // is promoted.
    phase.store(FAILING_OVER, Ordering::SeqCst);
    primary.kill();
    standby.promote();
    phase.store(PROMOTED, Ordering::SeqCst);
    let mut by_sequence: BTreeMap<u64, Vec<(u8, tee_core::B256)>> = BTreeMap::new();
    for t in threads {
        for (seq, r, digest) in t.join().unwrap() {
            by_sequence.entry(seq).or_default().push((r, digest));
        }
    }
    assert!(
        by_sequence.values().all(|d| d.len() == 1),
        "a sequence signed for two actions: {by_sequence:?}"
    );
    // Every released signature's mark is on the new primary: a replica
    // that never saw any of them is refused each used sequence for another
    // action, by the shared mark.
    let mut late = replica(dir.path(), "late", &dstack, Some(&url));
    let health = late.call(&Health).unwrap();
    assert_eq!((health.marks, health.replication), (Probe::Ok, Replication::NoStandby));
    for (seq, who) in &by_sequence {
        let other = action(who[0].0 + 100, *seq);
        let refused =
            late.call(&tee_core::protocol::Sign { slot: 0, sequence: *seq, action: other });
        assert!(
            matches!(refused, Err(DeviceError::Replay { high_water }) if high_water >= *seq),
            "sequence {seq}, signed before, not refused on the new primary: {refused:?}"
        );
    }
}

#[test]
fn an_asynchronous_standby_is_refused_and_what_the_refusal_prevents() {
    let primary = Cluster::start(false);
    let standby = Cluster::standby_of(&primary, "behind");
    wait_streaming(&primary, "behind", "async");
    let url = both(&primary, &standby);
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());

    // Refused by default, naming the standby and the way out.
    match open_device(&config(&dir.path().join("refused"), &dstack, Some(&url))) {
        Err(OpenError::Marks(MarksError::Replication { found, why })) => {
            assert_eq!(found, Replication::Asynchronous);
            assert!(
                why.contains("behind") && why.contains("--marks-accept-async-standbys"),
                "{why}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("shared marks served from a primary with an asynchronous standby"),
    }

    // Accepted by the operator: what it costs.
    let accepted = |name: &str| {
        let mut c = config(&dir.path().join(name), &dstack, Some(&url));
        c.accept_async_standbys = true;
        replica_with(dir.path(), name, &c)
    };
    let mut a = accepted("a");
    let mut b = accepted("b");
    let health = a.call(&Health).unwrap();
    assert_eq!((health.marks, health.replication), (Probe::Ok, Replication::Asynchronous));
    // The standby falls behind; the primary acknowledges marks it never
    // gets, then dies; the standby is promoted.
    standby.stop();
    let mut signed_by_a = BTreeMap::new();
    for seq in 1..=5 {
        signed_by_a.insert(seq, sign(&mut a, 1, seq).unwrap().digest);
    }
    primary.kill();
    standby.start_again();
    standby.promote();
    // a saw the row at 5; the new primary has none: a refuses, although
    // the database answers (the row it saw is gone: put back or lost).
    assert_eq!(sign_through(&mut a, 1, 6, 100), Err(DeviceError::Storage));
    let health = a.call(&Health).unwrap();
    assert_eq!(health.marks, Probe::Ok, "the new primary answers; the refusal is the lost row");
    // b never saw it: it signs another action at sequence 5, a second
    // signature at a used sequence. This is what the default refusal of
    // an asynchronous standby prevents.
    let twice = sign_through(&mut b, 2, 5, 100).unwrap();
    assert_ne!(twice.digest, signed_by_a[&5], "two different actions signed at sequence 5");
}

/// The server's default commits locally (`synchronous_commit = local`, an
/// operator's choice for other applications): the signer's own session
/// still waits for the synchronous standby. With that standby gone, a
/// commit never completes, so no mark is taken (refused within the
/// deadline) rather than taken where a failover would lose it; with the
/// standby back, signing resumes.
#[test]
fn the_signer_waits_for_the_synchronous_standby_whatever_the_servers_default() {
    let primary = Cluster::start_with(
        false,
        "-c synchronous_standby_names=standby -c synchronous_commit=local",
    );
    let standby = Cluster::standby_of(&primary, "standby");
    wait_streaming(&primary, "standby", "sync");
    let url = both(&primary, &standby);
    let dir = tempfile::tempdir().unwrap();
    let dstack = app(dir.path());
    let mut a = replica(dir.path(), "a", &dstack, Some(&url));
    sign(&mut a, 1, 1).unwrap();
    standby.stop();
    assert_eq!(
        sign(&mut a, 1, 2),
        Err(DeviceError::Storage),
        "a mark taken with no standby to keep it"
    );
    standby.start_again();
    wait_streaming(&primary, "standby", "sync");
    sign_through(&mut a, 1, 2, 100).unwrap();
}
