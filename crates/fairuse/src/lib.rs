//! The fairuse binary's library: the commands (`serve`, `simulate`, `gen-trace`, `gen-families`,
//! `eval`, `check-config`), kept in a library so tests can drive them in-process. This is the
//! composition root: the only crate that knows every other crate.
#![forbid(unsafe_code)]

pub mod config;
pub mod eval;
pub mod families;
pub mod first_run;
pub mod gen_trace;
pub mod serve;
pub mod sim;
pub mod speech;
