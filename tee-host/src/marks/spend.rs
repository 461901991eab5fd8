//! The shared spend windows: a capped key's window in the marks database,
//! reserved in the same transaction that raises the signature's mark.
//!
//! A replica's own journal cannot hold a window the replicas of a key
//! share: each would reserve in its own, and N replicas could spend N caps.
//! So a capped signature's claim ([`tee_core::device::SignClaim::spend`])
//! locks the key's row here before its mark's row (every transaction locks
//! in that order, so replicas never deadlock), decides the mark as any
//! claim does, and only if the mark is new reserves the value with the
//! device's own rule ([`tee_core::policy::SpendWindow::reserve`]): the new
//! window and the mark commit together, or (over the cap) neither does and
//! the claim is refused with what the window has left. An exact retry
//! reserves nothing again.
//!
//! The row is MACed under the app's marks key over the key, the space, the
//! window and `mark`, the sequence of the signature that last reserved in
//! it. The database cannot write a window of its own; what it could do is
//! put back an older authentic window alone (giving a cap back). A replica
//! that saw a later reservation refuses that (`mark` below the one it saw),
//! and any replica refuses a window whose `mark` is above the key's mark
//! row (the mark row put back alone) or a window gone while its mark row
//! stayed; the whole database put back to an older authentic state is the
//! marks' own limit (docs/security.md).

use hmac::Mac;
use tee_core::device::SpendAsk;
use tee_core::policy::SpendWindow;
use tee_core::{Address, U256};
use tokio_postgres::Transaction;

use super::{Mark, MarksError, SCHEMA_VERSION};

/// The windows' table, created with the marks' schema (version 1 gained
/// it; a signer that predates it never reads it, and takes no spend cap
/// with shared marks).
pub(super) const CREATE: &str = "CREATE TABLE IF NOT EXISTS tee_signer_spend (
     signer bytea NOT NULL CHECK (length(signer) = 20),
     space text NOT NULL,
     start numeric(20, 0) NOT NULL,
     spent numeric(78, 0) NOT NULL,
     mark numeric(20, 0) NOT NULL,
     mac bytea NOT NULL,
     PRIMARY KEY (signer, space)
 );
 COMMENT ON TABLE tee_signer_spend IS
     'tee-signer spend windows: reserved with the mark of each capped signature, MACed by the app key';";

/// The window a mark's reservation goes to: the key's wei window is keyed
/// by the mark's space (`actions`), a token's by the space and the token
/// (`actions/0x…`, lowercase hex), so each has a row (and a MAC) of its own.
pub(super) fn budget(m: &Mark<'_>) -> String {
    match m.spend.and_then(|ask| ask.asset) {
        None => m.space.to_owned(),
        Some(token) => format!("{}/0x{}", m.space, hex::encode(token.0)),
    }
}

/// A key's window as stored: the window and the sequence that last
/// reserved in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stored {
    pub(super) window: SpendWindow,
    pub(super) mark: u64,
}

/// What locking a key's window found.
pub(super) enum Locked {
    /// The authentic window (a fresh one if the key never reserved).
    Window(Stored),
    /// A window that fails its MAC, or that the database put back (below
    /// what this signer saw, or gone since).
    Tampered,
}

/// Locks `m`'s key's window (inserting a fresh one if there is none, so
/// there is a row to lock), checked against its MAC and `seen`, the
/// highest `mark` this signer saw for the key.
pub(super) async fn lock(
    tx: &Transaction<'_>,
    mac_key: &[u8; 32],
    m: &Mark<'_>,
    seen: Option<u64>,
) -> Result<Locked, MarksError> {
    let stored = loop {
        if let Some(row) = read(tx, m).await? {
            break row;
        }
        if seen.is_some() {
            return Ok(Locked::Tampered);
        }
        let fresh = Stored { window: SpendWindow::default(), mark: 0 };
        write(tx, mac_key, m, &fresh, true).await?;
    };
    let (row, stored_mac) = stored;
    if !super::subtle_eq::ct_eq(&mac(mac_key, &m.signer, &budget(m), &row), &stored_mac)
        || seen.is_some_and(|seen| row.mark < seen)
    {
        return Ok(Locked::Tampered);
    }
    Ok(Locked::Window(row))
}

/// `ask` reserved in `window` for the mark `m`: the row to write, or the
/// refusal.
pub(super) fn reserve(
    window: &Stored,
    m: &Mark<'_>,
    ask: &SpendAsk,
) -> Result<Stored, tee_core::protocol::CapRefusal> {
    let window = window.window.reserve(&ask.cap, &ask.value, ask.now)?;
    Ok(Stored { window, mark: m.value })
}

/// Writes `row` as `m`'s key's window: a fresh row (`insert`, doing
/// nothing if a replica inserted one meanwhile) or over the locked one.
pub(super) async fn write(
    tx: &Transaction<'_>,
    mac_key: &[u8; 32],
    m: &Mark<'_>,
    row: &Stored,
    insert: bool,
) -> Result<(), MarksError> {
    let sql = if insert {
        "INSERT INTO tee_signer_spend (signer, space, start, spent, mark, mac)
         VALUES ($1, $2, $3::text::numeric, $4::text::numeric, $5::text::numeric, $6)
         ON CONFLICT (signer, space) DO NOTHING"
    } else {
        "UPDATE tee_signer_spend
         SET start = $3::text::numeric, spent = $4::text::numeric, mark = $5::text::numeric,
             mac = $6
         WHERE signer = $1 AND space = $2"
    };
    let space = budget(m);
    let tag = mac(mac_key, &m.signer, &space, row);
    let (start, spent, mark) =
        (row.window.start.to_string(), row.window.spent.to_string(), row.mark.to_string());
    tx.execute(sql, &[&m.signer.0.as_slice(), &space, &start, &spent, &mark, &tag.as_slice()])
        .await?;
    Ok(())
}

/// `m`'s key's window, locked, with its stored MAC.
async fn read(tx: &Transaction<'_>, m: &Mark<'_>) -> Result<Option<(Stored, Vec<u8>)>, MarksError> {
    let space = budget(m);
    let Some(row) = tx
        .query_opt(
            "SELECT start::text, spent::text, mark::text, mac FROM tee_signer_spend
             WHERE signer = $1 AND space = $2 FOR UPDATE",
            &[&m.signer.0.as_slice(), &space],
        )
        .await?
    else {
        return Ok(None);
    };
    let malformed = || MarksError::Malformed { signer: m.signer, space: space.clone() };
    let (start, spent, mark): (String, String, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let window = SpendWindow {
        start: start.parse().map_err(|_| malformed())?,
        spent: U256::from_decimal(&spent).ok_or_else(malformed)?,
    };
    let stored = Stored { window, mark: mark.parse().map_err(|_| malformed())? };
    Ok(Some((stored, row.try_get(3)?)))
}

/// The MAC of a window row under the app's marks key.
fn mac(key: &[u8; 32], signer: &Address, space: &str, row: &Stored) -> [u8; 32] {
    let mut h = super::keyed(key, b"tee-signer spend v1");
    h.update(&SCHEMA_VERSION.to_be_bytes());
    h.update(signer.0.as_slice());
    h.update(&(space.len() as u64).to_be_bytes());
    h.update(space.as_bytes());
    h.update(&row.window.start.to_be_bytes());
    h.update(&row.window.spent.0);
    h.update(&row.mark.to_be_bytes());
    h.finalize().into_bytes().into()
}
