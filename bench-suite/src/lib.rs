//! intrinsic-bench's experiments: what names refer to, one fine-tuning run from store to result,
//! and the experiment runner, on top of the trainer ([`trainer`]), the model families
//! ([`encoders`]) and the projection engine ([`subspace`]).
//!
//! - [`settings`]: the training settings a spec and `finetune`'s command line share, with the
//!   paper's defaults and their checks, declared once.
//! - [`synthetic`]: a tiny random encoder and a synthetic task (the `smoke` preset, tests).
//! - [`reference`]: what a model or task name refers to (manifest, local files, synthetic),
//!   resolved once.
//! - [`finetune`]: one fine-tuning run from store to result (the command line and the runner
//!   share it).
//! - [`error`]: the one error type of a run and of a reproduction, [`Error`].
//! - [`experiment`]: experiment specs, the d90 search and the runner (the result files they
//!   write are the `results` crate's).

#![warn(missing_docs)]

pub mod error;
pub mod experiment;
pub mod finetune;
pub mod reference;
pub mod settings;
pub mod synthetic;

pub use error::Error;

/// The code revision this binary was built from: `git rev-parse --short=12 HEAD` at build time,
/// `+dirty` when tracked files differed from it, `unknown` when built outside a git checkout
/// (captured by `build.rs`, so it names the code that runs, whatever the work tree holds later).
/// Every result's provenance and signature carry it.
pub fn code_revision() -> &'static str {
    env!("INTRINSIC_BENCH_CODE_REVISION")
}
