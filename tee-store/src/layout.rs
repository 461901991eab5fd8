//! The state directory's file names.

/// The journal's file name.
pub const JOURNAL: &str = "journal";
/// The state key's file name, for a signer without a TEE.
pub const KEY_FILE: &str = "state.key";
/// The file naming the dstack key API (`v0` or `v1`) the state key and the
/// slot keys are derived under: written before the journal's genesis, read
/// before the journal (which the key it names opens). Absent for state
/// made before dstack had a v1, which is v0's. Editing it gains nothing:
/// the other API's state key does not open the journal.
pub const DSTACK_API_FILE: &str = "dstack-api";
