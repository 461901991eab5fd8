//! Logging without `core::fmt`: strings and `u32`s written by hand, through
//! semihosting on the QEMU image and to stderr on the host (when
//! `FIRMWARE_LOG` is set). Formatting machinery would cost the firmware
//! kilobytes of flash for a handful of lines.

#[cfg(any(feature = "semihosting", feature = "std"))]
use tee_core::primitives::decimal;

/// A piece of a log line.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Text.
    Str(&'a str),
    /// A number, in decimal.
    Num(u32),
}

/// Writes one line made of `parts`.
#[allow(unused_variables)]
pub fn line(parts: &[Part<'_>]) {
    #[cfg(feature = "semihosting")]
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let mut buf = [0u8; 20];
        for p in parts {
            let _ = match p {
                Part::Str(s) => out.write_all(s.as_bytes()),
                Part::Num(n) => out.write_all(decimal(*n as usize, &mut buf)),
            };
        }
        let _ = out.write_all(b"\n");
    }
    #[cfg(all(feature = "std", not(feature = "semihosting")))]
    if std::env::var_os("FIRMWARE_LOG").is_some() {
        let mut text = std::string::String::new();
        let mut buf = [0u8; 20];
        for p in parts {
            match p {
                Part::Str(s) => text.push_str(s),
                Part::Num(n) => text
                    .push_str(core::str::from_utf8(decimal(*n as usize, &mut buf)).unwrap_or("?")),
            }
        }
        std::eprintln!("{text}");
    }
}
