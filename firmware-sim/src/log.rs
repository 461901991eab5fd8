//! Logging without `core::fmt`: strings and `u32`s written by hand, through
//! semihosting on the QEMU image and to stderr on the host (when
//! `FIRMWARE_LOG` is set). Formatting machinery would cost the firmware
//! kilobytes of flash for a handful of lines.

/// A piece of a log line.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Text.
    Str(&'a str),
    /// A number, in decimal.
    Num(u32),
}

/// `n` in decimal, into `buf`; returns the digits.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

/// Writes one line made of `parts`.
#[allow(unused_variables)]
pub fn line(parts: &[Part<'_>]) {
    #[cfg(feature = "semihosting")]
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let mut buf = [0u8; 10];
        for p in parts {
            let _ = match p {
                Part::Str(s) => out.write_all(s.as_bytes()),
                Part::Num(n) => out.write_all(decimal(*n, &mut buf)),
            };
        }
        let _ = out.write_all(b"\n");
    }
    #[cfg(all(feature = "std", not(feature = "semihosting")))]
    if std::env::var_os("FIRMWARE_LOG").is_some() {
        let mut text = std::string::String::new();
        let mut buf = [0u8; 10];
        for p in parts {
            match p {
                Part::Str(s) => text.push_str(s),
                Part::Num(n) => {
                    text.push_str(core::str::from_utf8(decimal(*n, &mut buf)).unwrap_or("?"))
                }
            }
        }
        std::eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decimals() {
        let mut b = [0u8; 10];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(1_234_567, &mut b), b"1234567");
        assert_eq!(decimal(u32::MAX, &mut b), b"4294967295");
    }
}
