//! intrinsic-bench's heavy crate: everything that links tch.
//!
//! - [`fwht`]: the fast Walsh-Hadamard transform (CPU kernel, tch-op path for any device, and the
//!   authors' per-stage algorithm as a baseline).
//! - [`fused`]: the fused multi-pass FWHT with the Fastfood steps fused in: an NVRTC-compiled CUDA
//!   kernel, and its exact emulation on the CPU.
//! - [`fastfood`]: the Fastfood projection `P: R^d -> R^D` over named tensors, and its transpose.
//! - [`subspace`]: DID and SAID reparameterisation of a model, with exact gradients by the transpose.
//! - [`checkpoint`]: HF safetensors into a model, with the missing/unexpected check and seeded head init.
//! - [`model`]: BERT and RoBERTa encoders with HF names, and their classification heads.
//! - [`precision`]: f32 or bf16 autocast for the encoder's forward/backward.
//! - [`random`]: keyed, machine-independent randomness (Fastfood factors, head initialisation).
//! - [`shapes`]: parameter shapes of reference models (RoBERTa-base) for benchmarks.
//! - [`synthetic`]: a tiny random encoder and a synthetic task (the `smoke` preset, tests).
//! - [`tokenize`]: `tokenizer.json` tokenisation, longest-first truncation, per-batch padding, cache.
//! - [`train`]: one trainer for full, DID and SAID fine-tuning, with evaluation, divergence and resume.
//! - [`finetune`]: one fine-tuning run from store to result (the command line and the runner share it).
//! - [`experiment`]: experiment specs, the d90 search, result files and the runner.
//! - [`device`]: device selection, loading libtorch's CUDA library at run time.

pub mod checkpoint;
pub mod device;
pub mod experiment;
pub mod fastfood;
pub mod finetune;
pub mod fused;
pub mod fwht;
pub mod model;
pub mod precision;
pub mod random;
pub mod shapes;
pub mod subspace;
pub mod synthetic;
pub mod tokenize;
pub mod train;
