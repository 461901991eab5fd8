//! The state journal as whoever holds the disk could write it. Two forms:
//! raw bytes (what a disk can hold: nothing passes the MAC chain without
//! the key), and records whose MACs do chain under the state key (what a
//! bug, or a leaked key, could write: the content behind the MAC). Checked:
//! opening never panics; a journal that opens opens again to the same
//! state (a torn tail is cut once); its marks never fall.
//!
//! Input: `mode ‖ bytes`; with mode bit 0 set, the bytes are records
//! `kind ‖ len ‖ payload`, after a valid genesis.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tee_core::device::CounterId;
use tee_core::{Address, B256};
use tee_store::journal::{genesis_payload, write_records};
use tee_store::store::{FileStore, JOURNAL, KEY_FILE, StateKey};

const KEY: [u8; 32] = [0x5e; 32];
const ADMIN: Address = Address([0xad; 20]);

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("tee-fuzz-state-{}", std::process::id()));
    tee_store::store::create_private_dir(&dir).expect("a private temp dir");
    dir
});

fn marks(store: &mut FileStore) -> Vec<Option<u64>> {
    let mut ids: Vec<CounterId> = (0..8).map(CounterId::Slot).collect();
    ids.push(CounterId::Admin);
    ids.into_iter().map(|id| store.load_counter(id).ok().flatten().map(|h| h.value)).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let journal = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let genesis = genesis_payload(B256([0xd1; 32]), ADMIN);
        let mut records: Vec<(u8, &[u8])> = vec![(1, &genesis)];
        let mut input = rest;
        while let [kind, len, tail @ ..] = input {
            let (payload, after) = tail.split_at(usize::from(*len).min(tail.len()));
            records.push((*kind % 6, payload));
            input = after;
        }
        write_records(&KEY, &records)
    };
    std::fs::write(DIR.join(KEY_FILE), KEY).expect("key file");
    std::fs::write(DIR.join(JOURNAL), &journal).expect("journal");
    let Ok(mut store) = FileStore::open(&DIR, StateKey::File, Some(ADMIN)) else { return };
    let first = (store.provisioning(), marks(&mut store), store.audit_head());
    drop(store);
    let mut again = FileStore::open(&DIR, StateKey::File, Some(ADMIN))
        .expect("a journal that opened opens again");
    assert_eq!(first, (again.provisioning(), marks(&mut again), again.audit_head()));
});
