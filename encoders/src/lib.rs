//! The model families of the paper as tch modules at HF parity, by their HF parameter names:
//! configs, checkpoint loading and parameter layouts. No trainer, runner or network here (the
//! compiler holds that: this crate depends on none of them); the only files read are a model's
//! own (`config.json`, weights) in [`checkpoint`].
//!
//! - [`models`]: nine families behind the [`models::Classifier`] trait (BERT, RoBERTa, XLM-R,
//!   ELECTRA, DistilBERT, ALBERT, BART, T5, XLNet), one file per family, and their HF
//!   `config.json` under BERT's field names.
//! - [`checkpoint`]: `model.safetensors` or `pytorch_model.bin` into a model's variables, with
//!   HF's missing/unexpected check and a seeded head init.
//! - [`error`]: the crate's one error type, [`Error`].
//! - [`shapes`]: parameter layouts of a config (D and SAID's m without building the model), and
//!   the reference sizes benchmarks use.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod models;
pub mod shapes;

pub use error::Error;
