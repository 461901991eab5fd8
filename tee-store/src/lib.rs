#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

mod files;
pub mod group;
pub mod journal;
pub mod store;
