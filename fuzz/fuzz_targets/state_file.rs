//! The signer's state directory on hostile files: whatever bytes sit in a
//! counter or slot record file (a torn write, bit rot, an attacker's edit),
//! reading it never panics, and what it accepts is exactly what the store
//! itself writes for that value: nothing else is read as a counter or a
//! key. The second half of the input goes to a sealed store, which accepts
//! nothing it did not seal.
//!
//! Input: `split (1 byte) ‖ file bytes`.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tee_core::device::{CounterId, HighWater};
use tee_std::service::store::FileStore;
use zeroize::Zeroizing;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("tee-fuzz-state-{}", std::process::id()));
    tee_std::service::store::create_private_dir(&dir).expect("a private temp dir");
    dir
});

fn check(store: &mut FileStore, sealed: bool, file: &str, bytes: &[u8]) {
    let path = DIR.join(file);
    std::fs::write(&path, bytes).expect("write the file");
    let accepted = if file.starts_with("counter") {
        match store.load_counter(CounterId::Slot(1)) {
            Ok(Some(h)) => {
                let h: HighWater = h;
                store.commit_counter(CounterId::Slot(1), &h).expect("the same value re-commits");
                true
            }
            _ => false,
        }
    } else {
        let mut buf = [0u8; 4096];
        match store.load_slot(1, &mut buf) {
            Ok(Some(n)) => {
                assert!(!sealed, "a sealed store accepted a record it never sealed");
                store.store_slot(1, &buf[..n]).expect("re-stores");
                true
            }
            _ => false,
        }
    };
    if accepted {
        let rewritten = std::fs::read(&path).expect("read back");
        assert_eq!(rewritten, bytes, "{file}: accepted bytes the store would not write");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else { return };
    let (a, b) = rest.split_at(usize::from(split).min(rest.len()));
    let mut clear = FileStore::open(&DIR).expect("open");
    check(&mut clear, false, "counter-1.rec", a);
    check(&mut clear, false, "slot-1.rec", b);
    drop(clear);
    let mut sealed = FileStore::open(&DIR).expect("open").with_sealing_key(Zeroizing::new([7; 32]));
    check(&mut sealed, true, "slot-1.rec", a);
});
