//! intrinsic-bench's trainer and experiments: everything that trains, on top of the model
//! families of [`encoders`] and the projection engine of [`subspace`].
//!
//! - [`tokenize`]: `tokenizer.json` (or BERT's `vocab.txt`) tokenisation, longest-first
//!   truncation, per-batch padding, cache.
//! - [`optim`]: AdamW, the linear schedule, clipping, and the run state saved for resume
//!   (fine-tuning and pre-training).
//! - [`precision`]: f32 or bf16 autocast for the encoder's forward/backward.
//! - [`settings`]: the training settings a spec and `finetune`'s command line share, with the
//!   paper's defaults and their checks, declared once.
//! - [`interrupt`]: stopping a run from outside (SIGTERM) through a handle, and the one error
//!   that says so.
//! - [`train`]: one trainer for full, DID and SAID fine-tuning, with evaluation, divergence and
//!   resume.
//! - [`pretrain`]: MLM pre-training from scratch (RoBERTa recipe): packed corpora, masking, HF
//!   checkpoints.
//! - [`synthetic`]: a tiny random encoder and a synthetic task (the `smoke` preset, tests).
//! - [`reference`]: what a model or task name refers to (manifest, local files, synthetic),
//!   resolved once.
//! - [`finetune`]: one fine-tuning run from store to result (the command line and the runner
//!   share it).
//! - [`experiment`]: experiment specs, the d90 search and the runner (the result files they
//!   write are the `results` crate's).

#![warn(missing_docs)]

pub mod experiment;
pub mod finetune;
pub mod interrupt;
pub mod optim;
pub mod precision;
pub mod pretrain;
pub mod reference;
pub mod settings;
pub mod synthetic;
pub mod tokenize;
pub mod train;

/// The code revision this binary was built from: `git rev-parse --short=12 HEAD` at build time,
/// `+dirty` when tracked files differed from it, `unknown` when built outside a git checkout
/// (captured by `build.rs`, so it names the code that runs, whatever the work tree holds later).
/// Every result's provenance and signature carry it.
pub fn code_revision() -> &'static str {
    env!("INTRINSIC_BENCH_CODE_REVISION")
}
