//! Logging shim: semihosting on the QEMU image, stderr on the host, nothing
//! otherwise; call sites read the same everywhere.
#![allow(unused_macros, unused_imports)]

#[cfg(feature = "semihosting")]
macro_rules! info {
    ($($arg:tt)*) => { ::cortex_m_semihosting::hprintln!($($arg)*) };
}
#[cfg(all(feature = "std", not(feature = "semihosting")))]
macro_rules! info {
    ($($arg:tt)*) => { if ::std::env::var_os("FIRMWARE_LOG").is_some() { ::std::eprintln!($($arg)*) } };
}
#[cfg(not(any(feature = "std", feature = "semihosting")))]
macro_rules! info {
    ($($arg:tt)*) => {{}};
}

pub(crate) use info;
