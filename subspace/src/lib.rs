//! intrinsic-bench's projection engine: the Fastfood map `P: R^d -> R^D` over a model's named
//! tensors, and the DID/SAID reparameterisation `theta_D = theta_0 + P(theta_d)` built on it
//! (Aghajanyan et al. 2021, section 3; Li et al. 2018). Named tensors in, tensors out: nothing
//! here knows a model, a task or a result file.
//!
//! - [`fwht`]: the fast Walsh-Hadamard transform (CPU kernel, tch-op path for any device, and the
//!   authors' per-stage algorithm as a baseline).
//! - [`fused`]: the fused multi-pass FWHT with the Fastfood steps fused in: an NVRTC-compiled CUDA
//!   kernel, and its exact emulation on the CPU.
//! - [`fastfood`]: the Fastfood projection over named tensors, its transpose, and its engines.
//! - [`reparam`]: DID and SAID over a model's parameters, with exact gradients by the transpose
//!   (its main types are re-exported here).
//! - [`random`]: keyed, machine-independent randomness (Fastfood factors, head initialisation).
//! - [`cuda`]: the CUDA libraries opened at run time (libtorch's CUDA backend, the driver, NVRTC).
//! - [`device`]: device selection (`cpu`, `cuda`, `cuda:N`).
//!
//! Module dependencies point one way: `reparam -> fastfood -> {fused, fwht, random}`,
//! `fused -> {fwht (tests), cuda}`, `device -> cuda`.

#![warn(missing_docs)]

pub mod cuda;
pub mod device;
pub mod fastfood;
pub mod fused;
pub mod fwht;
pub mod random;
pub mod reparam;

pub use reparam::{
    Compat, LambdaGrouping, LayerGroup, Method, Subspace, SubspaceConfig, SubspaceDescription, SubspaceError,
    check_dimension, release_shared_projector, scale_groups,
};

/// The PyTorch release whose libtorch this workspace builds and runs against (tch 0.24's pin);
/// every result records it.
pub const TORCH_VERSION: &str = "2.11.0";
