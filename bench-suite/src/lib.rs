//! intrinsic-bench's models, trainer and experiments: everything that links tch except the
//! projection engine, which is the [`subspace`] crate (Fastfood, DID/SAID, devices).
//!
//! - [`checkpoint`]: HF safetensors into a model, with the missing/unexpected check and seeded head init.
//! - [`models`]: model families behind one trait (BERT and RoBERTa so far), with HF names.
//! - [`reference`]: what a model or task name refers to (manifest, local files, synthetic), resolved once.
//! - [`optim`]: AdamW, the linear schedule, clipping, and run-folder checkpoints (fine-tuning and pre-training).
//! - [`pretrain`]: MLM pre-training from scratch (RoBERTa recipe): packed corpora, masking, HF checkpoints.
//! - [`precision`]: f32 or bf16 autocast for the encoder's forward/backward.
//! - [`shapes`]: parameter shapes of reference models (RoBERTa-base) for benchmarks.
//! - [`synthetic`]: a tiny random encoder and a synthetic task (the `smoke` preset, tests).
//! - [`tokenize`]: `tokenizer.json` (or BERT's `vocab.txt`) tokenisation, longest-first truncation, per-batch padding, cache.
//! - [`train`]: one trainer for full, DID and SAID fine-tuning, with evaluation, divergence and resume.
//! - [`finetune`]: one fine-tuning run from store to result (the command line and the runner share it).
//! - [`experiment`]: experiment specs, the d90 search and the runner (the result files they write
//!   are the `results` crate's).

pub mod checkpoint;
pub mod experiment;
pub mod finetune;
pub mod models;
pub mod optim;
pub mod precision;
pub mod pretrain;
pub mod reference;
pub mod shapes;
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
