//! The fairuse binary's library: the commands (`serve`, `simulate`, `gen-trace`, `gen-families`,
//! `eval`, `export-trace`, `backtest`, `check-config`), kept in a library so tests can drive them in-process. This is the
//! composition root: the only crate that knows every other crate.
#![forbid(unsafe_code)]

pub mod backtest;
pub mod config;
pub mod eval;
pub mod export;
pub mod families;
pub mod first_run;
pub mod gen_trace;
pub mod heard;
pub mod serve;
pub mod sim;
pub mod speech;
pub mod telemetry;
pub mod verdict_log;
