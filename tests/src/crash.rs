//! The real server on a state directory under clients racing at once, and
//! the disk as a power loss at a sync of its journal would leave it: what
//! the group commit crash tests (`group_commit`, `spend_caps`) share.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::Client;
use tee_core::protocol::BackendKind;
use tee_host::backend::{HOST_SLOTS, HostBackend, HostDevice};
use tee_host::server::{Limits, serve};
use tee_store::store::{FileStore, GroupCommit, JOURNAL, KEY_FILE, StateKey};
use tee_testkit::Pair;
use tee_transport::{Endpoint, Stream, connect};

/// A signer on the state directory `state` (a file state key, the
/// testkit's admin), and its journal's group commit.
#[must_use]
pub fn open(state: &Path) -> (Pair<HostBackend, HOST_SLOTS>, Arc<GroupCommit>) {
    let store = FileStore::open(state, StateKey::File, Some(tee_testkit::config().admin)).unwrap();
    let group = store.group();
    let backend = HostBackend::new(store, None, BackendKind::Simulated);
    (Pair::with(HostDevice::open(backend, tee_testkit::config()).unwrap()), group)
}

/// Serves `device` on a unix socket in `dir` and runs `client(i, c)` for
/// `i` in `0..clients` at once, each on its own connection `c`; once all
/// returned, stops the server. Returns what each returned and how many
/// bytes of the journal were durable (all of them when no fault was
/// injected into `group`).
pub fn race<T: Send + 'static>(
    dir: &Path,
    device: Box<HostDevice>,
    group: &GroupCommit,
    clients: u64,
    client: impl Fn(u64, &mut Client<Box<dyn Stream>>) -> T + Send + Sync + 'static,
) -> (Vec<T>, usize) {
    let socket = Endpoint::Unix(dir.join("signer.sock"));
    let limits = Limits { max_connections: 256, max_per_peer: 256, ..Limits::default() };
    let server = serve(Arc::new(Mutex::new(*device)), &[socket], limits).unwrap();
    let endpoint = server.endpoints()[0].clone();
    let client = Arc::new(client);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (endpoint, client) = (endpoint.clone(), client.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(connect(&endpoint, Duration::from_secs(30)).unwrap());
                client(i, &mut c)
            })
        })
        .collect();
    let out = threads.into_iter().map(|t| t.join().unwrap()).collect();
    drop(server);
    (out, usize::try_from(group.crash_image_len()).unwrap())
}

/// The disk at a crash: the first `durable` bytes of `state`'s journal,
/// then none, half or all of what was written after them, each a state
/// directory of its own in `dir`: (bytes past the durable part, directory).
#[must_use]
pub fn images(dir: &Path, state: &Path, durable: usize) -> Vec<(usize, PathBuf)> {
    let journal = std::fs::read(state.join(JOURNAL)).unwrap();
    let rest = journal.len() - durable;
    [0, rest / 2, rest]
        .into_iter()
        .enumerate()
        .map(|(i, tail)| {
            let image = dir.join(format!("image-{i}"));
            tee_store::store::create_private_dir(&image).unwrap();
            std::fs::copy(state.join(KEY_FILE), image.join(KEY_FILE)).unwrap();
            std::fs::write(image.join(JOURNAL), &journal[..durable + tail]).unwrap();
            (tail, image)
        })
        .collect()
}
