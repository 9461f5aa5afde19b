//! The fairuse binary's library: the commands (`simulate`, `gen-trace`, `check-config`, `serve`),
//! kept in a library so tests can drive them in-process. The composition root: it is the only
//! crate that knows every other crate.
#![forbid(unsafe_code)]

pub mod sim;
