//! What a compaction's failure means, step by step: the types the store
//! and its compaction share.

use std::io;

/// The steps of a compaction, in order, for fault injection
/// ([`FileStore::inject_compaction_faults`](crate::store::FileStore::inject_compaction_faults)). A failure before
/// [`CompactionStep::Rename`] leaves the journal as it was (the compaction
/// is tried again at the next write); from the rename on, the journal the
/// store appends to may not be the one a restart reads, so signing stops
/// (every pending and later reply is refused as `Storage`) until a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactionStep {
    /// Creating the new journal beside the old one.
    CreateTemp,
    /// Writing it.
    WriteTemp,
    /// Syncing it.
    SyncTemp,
    /// Renaming it over the old one.
    Rename,
    /// Syncing the directory, so the rename is durable.
    SyncDir,
}

impl CompactionStep {
    /// Every step, in order.
    pub const ALL: [CompactionStep; 5] = [
        CompactionStep::CreateTemp,
        CompactionStep::WriteTemp,
        CompactionStep::SyncTemp,
        CompactionStep::Rename,
        CompactionStep::SyncDir,
    ];
}

/// A compaction that failed, and whether the store goes on.
#[derive(Debug)]
pub(crate) enum Compaction {
    /// Before the rename: the old journal is intact and still appended to.
    Kept(io::Error),
    /// From the rename on: signing stops.
    Stopped(io::Error),
}
