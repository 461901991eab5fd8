//! How the marks database replicates, read on every new connection (and
//! again at least every [`RECHECK`], and at every `Health`), and whether the
//! signer serves marks from it.
//!
//! A mark counts once its transaction committed. With an asynchronous
//! standby, a primary acknowledges a commit the standby may not have; if
//! the primary dies then and the standby is promoted, the mark is gone,
//! and a replica that had not seen it signs another action at that
//! sequence. So the signer claims marks only on a primary whose standbys
//! are all synchronous (a commit waits until one has it: a promoted one
//! has it), or that has none, unless the operator accepts the risk
//! (`serve --marks-accept-async-standbys`). Its own session never commits
//! with less than `synchronous_commit = on`, whatever the server's default.
//!
//! What it cannot see: a standby fed from the WAL archive rather than
//! streamed (it is not in `pg_stat_replication`), a standby of a standby,
//! and a restore of the whole database from a backup.

use std::time::Duration;

use tee_core::protocol::Replication;
use tokio_postgres::Client;

use super::MarksError;

/// How often a connection's reading is taken again while it is in use.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Whether the operator accepts a primary whose standbys are asynchronous
/// (or hidden from the signer's role).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationRule {
    /// `serve --marks-accept-async-standbys`.
    pub accept_async: bool,
}

/// What the server says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// `pg_is_in_recovery()`: a standby, read-only.
    pub in_recovery: bool,
    /// `synchronous_standby_names`.
    pub standby_names: String,
    /// Each streaming standby: its `application_name` and `sync_state`
    /// (`None` when the role may not see it).
    pub standbys: Vec<(String, Option<String>)>,
}

/// What `reading` is, and whether the signer serves marks from it.
pub fn judge(reading: &Reading, rule: ReplicationRule) -> Result<Replication, MarksError> {
    if reading.in_recovery {
        return Err(MarksError::Replication {
            found: Replication::Hidden,
            why: "the marks database is a standby (in recovery, read-only): name the primary, \
                  or every host with target_session_attrs=read-write"
                .into(),
        });
    }
    let hidden = reading.standbys.iter().any(|(_, state)| state.is_none());
    let not_sync: Vec<&str> = reading
        .standbys
        .iter()
        .filter(|(_, state)| !matches!(state.as_deref(), Some("sync" | "quorum") | None))
        .map(|(name, _)| if name.is_empty() { "(unnamed)" } else { name.as_str() })
        .collect();
    let found = if hidden {
        Replication::Hidden
    } else if !not_sync.is_empty() {
        Replication::Asynchronous
    } else if reading.standbys.is_empty() && reading.standby_names.trim().is_empty() {
        Replication::NoStandby
    } else {
        Replication::Synchronous
    };
    let why = match found {
        Replication::Asynchronous => format!(
            "the marks database streams to asynchronous standbys ({}; synchronous_standby_names \
             = {:?}): a failover to one can lose marks the primary acknowledged, and a replica \
             that had not seen them would sign a second action at a used sequence. Name them in \
             synchronous_standby_names, or accept the risk with --marks-accept-async-standbys",
            not_sync.join(", "),
            reading.standby_names
        ),
        Replication::Hidden => "the marks database does not show its standbys to the signer's \
             role (pg_stat_replication.sync_state is hidden): GRANT pg_read_all_stats to it, or \
             accept the risk with --marks-accept-async-standbys"
            .into(),
        _ => return Ok(found),
    };
    if rule.accept_async { Ok(found) } else { Err(MarksError::Replication { found, why }) }
}

/// Reads how the server replicates, and raises this session's
/// `synchronous_commit` to `on` if the server's default is weaker (`off`,
/// `local`): with synchronous standbys named, every commit of the signer
/// then waits for one.
pub(super) async fn read(client: &Client) -> Result<Reading, MarksError> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(),
                    current_setting('synchronous_standby_names'),
                    current_setting('synchronous_commit'),
                    ARRAY(SELECT coalesce(application_name, '') FROM pg_stat_replication
                          ORDER BY application_name),
                    ARRAY(SELECT sync_state::text FROM pg_stat_replication
                          ORDER BY application_name)",
            &[],
        )
        .await?;
    let commit: String = row.try_get(2)?;
    if matches!(commit.as_str(), "off" | "local") {
        client.batch_execute("SET synchronous_commit = on").await?;
    }
    let names: Vec<String> = row.try_get(3)?;
    let states: Vec<Option<String>> = row.try_get(4)?;
    Ok(Reading {
        in_recovery: row.try_get(0)?,
        standby_names: row.try_get(1)?,
        standbys: names.into_iter().zip(states).collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn reading(names: &str, standbys: &[(&str, Option<&str>)]) -> Reading {
        Reading {
            in_recovery: false,
            standby_names: names.into(),
            standbys: standbys
                .iter()
                .map(|(n, s)| ((*n).to_owned(), s.map(str::to_owned)))
                .collect(),
        }
    }

    const STRICT: ReplicationRule = ReplicationRule { accept_async: false };
    const ACCEPT: ReplicationRule = ReplicationRule { accept_async: true };

    #[test]
    fn synchronous_or_no_standby_is_served_asynchronous_only_when_accepted() {
        assert_eq!(judge(&reading("", &[]), STRICT).unwrap(), Replication::NoStandby);
        let sync = reading("standby", &[("standby", Some("sync"))]);
        assert_eq!(judge(&sync, STRICT).unwrap(), Replication::Synchronous);
        let quorum = reading("ANY 1 (a, b)", &[("a", Some("quorum")), ("b", Some("quorum"))]);
        assert_eq!(judge(&quorum, STRICT).unwrap(), Replication::Synchronous);
        // Named but not connected: commits wait for it (then time out).
        assert_eq!(judge(&reading("standby", &[]), STRICT).unwrap(), Replication::Synchronous);
        for r in [
            reading("", &[("s1", Some("async"))]),
            reading("s1", &[("s1", Some("sync")), ("s2", Some("async"))]),
            reading("FIRST 1 (s1, s2)", &[("s1", Some("sync")), ("s2", Some("potential"))]),
        ] {
            let Err(MarksError::Replication { found, why }) = judge(&r, STRICT) else {
                panic!("{r:?} served")
            };
            assert_eq!(found, Replication::Asynchronous);
            assert!(why.contains("--marks-accept-async-standbys"), "{why}");
            assert_eq!(judge(&r, ACCEPT).unwrap(), Replication::Asynchronous);
        }
        let hidden = reading("", &[("s1", None)]);
        assert!(matches!(
            judge(&hidden, STRICT),
            Err(MarksError::Replication { found: Replication::Hidden, .. })
        ));
        assert_eq!(judge(&hidden, ACCEPT).unwrap(), Replication::Hidden);
        let standby = Reading { in_recovery: true, ..reading("", &[]) };
        assert!(judge(&standby, ACCEPT).is_err(), "a standby never takes marks");
    }
}
