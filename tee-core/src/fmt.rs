//! Logging shim: call sites read the same on firmware (defmt) and elsewhere,
//! where the macros compile to nothing. The std adapter logs on its own side.
#![allow(unused_macros, unused_imports)]

#[cfg(feature = "defmt")]
macro_rules! log_debug {
    ($($arg:tt)*) => { ::defmt::debug!($($arg)*) };
}
#[cfg(not(feature = "defmt"))]
macro_rules! log_debug {
    ($($arg:tt)*) => {{}};
}

#[cfg(feature = "defmt")]
macro_rules! log_warn {
    ($($arg:tt)*) => { ::defmt::warn!($($arg)*) };
}
#[cfg(not(feature = "defmt"))]
macro_rules! log_warn {
    ($($arg:tt)*) => {{}};
}

pub(crate) use log_debug;
pub(crate) use log_warn;
