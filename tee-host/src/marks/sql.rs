//! The shared marks' statements: the locking transaction, the schema, a
//! row's read, and the client-side deadline every call runs under.

use std::future::Future;

use tee_core::{Address, B256};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Mark, MarksError, Outcome, SCHEMA_LOCK, SCHEMA_VERSION, TIMEOUT, authentic, spend};

/// The highest rows this signer saw committed for a mark's key: its mark
/// row's value and its spend window's `mark` ([`super::spend`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    pub(super) mark: Option<u64>,
    pub(super) spend: Option<u64>,
}

/// A mark in the order its row is locked: its index in the group, the
/// mark, its MAC, and the highest rows this signer saw committed for its key.
pub(super) type Ordered<'m, 's> = (usize, &'m Mark<'s>, [u8; 32], Seen);

/// A mark row this signer now knows: (key, space) and (value, commitment,
/// MAC).
pub(super) type KnownMark = ((Address, String), (u64, B256, [u8; 32]));

/// What a transaction taught this signer of the rows, once it committed:
/// authentic mark rows ((key, space) → (value, commitment, MAC)) and the
/// spend windows' `mark`s.
#[derive(Debug, Default)]
pub(super) struct Learned {
    pub(super) marks: Vec<KnownMark>,
    pub(super) spends: Vec<((Address, String), u64)>,
}

/// The locking transaction of [`super::PgMarks::raise`]: each mark's outcome (by
/// its index in the group) and the authentic rows it leaves, once it
/// committed. A capped mark is decided in a savepoint of its own with its
/// key's spend window ([`super::spend`]): over the cap, the savepoint is
/// rolled back and nothing of it stays.
pub(super) async fn decide(
    client: &mut Client,
    mac_key: &[u8; 32],
    order: Vec<Ordered<'_, '_>>,
    n: usize,
) -> Result<(Vec<(usize, Outcome)>, Learned), MarksError> {
    let mut outcomes = Vec::with_capacity(n);
    let mut learned = Learned::default();
    let mut tx = client.transaction().await?;
    for (i, m, mac, seen) in order {
        let outcome = match &m.spend {
            None => mark(&tx, mac_key, m, &mac, seen.mark, &mut learned).await?.0,
            Some(ask) => {
                let sp = tx.transaction().await?;
                let mut found = Learned::default();
                let outcome = capped(&sp, mac_key, (m, &mac, ask), seen, &mut found).await?;
                if let Outcome::Raised | Outcome::Retry | Outcome::Used { .. } = outcome {
                    sp.commit().await?;
                    learned.marks.extend(found.marks);
                    learned.spends.extend(found.spends);
                } else {
                    // Over the cap, or a window the database put back:
                    // nothing of it stays.
                    sp.rollback().await?;
                }
                outcome
            }
        };
        outcomes.push((i, outcome));
    }
    tx.commit().await?;
    Ok((outcomes, learned))
}

/// A capped mark: its key's window locked first, then the mark decided,
/// then (a new mark) the value reserved, or [`Outcome::OverCap`] for the
/// caller to roll back.
async fn capped(
    tx: &Transaction<'_>,
    mac_key: &[u8; 32],
    (m, mac, ask): (&Mark<'_>, &[u8; 32], &tee_core::device::SpendAsk),
    seen: Seen,
    learned: &mut Learned,
) -> Result<Outcome, MarksError> {
    let key = (m.signer, spend::budget(m));
    let window = match spend::lock(tx, mac_key, m, seen.spend).await? {
        spend::Locked::Window(w) => w,
        spend::Locked::Tampered => return Ok(Outcome::Tampered),
    };
    let (outcome, before) = mark(tx, mac_key, m, mac, seen.mark, learned).await?;
    // A window reserved at a sequence the key's mark never reached: the
    // mark row was put back (or deleted) without it.
    if window.mark > before.unwrap_or(0) {
        return Ok(Outcome::Tampered);
    }
    learned.spends.push((key.clone(), window.mark));
    if outcome != Outcome::Raised {
        return Ok(outcome);
    }
    match spend::reserve(&window, m, ask) {
        Ok(row) => {
            spend::write(tx, mac_key, m, &row, false).await?;
            learned.spends.push((key, row.mark));
            Ok(Outcome::Raised)
        }
        Err(refusal) => Ok(Outcome::OverCap(refusal)),
    }
}

/// One mark decided on its locked row (inserted if there was none): its
/// outcome, and the value of the authentic row it found (`None`: none).
async fn mark(
    tx: &Transaction<'_>,
    mac_key: &[u8; 32],
    m: &Mark<'_>,
    mac: &[u8; 32],
    seen: Option<u64>,
    learned: &mut Learned,
) -> Result<(Outcome, Option<u64>), MarksError> {
    // The row this mark writes, as the INSERT and the UPDATE bind it.
    let value = m.value.to_string();
    let row_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&m.signer.0.as_slice(), &m.space, &value, &m.commitment.0.as_slice(), &mac.as_slice()];
    let stored = loop {
        if let Some(row) = read(tx, &m.signer, m.space, true).await? {
            break Some(row);
        }
        if seen.is_some() {
            break None;
        }
        // No row yet: insert; a replica that inserted meanwhile makes
        // this insert do nothing, and the row is read again.
        let inserted = tx
            .execute(
                "INSERT INTO tee_signer_marks (signer, space, value, commitment, mac)
                 VALUES ($1, $2, $3::text::numeric, $4, $5)
                 ON CONFLICT (signer, space) DO NOTHING",
                &row_params,
            )
            .await?;
        if inserted == 1 {
            break None;
        }
    };
    let key = (m.signer, m.space.to_owned());
    let stored_mac = |row: &Row| <[u8; 32]>::try_from(row.mac.as_slice()).ok();
    let before = stored.as_ref().map(|row| row.value);
    let outcome = match stored {
        // Deleted since this signer saw it.
        None if seen.is_some() => Outcome::Tampered,
        None => {
            learned.marks.push((key, (m.value, m.commitment, *mac)));
            Outcome::Raised
        }
        Some(row) if !authentic(mac_key, &m.signer, m.space, &row) => Outcome::Tampered,
        // An older authentic row put back.
        Some(row) if seen.is_some_and(|seen| row.value < seen) => Outcome::Tampered,
        Some(row) if row.value == m.value && row.commitment == m.commitment => {
            let known = stored_mac(&row).map(|mac| (key, (row.value, row.commitment, mac)));
            learned.marks.extend(known);
            Outcome::Retry
        }
        Some(row) if row.value >= m.value => {
            let known = stored_mac(&row).map(|mac| (key, (row.value, row.commitment, mac)));
            learned.marks.extend(known);
            Outcome::Used { stored: row.value }
        }
        Some(_) => {
            tx.execute(
                "UPDATE tee_signer_marks
                 SET value = $3::text::numeric, commitment = $4, mac = $5
                 WHERE signer = $1 AND space = $2",
                &row_params,
            )
            .await?;
            learned.marks.push((key, (m.value, m.commitment, *mac)));
            Outcome::Raised
        }
    };
    Ok((outcome, before))
}

/// Creates the schema if the database has none; refuses a newer one.
pub(super) async fn migrate(client: &mut Client) -> Result<(), MarksError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tee_signer_schema (
             one boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL
         )",
    )
    .await?;
    let found: Option<i32> =
        tx.query_opt("SELECT version FROM tee_signer_schema", &[]).await?.map(|row| row.get(0));
    match found {
        Some(v) if v > SCHEMA_VERSION => return Err(MarksError::NewerSchema { found: v }),
        Some(_) => {}
        None => {
            tx.batch_execute(
                "CREATE TABLE tee_signer_marks (
                     signer bytea NOT NULL CHECK (length(signer) = 20),
                     space text NOT NULL,
                     value numeric(20, 0) NOT NULL,
                     commitment bytea NOT NULL CHECK (length(commitment) = 32),
                     mac bytea NOT NULL,
                     PRIMARY KEY (signer, space)
                 );
                 COMMENT ON TABLE tee_signer_marks IS
                     'tee-signer anti-replay marks: raise only, each row MACed by the app key';",
            )
            .await?;
            tx.execute("INSERT INTO tee_signer_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])
                .await?;
        }
    }
    // The rollback anchors came later in version 1: a table of its own,
    // which a signer that predates it never reads.
    tx.batch_execute(super::anchor::CREATE).await?;
    // So did the shared spend windows.
    tx.batch_execute(spend::CREATE).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs `call` on `runtime` under the client-side deadline: [`TIMEOUT`],
/// then [`MarksError::Deadline`]. A call abandoned inside a transaction
/// leaves it to be rolled back (the transaction's drop asks for it; the
/// connection is then replaced, which ends the session).
pub(super) fn deadline<T>(
    runtime: &Runtime,
    call: impl Future<Output = Result<T, MarksError>>,
) -> Result<T, MarksError> {
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, call).await.unwrap_or(Err(MarksError::Deadline))
    })
}

/// A connection, started and set to [`TIMEOUT`] per statement (on the
/// server's side too) within the client-side deadline, and the task that
/// drives it on `runtime` (it runs while a call waits on the runtime).
pub(super) fn open(
    runtime: &Runtime,
    config: &Config,
    tls: &MakeRustlsConnect,
) -> Result<(Client, JoinHandle<()>), MarksError> {
    let mut task = None;
    let r = deadline(runtime, async {
        let (client, connection) = config.connect(tls.clone()).await?;
        task = Some(tokio::spawn(async move {
            // Its end (an error, the server gone) shows in the next call.
            let _ = connection.await;
        }));
        client.batch_execute(&format!("SET statement_timeout = {}", TIMEOUT.as_millis())).await?;
        Ok(client)
    });
    match (r, task) {
        (Ok(client), Some(task)) => Ok((client, task)),
        (r, task) => {
            if let Some(t) = task {
                t.abort();
            }
            Err(r.err().unwrap_or(MarksError::Deadline))
        }
    }
}

/// A stored row, decoded.
pub(super) struct Row {
    pub(super) value: u64,
    pub(super) commitment: B256,
    pub(super) mac: Vec<u8>,
}

pub(super) async fn read(
    tx: &Transaction<'_>,
    signer: &Address,
    space: &str,
    lock: bool,
) -> Result<Option<Row>, MarksError> {
    let sql = if lock {
        "SELECT value::text, commitment, mac FROM tee_signer_marks
         WHERE signer = $1 AND space = $2 FOR UPDATE"
    } else {
        "SELECT value::text, commitment, mac FROM tee_signer_marks WHERE signer = $1 AND space = $2"
    };
    let Some(row) = tx.query_opt(sql, &[&signer.0.as_slice(), &space]).await? else {
        return Ok(None);
    };
    let malformed = || MarksError::Malformed { signer: *signer, space: space.to_owned() };
    let value: String = row.try_get(0)?;
    let commitment: Vec<u8> = row.try_get(1)?;
    let mac: Vec<u8> = row.try_get(2)?;
    Ok(Some(Row {
        value: value.parse().map_err(|_| malformed())?,
        commitment: B256(<[u8; 32]>::try_from(commitment.as_slice()).map_err(|_| malformed())?),
        mac,
    }))
}
