//! intrinsic-bench's trainer: everything that trains, on top of the model families of
//! [`encoders`] and the projection engine of [`subspace`]. It knows no experiment, spec or runner.
//!
//! - [`error`]: the crate's one error type, [`Error`].
//! - [`tokenize`]: `tokenizer.json` (or BERT's `vocab.txt`) tokenisation, longest-first
//!   truncation, per-batch padding, cache.
//! - [`optim`]: AdamW, the linear schedule, clipping, and the run state saved for resume.
//! - [`precision`]: f32 or bf16 autocast for the encoder's forward/backward.
//! - [`interrupt`]: stopping a run from outside (SIGTERM) through a handle, and the one error
//!   that says so.
//! - [`session`]: the resumable loop's skeleton that fine-tuning and pre-training share: the
//!   process's turn, resume, per-process limits, saving when due or interrupted.
//! - [`train`]: one trainer for full, head-only, DID and SAID fine-tuning, with evaluation,
//!   divergence and resume.
//! - [`pretrain`]: MLM pre-training from scratch (RoBERTa recipe): packed corpora, masking, HF
//!   checkpoints.

#![warn(missing_docs)]

pub mod error;
pub use error::Error;

pub mod interrupt;
pub mod optim;
pub mod precision;
pub mod pretrain;
pub mod session;
pub mod tokenize;
pub mod train;
