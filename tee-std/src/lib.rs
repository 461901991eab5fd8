#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod client;
pub mod demo;
pub mod eventlog;
pub mod hexser;
pub mod pccs;
pub mod sim;
pub mod verify;
