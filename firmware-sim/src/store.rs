//! Durable device state on NOR flash: a log of CRC-protected records over
//! `N >= 2` pages, used in turn (wear spreads over all of them).
//!
//! ```text
//! page    = header (16 bytes) ‖ record* ‖ 0xFF…
//! header  = "TSF1" ‖ epoch (u32 LE) ‖ crc32(magic ‖ epoch) (u32 LE) ‖ FF FF FF FF
//! record  = kind (u8) ‖ id (u8) ‖ len (u16 LE) ‖ seq (u32 LE) ‖ payload (len) ‖ crc32 (u32 LE) ‖ FF padding to a word
//! ```
//! The page with the highest valid epoch is active; within it, the last
//! record of a (kind, id) is current. Records are appended; a full page is
//! compacted into the next one: erase it, copy every current record, then
//! write its header, last, as the commit point. A crash anywhere leaves the
//! old or the new state: a torn record fails its CRC, a page whose header is
//! not yet written is ignored.
//!
//! Two rules keep torn writes from ever being mistaken for data: every write
//! is read back before it is reported durable, and any byte in a page's
//! free space that is not `0xFF` closes the page (the next write compacts),
//! so nothing is ever programmed over the remains of a torn write.

use embedded_storage::nor_flash::NorFlash;
use tee_core::primitives::CRC32;

const MAGIC: [u8; 4] = *b"TSF1";
const PAGE_HEADER: usize = 16;
const RECORD_HEADER: usize = 8;
const CRC_LEN: usize = 4;
/// Largest record payload.
pub const MAX_PAYLOAD: usize = 1024;
/// Most distinct (kind, id) keys the store tracks.
pub const MAX_KEYS: usize = 24;

/// Store errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The flash failed (or lost power).
    Flash,
    /// A write did not read back as written.
    Verify,
    /// The current records and the new one do not fit in one page.
    Full,
    /// A payload larger than [`MAX_PAYLOAD`], or a buffer too small for one.
    TooLarge,
    /// More distinct keys than [`MAX_KEYS`].
    TooManyKeys,
    /// Fewer than two pages, or pages too small for a record.
    Geometry,
    /// The page epoch is at its maximum. Honest use never gets here (it
    /// takes 2^32 compactions, far past any flash's endurance); a store whose
    /// flash says otherwise refuses to write rather than wrap the epoch,
    /// which would make the next boot pick the older page.
    Exhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    kind: u8,
    id: u8,
    /// Offset of the record within the active page.
    at: u32,
    len: u16,
}

/// Record size on flash, padding included.
fn record_size(len: usize) -> usize {
    (RECORD_HEADER + len + CRC_LEN).next_multiple_of(4)
}

/// The store over the whole flash: its pages are the flash's erase units.
#[derive(Debug)]
pub struct FlashStore<F> {
    flash: F,
    page: usize,
    pages: u32,
    active: u32,
    epoch: u32,
    /// Where the next record goes, or `None` if the page is closed.
    write_at: Option<u32>,
    seq: u32,
    index: heapless::Vec<Entry, MAX_KEYS>,
}

/// Bytes a record is read and written in: records stream through a buffer
/// this size (and the CRC), never through one the size of the largest
/// payload (two of those were 2 KiB of a microcontroller's stack on every
/// write).
const CHUNK: usize = 64;

/// Where a record's payload comes from: the caller's bytes, or a record
/// already on flash (compaction copies it without a buffer of its size).
#[derive(Clone, Copy)]
enum Payload<'a> {
    Ram(&'a [u8]),
    Flash { at: u32, len: usize },
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Ram(b) => b.len(),
            Payload::Flash { len, .. } => *len,
        }
    }
}

/// A slice of `buf`, or `TooLarge`.
fn part(buf: &[u8], r: core::ops::Range<usize>) -> Result<&[u8], StoreError> {
    buf.get(r).ok_or(StoreError::TooLarge)
}

fn part_mut(buf: &mut [u8], r: core::ops::Range<usize>) -> Result<&mut [u8], StoreError> {
    buf.get_mut(r).ok_or(StoreError::TooLarge)
}

fn le32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
    u32::from_le_bytes(w)
}

impl<F: NorFlash> FlashStore<F> {
    fn page_base(&self, page: u32) -> u32 {
        page * self.page as u32
    }

    fn read(&mut self, at: u32, buf: &mut [u8]) -> Result<(), StoreError> {
        self.flash.read(at, buf).map_err(|_| StoreError::Flash)
    }

    /// Writes `data` (word-aligned length) and reads it back.
    fn write_verified(&mut self, at: u32, data: &[u8]) -> Result<(), StoreError> {
        self.flash.write(at, data).map_err(|_| StoreError::Flash)?;
        let mut back = [0u8; 64];
        for (i, chunk) in data.chunks(back.len()).enumerate() {
            let dst = part_mut(&mut back, 0..chunk.len())?;
            self.read(at + (i * 64) as u32, dst)?;
            if dst != chunk {
                return Err(StoreError::Verify);
            }
        }
        Ok(())
    }

    /// Opens the store, recovering the newest consistent state; formats a
    /// flash that holds no valid page. On failure the flash is handed back
    /// (a board retries after a power cut, as hardware would).
    pub fn open(flash: F) -> Result<Self, (StoreError, F)> {
        let page = F::ERASE_SIZE;
        let pages = (flash.capacity() / page) as u32;
        if pages < 2 || page < PAGE_HEADER + record_size(0) || !page.is_multiple_of(4) {
            return Err((StoreError::Geometry, flash));
        }
        let mut s = FlashStore {
            flash,
            page,
            pages,
            active: 0,
            epoch: 0,
            write_at: None,
            seq: 0,
            index: heapless::Vec::new(),
        };
        match s.recover() {
            Ok(()) => Ok(s),
            Err(e) => Err((e, s.flash)),
        }
    }

    fn recover(&mut self) -> Result<(), StoreError> {
        let mut best: Option<(u32, u32)> = None;
        for page in 0..self.pages {
            let mut h = [0u8; PAGE_HEADER];
            self.read(self.page_base(page), &mut h)?;
            if let Some(epoch) = parse_page_header(&h)
                && best.is_none_or(|(_, e)| epoch > e)
            {
                best = Some((page, epoch));
            }
        }
        match best {
            Some((page, epoch)) => {
                self.active = page;
                self.epoch = epoch;
                self.scan()
            }
            None => self.format(),
        }
    }

    /// Erases page 0 and starts epoch 1 there.
    fn format(&mut self) -> Result<(), StoreError> {
        self.erase_page(0)?;
        self.write_page_header(0, 1)?;
        self.active = 0;
        self.epoch = 1;
        self.write_at = Some(PAGE_HEADER as u32);
        self.index.clear();
        Ok(())
    }

    fn erase_page(&mut self, page: u32) -> Result<(), StoreError> {
        let base = self.page_base(page);
        self.flash.erase(base, base + self.page as u32).map_err(|_| StoreError::Flash)?;
        // Check the erase took: every byte 0xFF.
        if self.erased_from(page, 0)? { Ok(()) } else { Err(StoreError::Verify) }
    }

    /// Whether `page` is 0xFF from `at` to its end.
    fn erased_from(&mut self, page: u32, mut at: usize) -> Result<bool, StoreError> {
        let base = self.page_base(page);
        let mut buf = [0u8; 64];
        while at < self.page {
            let n = buf.len().min(self.page - at);
            let chunk = part_mut(&mut buf, 0..n)?;
            self.read(base + at as u32, chunk)?;
            if chunk.iter().any(|&b| b != 0xff) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }

    fn write_page_header(&mut self, page: u32, epoch: u32) -> Result<(), StoreError> {
        let e = epoch.to_le_bytes();
        let body = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], e[0], e[1], e[2], e[3]];
        let c = CRC32.checksum(&body).to_le_bytes();
        let h: [u8; PAGE_HEADER] = [
            body[0], body[1], body[2], body[3], body[4], body[5], body[6], body[7], c[0], c[1],
            c[2], c[3], 0xff, 0xff, 0xff, 0xff,
        ];
        let base = self.page_base(page);
        self.write_verified(base, &h)
    }

    /// Reads the active page's records into the index; closes the page at
    /// the first thing that is neither a valid record nor erased flash.
    fn scan(&mut self) -> Result<(), StoreError> {
        self.index.clear();
        let base = self.page_base(self.active);
        let mut at = PAGE_HEADER;
        self.write_at = None;
        while at + RECORD_HEADER <= self.page {
            let mut h = [0u8; RECORD_HEADER];
            self.read(base + at as u32, &mut h)?;
            if h == [0xff; RECORD_HEADER] {
                // Erased: the end, if everything after it is erased too.
                if self.erased_from(self.active, at)? {
                    self.write_at = Some(at as u32);
                }
                return Ok(());
            }
            let (kind, id, len, seq) = parse_record_header(&h);
            let len_us = usize::from(len);
            let size = record_size(len_us);
            if len_us > MAX_PAYLOAD || at + size > self.page {
                return Ok(()); // garbage: the page is closed
            }
            let payload = Payload::Flash { at: base + (at + RECORD_HEADER) as u32, len: len_us };
            if !self.crc_holds(&h, payload)? {
                return Ok(()); // a torn record: the page is closed
            }
            self.remember(Entry { kind, id, at: at as u32, len })?;
            self.seq = self.seq.max(seq);
            at += size;
        }
        Ok(())
    }

    /// Whether the CRC stored after a record's payload on flash is that of
    /// its header and payload.
    fn crc_holds(
        &mut self,
        header: &[u8; RECORD_HEADER],
        payload: Payload<'_>,
    ) -> Result<bool, StoreError> {
        let mut crc = CRC32.digest();
        crc.update(header);
        let mut buf = [0u8; CHUNK];
        let (len, mut done) = (payload.len(), 0);
        while done < len {
            let chunk = part_mut(&mut buf, 0..CHUNK.min(len - done))?;
            self.read_payload(payload, done, chunk)?;
            crc.update(chunk);
            done += chunk.len();
        }
        let mut stored = [0u8; CRC_LEN];
        self.read_payload(payload, len, &mut stored)?;
        Ok(crc.finalize() == le32(&stored))
    }

    fn remember(&mut self, e: Entry) -> Result<(), StoreError> {
        match self.index.iter_mut().find(|x| (x.kind, x.id) == (e.kind, e.id)) {
            Some(x) => *x = e,
            None => self.index.push(e).map_err(|_| StoreError::TooManyKeys)?,
        }
        Ok(())
    }

    /// Reads the current payload of (`kind`, `id`) into `buf`.
    pub fn get(&mut self, kind: u8, id: u8, buf: &mut [u8]) -> Result<Option<usize>, StoreError> {
        let Some(e) = self.index.iter().find(|x| (x.kind, x.id) == (kind, id)).copied() else {
            return Ok(None);
        };
        let len = usize::from(e.len);
        let dst = buf.get_mut(..len).ok_or(StoreError::TooLarge)?;
        let at = self.page_base(self.active) + e.at + RECORD_HEADER as u32;
        self.read(at, dst)?;
        Ok(Some(len))
    }

    /// Makes `payload` the current value of (`kind`, `id`), durably: returns
    /// only once the record (or the compacted page holding it) is written and
    /// read back.
    pub fn put(&mut self, kind: u8, id: u8, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::TooLarge);
        }
        if !self.index.iter().any(|x| (x.kind, x.id) == (kind, id)) && self.index.is_full() {
            return Err(StoreError::TooManyKeys);
        }
        let size = record_size(payload.len());
        match self.write_at {
            Some(at) if at as usize + size <= self.page => {
                let page = self.active;
                self.append(page, at, kind, id, Payload::Ram(payload))
                    .inspect_err(|_| self.write_at = None)?;
                self.write_at = Some(at + size as u32);
                self.remember(Entry { kind, id, at, len: payload.len() as u16 })
            }
            _ => self.compact(kind, id, payload),
        }
    }

    /// Writes a record at `at` of `page`: its header, its payload in
    /// chunks, and the CRC and padding with the payload's last chunk, each
    /// write read back. The record is valid only once its CRC is on flash.
    fn append(
        &mut self,
        page: u32,
        at: u32,
        kind: u8,
        id: u8,
        payload: Payload<'_>,
    ) -> Result<(), StoreError> {
        self.seq = self.seq.wrapping_add(1);
        let len = payload.len();
        let s = self.seq.to_le_bytes();
        let l = u16::try_from(len).map_err(|_| StoreError::TooLarge)?.to_le_bytes();
        let header = [kind, id, l[0], l[1], s[0], s[1], s[2], s[3]];
        let mut crc = CRC32.digest();
        crc.update(&header);
        let base = self.page_base(page) + at;
        self.write_verified(base, &header)?;
        // Whole chunks, keeping the last (at most one chunk) for the tail.
        let mut buf = [0xffu8; CHUNK + CRC_LEN];
        let mut done = 0;
        while len - done > CHUNK {
            let chunk = part_mut(&mut buf, 0..CHUNK)?;
            self.read_payload(payload, done, chunk)?;
            crc.update(chunk);
            self.write_verified(base + (RECORD_HEADER + done) as u32, chunk)?;
            done += CHUNK;
        }
        let rest = len - done;
        buf.fill(0xff);
        let last = part_mut(&mut buf, 0..rest)?;
        self.read_payload(payload, done, last)?;
        crc.update(last);
        part_mut(&mut buf, rest..rest + CRC_LEN)?.copy_from_slice(&crc.finalize().to_le_bytes());
        let tail = part(&buf, 0..(rest + CRC_LEN).next_multiple_of(4))?;
        self.write_verified(base + (RECORD_HEADER + done) as u32, tail)
    }

    /// Reads `dst.len()` bytes of `payload` from `offset`.
    fn read_payload(
        &mut self,
        payload: Payload<'_>,
        offset: usize,
        dst: &mut [u8],
    ) -> Result<(), StoreError> {
        match payload {
            Payload::Ram(b) => {
                dst.copy_from_slice(part(b, offset..offset + dst.len())?);
                Ok(())
            }
            Payload::Flash { at, .. } => self.read(at + offset as u32, dst),
        }
    }

    /// Copies every current record (with `payload` for (`kind`, `id`)) into
    /// the next page and commits it by writing its header last.
    fn compact(&mut self, kind: u8, id: u8, payload: &[u8]) -> Result<(), StoreError> {
        let live: usize = self
            .index
            .iter()
            .filter(|e| (e.kind, e.id) != (kind, id))
            .map(|e| record_size(usize::from(e.len)))
            .sum::<usize>()
            + record_size(payload.len());
        if PAGE_HEADER + live > self.page {
            return Err(StoreError::Full);
        }
        let epoch = self.epoch.checked_add(1).ok_or(StoreError::Exhausted)?;
        let target = (self.active + 1) % self.pages;
        self.erase_page(target)?;
        let mut at = PAGE_HEADER as u32;
        let mut moved: heapless::Vec<Entry, MAX_KEYS> = heapless::Vec::new();
        let entries = self.index.clone();
        for e in entries.iter().filter(|e| (e.kind, e.id) != (kind, id)) {
            let len = usize::from(e.len);
            let from = self.page_base(self.active) + e.at + RECORD_HEADER as u32;
            self.append(target, at, e.kind, e.id, Payload::Flash { at: from, len })?;
            let _ = moved.push(Entry { at, ..*e });
            at += record_size(len) as u32;
        }
        self.append(target, at, kind, id, Payload::Ram(payload))?;
        let _ = moved.push(Entry { kind, id, at, len: payload.len() as u16 });
        at += record_size(payload.len()) as u32;
        // The commit point.
        self.write_page_header(target, epoch)?;
        self.active = target;
        self.epoch = epoch;
        self.index = moved;
        self.write_at = Some(at);
        Ok(())
    }

    /// The flash (for tests and footprint reports).
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, mutably.
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The active page and its epoch.
    pub fn position(&self) -> (u32, u32) {
        (self.active, self.epoch)
    }
}

fn parse_page_header(h: &[u8; PAGE_HEADER]) -> Option<u32> {
    let [m0, m1, m2, m3, e0, e1, e2, e3, c0, c1, c2, c3, ..] = *h;
    if [m0, m1, m2, m3] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    (CRC32.checksum(&[m0, m1, m2, m3, e0, e1, e2, e3]) == crc)
        .then(|| u32::from_le_bytes([e0, e1, e2, e3]))
}

fn parse_record_header(h: &[u8; RECORD_HEADER]) -> (u8, u8, u16, u32) {
    let [kind, id, l0, l1, s0, s1, s2, s3] = *h;
    (kind, id, u16::from_le_bytes([l0, l1]), u32::from_le_bytes([s0, s1, s2, s3]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::flash::SimFlash;
    use std::vec;

    type Flash = SimFlash<[u8; 2048], 512, 4>;

    fn store() -> FlashStore<Flash> {
        FlashStore::open(SimFlash::new([0u8; 2048])).map_err(|(e, _)| e).unwrap()
    }

    fn reopen(s: FlashStore<Flash>) -> FlashStore<Flash> {
        FlashStore::open(s.into_flash()).map_err(|(e, _)| e).unwrap()
    }

    fn get(s: &mut FlashStore<Flash>, kind: u8, id: u8) -> Option<std::vec::Vec<u8>> {
        let mut buf = [0u8; 512];
        s.get(kind, id, &mut buf).unwrap().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn formats_blank_or_garbage_flash() {
        let s = store();
        assert_eq!(s.position(), (0, 1));
        assert_eq!(&s.flash().contents()[..4], b"TSF1");
    }

    #[test]
    fn latest_value_wins_across_reopen_and_compaction() {
        let mut s = store();
        for i in 0..200u32 {
            s.put(2, (i % 3) as u8, &i.to_le_bytes()).unwrap();
        }
        s.put(1, 7, &[0xab; 100]).unwrap();
        let mut s = reopen(s);
        assert_eq!(get(&mut s, 2, 0), Some(198u32.to_le_bytes().to_vec()));
        assert_eq!(get(&mut s, 2, 1), Some(199u32.to_le_bytes().to_vec()));
        assert_eq!(get(&mut s, 2, 2), Some(197u32.to_le_bytes().to_vec()));
        assert_eq!(get(&mut s, 1, 7), Some(vec![0xab; 100]));
        assert_eq!(get(&mut s, 1, 8), None);
        // 200 records of 16 bytes over 496-byte pages: many compactions,
        // spread over every page in turn.
        let (_, epoch) = s.position();
        assert!(epoch > 4, "pages rotated {epoch} times");
    }

    /// Records stream through a chunk buffer: every length around a chunk
    /// boundary reads back (and its CRC holds) after a reopen and after
    /// compaction copies it flash to flash.
    #[test]
    fn payloads_of_every_length_around_a_chunk_read_back() {
        let lens = [0, 1, 3, 4, 5, 59, 60, 63, 64, 65, 127, 128, 129, 200];
        let payload = |n: usize| (0..n).map(|i| (i * 7 + n) as u8).collect::<std::vec::Vec<u8>>();
        for n in lens {
            let mut s = store();
            s.put(1, 1, &payload(n)).unwrap();
            let mut s = reopen(s);
            assert_eq!(get(&mut s, 1, 1), Some(payload(n)), "{n} bytes after a reopen");
            // Fill the page until it compacts: the record is copied.
            let (_, epoch) = s.position();
            let mut i = 0u32;
            while s.position().1 == epoch {
                s.put(2, 0, &i.to_le_bytes()).unwrap();
                i += 1;
            }
            let mut s = reopen(s);
            assert_eq!(get(&mut s, 1, 1), Some(payload(n)), "{n} bytes after compaction");
        }
    }

    #[test]
    fn an_exhausted_epoch_refuses_to_wrap() {
        // A page claiming the last epoch, as no honest store ever writes.
        let mut mem = [0xffu8; 2048];
        let body = [b'T', b'S', b'F', b'1', 0xff, 0xff, 0xff, 0xff];
        mem[..8].copy_from_slice(&body);
        mem[8..12].copy_from_slice(&CRC32.checksum(&body).to_le_bytes());
        let mut s = FlashStore::open(SimFlash::<_, 512, 4>::new(mem)).map_err(|(e, _)| e).unwrap();
        assert_eq!(s.position(), (0, u32::MAX));
        // Appends fit in the page; the compaction that would wrap is refused.
        let mut n = 0u32;
        let err = loop {
            match s.put(2, 0, &n.to_le_bytes()) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, StoreError::Exhausted);
        assert!(n > 0);
        let mut s = reopen(s);
        assert_eq!(s.position(), (0, u32::MAX));
        assert_eq!(get(&mut s, 2, 0), Some((n - 1).to_le_bytes().to_vec()));
    }

    #[test]
    fn a_full_live_set_is_refused_and_changes_nothing() {
        let mut s = store();
        s.put(1, 0, &[1; 300]).unwrap();
        assert_eq!(s.put(1, 1, &[2; 300]), Err(StoreError::Full));
        assert_eq!(get(&mut s, 1, 1), None);
        assert_eq!(get(&mut s, 1, 0), Some(vec![1; 300]));
        assert_eq!(s.put(1, 2, &[0; MAX_PAYLOAD + 1]), Err(StoreError::TooLarge));
        // Replacing the big record with a new version still fits.
        s.put(1, 0, &[3; 300]).unwrap();
        assert_eq!(get(&mut reopen(s), 1, 0), Some(vec![3; 300]));
    }

    #[test]
    fn garbage_in_free_space_closes_the_page() {
        let mut s = store();
        s.put(2, 0, &[1; 8]).unwrap();
        let mut flash = s.into_flash();
        // A stray programmed word in the free space of the active page.
        flash.write(400, &[0x00, 0xff, 0xff, 0xff]).unwrap();
        let mut s = FlashStore::open(flash).map_err(|(e, _)| e).unwrap();
        assert_eq!(get(&mut s, 2, 0), Some(vec![1; 8]));
        // The next write does not go next to the garbage: it compacts.
        s.put(2, 0, &[2; 8]).unwrap();
        assert_eq!(s.position().0, 1);
        assert_eq!(get(&mut reopen(s), 2, 0), Some(vec![2; 8]));
    }

    #[test]
    fn geometry_is_checked() {
        let one_page = SimFlash::<[u8; 512], 512, 1>::new([0xff; 512]);
        assert!(matches!(FlashStore::open(one_page), Err((StoreError::Geometry, _))));
    }
}
