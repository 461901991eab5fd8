//! The signer as Cortex-M4 firmware for QEMU's `mps2-an386` board: boots,
//! runs a power-on self-test, opens the device on (emulated) NOR flash and
//! serves the protocol over UART0 with tee-core's `serve` loop.
//!
//! ```text
//! qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -display none -monitor none \
//!   -semihosting-config enable=on,target=native -serial unix:/tmp/uart.sock,server=on,wait=off \
//!   -kernel target/thumbv7em-none-eabihf/firmware/firmware
//! ```
//!
//! Simulation only, and plainly so: mps2 has neither a TRNG nor writable
//! flash, so the entropy is a ChaCha20 stream from a fixed seed (keys made
//! here are predictable) and the flash is 16 KiB of RAM that does not
//! survive a reset. Provisioning (device id, admin address) is compiled in.
#![no_std]
#![no_main]
// MMIO and the runtime's entry points need unsafe; each use says why.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::debug;
use firmware_sim::board::{Board, Halt, Ticks};
use firmware_sim::entropy::ChaChaEntropy;
use firmware_sim::flash::SimFlash;
use firmware_sim::log::{Part, line};
use tee_core::action::ActionBounds;
use tee_core::device::DeviceConfig;
use tee_core::{Address, B256};

/// Emulated flash geometry: 4 pages of 4 KiB.
const PAGE: usize = 4096;
const PAGES: usize = 4;

/// Provisioning of the simulated device: the test kit's device id and admin
/// (the address of the public test key `0xadad…ad`).
const DEVICE_ID: B256 = B256([0xd1; 32]);
const ADMIN: Address = Address(hex_literal::hex!("45C4Ef602bC5EB4493070d69B4F3b6a74f952216"));

/// The CMSDK APB UART of the MPS2 FPGA images (ARM DDI 0479).
mod uart {
    use core::ptr::{read_volatile, write_volatile};

    const BASE: usize = 0x4000_4000; // UART0
    const DATA: usize = BASE;
    const STATE: usize = BASE + 0x04;
    const CTRL: usize = BASE + 0x08;
    const BAUDDIV: usize = BASE + 0x10;
    const TX_FULL: u32 = 1 << 0;
    const RX_FULL: u32 = 1 << 1;

    /// UART0, polled.
    pub struct Uart(());

    #[allow(unsafe_code)]
    fn read(reg: usize) -> u32 {
        // SAFETY: a fixed, aligned MMIO register of the UART, which this
        // module alone touches; volatile so every access happens.
        unsafe { read_volatile(reg as *const u32) }
    }

    #[allow(unsafe_code)]
    fn write(reg: usize, v: u32) {
        // SAFETY: as in `read`.
        unsafe { write_volatile(reg as *mut u32, v) }
    }

    impl Uart {
        /// Enables transmit and receive. Called once, from `main`.
        pub fn take() -> Self {
            write(BAUDDIV, 16);
            write(CTRL, 0b11);
            Uart(())
        }
    }

    impl embedded_io::ErrorType for Uart {
        type Error = core::convert::Infallible;
    }

    impl embedded_io::Read for Uart {
        /// Blocks for the first byte, then takes what is already there.
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let mut n = 0;
            for b in buf.iter_mut() {
                if n > 0 && read(STATE) & RX_FULL == 0 {
                    break;
                }
                while read(STATE) & RX_FULL == 0 {}
                *b = (read(DATA) & 0xff) as u8;
                n += 1;
            }
            Ok(n)
        }
    }

    impl embedded_io::Write for Uart {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            for &b in buf {
                while read(STATE) & TX_FULL != 0 {}
                write(DATA, u32::from(b));
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
}

/// SysTick wraps since boot.
static WRAPS: AtomicU32 = AtomicU32::new(0);
const RELOAD: u32 = 0x00ff_ffff;

#[allow(unsafe_code)]
#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick at the core clock (25 MHz on mps2).
struct SysTicks(cortex_m::peripheral::SYST);

impl Ticks for SysTicks {
    fn ticks(&mut self) -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Relaxed);
            let current = cortex_m::peripheral::SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == before {
                return u64::from(before) * u64::from(RELOAD + 1) + u64::from(RELOAD - current);
            }
        }
    }
    fn rate(&self) -> u64 {
        25_000_000
    }
}

struct QemuBoard {
    flash: &'static mut [u8; PAGE * PAGES],
    ticks: SysTicks,
}

impl Board for QemuBoard {
    type Uart = uart::Uart;
    type Flash = SimFlash<&'static mut [u8; PAGE * PAGES], PAGE, PAGES>;
    type Entropy = ChaChaEntropy;
    type Ticks = SysTicks;

    fn into_parts(self) -> (uart::Uart, Self::Flash, ChaChaEntropy, SysTicks) {
        // No TRNG on mps2: a fixed seed, stated in the module docs.
        let entropy = ChaChaEntropy::from_seed(*b"qemu-mps2-an386 has no TRNG!!!!!");
        (uart::Uart::take(), SimFlash::new(self.flash), entropy, self.ticks)
    }
}

/// Power-on self-test: the EIP-712 specification's `Mail` signature (key
/// keccak256("cow"), v 28). Returns the SysTick ticks one signature took.
/// Not inlined: its action would otherwise sit in `main`'s frame for good.
#[inline(never)]
fn self_test(ticks: &mut SysTicks) -> Result<u64, &'static str> {
    use tee_core::action::{Action, Eip712Prehashed};
    let key = tee_core::SigningKey::from_bytes(&tee_core::primitives::keccak256(b"cow").0)
        .map_err(|_| "key")?;
    let action = Action::Eip712Prehashed(Eip712Prehashed {
        domain_separator: B256(hex_literal::hex!(
            "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
        )),
        struct_hash: B256(hex_literal::hex!(
            "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
        )),
    });
    let start = ticks.ticks();
    let signed = key.sign(&action).map_err(|_| "sign")?;
    let took = ticks.ticks() - start;
    let expected_r =
        hex_literal::hex!("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d");
    if signed.signature.r != expected_r || signed.signature.v() != 28 {
        return Err("known-answer signature mismatch");
    }
    Ok(took)
}

#[entry]
fn main() -> ! {
    let Some(cp) = cortex_m::Peripherals::take() else { halt("peripherals taken") };
    let mut syst = cp.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    let mut ticks = SysTicks(syst);

    match self_test(&mut ticks) {
        Ok(t) => line(&[
            Part::Str("self-test ok: one signature took "),
            Part::Num(u32::try_from(t).unwrap_or(u32::MAX)),
            Part::Str(" SysTick ticks"),
        ]),
        Err(e) => halt(e),
    }

    #[allow(unsafe_code)]
    // The emulated flash: 16 KiB of .bss, handed out once.
    let Some(flash) = cortex_m::singleton!(: [u8; PAGE * PAGES] = [0; PAGE * PAGES]) else {
        halt("flash taken")
    };
    let board = QemuBoard { flash, ticks };
    // Static messages only: formatting derived `Debug` impls would cost
    // kilobytes of flash.
    let config = DeviceConfig { device_id: DEVICE_ID, admin: ADMIN, bounds: ActionBounds::MCU };
    halt(match firmware_sim::board::run(board, config) {
        Halt::Store(_) => "the flash store cannot be opened",
        Halt::Device(_) => "the device cannot be opened from the stored state",
        Halt::Uart(_) => "UART failure",
        Halt::EndOfStream => "UART closed",
    })
}

fn halt(why: &str) -> ! {
    line(&[Part::Str("halt: "), Part::Str(why)]);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // The location, not the message: formatting messages costs flash.
    match info.location() {
        Some(l) => line(&[
            Part::Str("panic at "),
            Part::Str(l.file()),
            Part::Str(":"),
            Part::Num(l.line()),
        ]),
        None => line(&[Part::Str("panic")]),
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
