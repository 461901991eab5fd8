#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

mod compaction;
pub mod error;
mod files;
pub mod group;
pub mod journal;
mod layout;
pub mod store;
