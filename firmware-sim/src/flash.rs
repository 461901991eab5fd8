//! A NOR flash model with realistic semantics and power-loss injection.
//!
//! Programming only clears bits (`new = old & data`), in whole words;
//! erasing sets a page to `0xFF`. Power can be cut after any byte of any
//! program or erase: the bytes before the cut are done, the word (program)
//! or the rest of the page (erase) in progress is left in an undefined but
//! deterministic state, and every later operation fails until the board
//! restarts. The same model backs the host tests and, in RAM, the QEMU image.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Flash errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not aligned to the operation's unit.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// Power was lost; nothing works until restart.
    PowerLost,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::PowerLost => NorFlashErrorKind::Other,
        }
    }
}

/// Word size: the programming unit.
pub const WORD: usize = 4;

/// A simulated NOR flash of `PAGES` pages of `PAGE` bytes over a caller's
/// buffer (`&mut [u8]` of `PAGE * PAGES` bytes, or an owned array).
#[derive(Debug)]
pub struct SimFlash<S, const PAGE: usize, const PAGES: usize> {
    mem: S,
    /// Byte steps (programmed or erased) so far.
    steps: u64,
    /// Cut the power once this many byte steps have been done.
    cut_at: Option<u64>,
    dead: bool,
}

impl<S: AsMut<[u8]> + AsRef<[u8]>, const PAGE: usize, const PAGES: usize> SimFlash<S, PAGE, PAGES> {
    /// Flash over `mem`, whose contents are kept as they are (a fresh
    /// buffer is whatever it holds; the store formats what it cannot read).
    pub fn new(mem: S) -> Self {
        SimFlash { mem, steps: 0, cut_at: None, dead: false }
    }

    /// Byte steps done so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Cut the power after `n` more byte steps.
    pub fn cut_power_after(&mut self, n: u64) {
        self.cut_at = Some(self.steps + n);
    }

    /// Whether power has been lost.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Power comes back: the contents stay as the cut left them.
    pub fn restart(&mut self) {
        self.dead = false;
        self.cut_at = None;
    }

    /// The raw contents.
    pub fn contents(&self) -> &[u8] {
        self.mem.as_ref()
    }

    /// Whether the power fails at this step; advances the step count.
    fn step(&mut self) -> bool {
        let cut = self.cut_at == Some(self.steps);
        self.steps += 1;
        if cut {
            self.dead = true;
        }
        cut
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let start = usize::try_from(offset).map_err(|_| FlashError::OutOfBounds)?;
        let end = start.checked_add(len).ok_or(FlashError::OutOfBounds)?;
        if end > PAGE * PAGES || self.mem.as_ref().len() < PAGE * PAGES {
            return Err(FlashError::OutOfBounds);
        }
        Ok(start..end)
    }
}

/// The deterministic garbage a word holds when programming it is cut short:
/// some bits of the new value cleared, the others as they were.
fn torn_word(old: u8, new: u8, at: usize) -> u8 {
    let mask = if at.is_multiple_of(2) { 0x0f } else { 0xf0 };
    old & (new | mask)
}

impl<S, const PAGE: usize, const PAGES: usize> ErrorType for SimFlash<S, PAGE, PAGES> {
    type Error = FlashError;
}

impl<S: AsMut<[u8]> + AsRef<[u8]>, const PAGE: usize, const PAGES: usize> ReadNorFlash
    for SimFlash<S, PAGE, PAGES>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::PowerLost);
        }
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(self.mem.as_ref().get(r).ok_or(FlashError::OutOfBounds)?);
        Ok(())
    }

    fn capacity(&self) -> usize {
        PAGE * PAGES
    }
}

impl<S: AsMut<[u8]> + AsRef<[u8]>, const PAGE: usize, const PAGES: usize> NorFlash
    for SimFlash<S, PAGE, PAGES>
{
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::PowerLost);
        }
        let len = to.checked_sub(from).ok_or(FlashError::OutOfBounds)? as usize;
        if !(from as usize).is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(FlashError::NotAligned);
        }
        let r = self.range(from, len)?;
        for i in r {
            if self.step() {
                // Cut mid-erase: the rest of this page keeps a deterministic
                // mix of its old contents and erased bits.
                let page_end = (i / PAGE + 1) * PAGE;
                let mem = self.mem.as_mut();
                for j in i..page_end {
                    if let Some(b) = mem.get_mut(j) {
                        *b |= if j % 3 == 0 { 0xff } else { 0x11 };
                    }
                }
                return Err(FlashError::PowerLost);
            }
            if let Some(b) = self.mem.as_mut().get_mut(i) {
                *b = 0xff;
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::PowerLost);
        }
        if !(offset as usize).is_multiple_of(WORD) || !bytes.len().is_multiple_of(WORD) {
            return Err(FlashError::NotAligned);
        }
        let r = self.range(offset, bytes.len())?;
        for (i, &new) in r.zip(bytes) {
            if self.step() {
                // Cut mid-program: this byte's word is left torn.
                let word = i - i % WORD;
                let mem = self.mem.as_mut();
                for j in i..word + WORD {
                    let new = bytes.get(j - offset as usize).copied().unwrap_or(0xff);
                    if let Some(b) = mem.get_mut(j) {
                        *b = torn_word(*b, new, j);
                    }
                }
                return Err(FlashError::PowerLost);
            }
            if let Some(b) = self.mem.as_mut().get_mut(i) {
                *b &= new;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn nor_semantics() {
        let mut f = SimFlash::<_, 16, 2>::new([0u8; 32]);
        f.erase(0, 16).unwrap();
        assert_eq!(&f.contents()[..16], &[0xff; 16]);
        assert_eq!(&f.contents()[16..], &[0; 16], "only the page asked for");
        f.write(0, &[0xf0, 0x0f, 0xff, 0x00]).unwrap();
        // Programming clears bits only: a second write ANDs.
        f.write(0, &[0x3c, 0xff, 0xff, 0xff]).unwrap();
        let mut b = [0u8; 4];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0x30, 0x0f, 0xff, 0x00]);
        assert_eq!(f.write(1, &[0; 4]), Err(FlashError::NotAligned));
        assert_eq!(f.write(0, &[0; 3]), Err(FlashError::NotAligned));
        assert_eq!(f.erase(8, 16), Err(FlashError::NotAligned));
        assert_eq!(f.write(32, &[0; 4]), Err(FlashError::OutOfBounds));
    }

    #[test]
    fn power_cut_mid_program_is_deterministic_and_final() {
        let run = || {
            let mut f = SimFlash::<_, 16, 1>::new([0xffu8; 16]);
            f.cut_power_after(5);
            assert_eq!(f.write(0, &[0u8; 8]), Err(FlashError::PowerLost));
            assert!(f.is_dead());
            let mut b = [0u8; 1];
            assert_eq!(f.read(0, &mut b), Err(FlashError::PowerLost));
            f.restart();
            f.contents().to_vec()
        };
        let a = run();
        assert_eq!(a, run(), "deterministic");
        assert_eq!(&a[..4], &[0; 4], "the first word was done");
        assert_ne!(&a[4..8], &[0; 4], "the torn word is not what was asked");
        assert_eq!(&a[8..], &[0xff; 8], "nothing after it was touched");
    }
}
