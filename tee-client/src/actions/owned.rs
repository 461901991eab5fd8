//! An action that owns its fields: what a client holds between reading a
//! request (JSON, an alloy transaction) and sending it.

use tee_core::Action;

/// An action that owns its fields: its canonical encoding, which
/// [`OwnedAction::view`] reads back without copying (tee-core's [`Action`]
/// borrows its strings and bytes from the buffer it was decoded from).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnedAction(Box<[u8]>);

impl OwnedAction {
    /// Owns `action`'s fields.
    #[must_use]
    pub fn new(action: &Action<'_>) -> Self {
        // Serializing into a buffer of its own length cannot fail.
        let mut buf = vec![0u8; action.encoded_len()];
        let len = action.encode(&mut buf).map_or(0, |b| b.len());
        buf.truncate(len);
        OwnedAction(buf.into_boxed_slice())
    }

    /// An action's canonical encoding, checked.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, tee_core::Error> {
        Action::decode(bytes)?;
        Ok(OwnedAction(bytes.into()))
    }

    /// The action, its fields borrowed from this one.
    #[must_use]
    #[allow(
        clippy::expect_used,
        reason = "the bytes are only ever an action's own encoding (new, from_bytes), \
                  which decodes back to it (tests/canonical.rs)"
    )]
    pub fn view(&self) -> Action<'_> {
        Action::decode(&self.0).expect("an OwnedAction holds an action's canonical encoding")
    }

    /// The canonical encoding.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&Action<'_>> for OwnedAction {
    fn from(action: &Action<'_>) -> Self {
        OwnedAction::new(action)
    }
}

impl From<Action<'_>> for OwnedAction {
    fn from(action: Action<'_>) -> Self {
        OwnedAction::new(&action)
    }
}

impl std::fmt::Debug for OwnedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}

impl std::fmt::Display for OwnedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view().fmt(f)
    }
}
