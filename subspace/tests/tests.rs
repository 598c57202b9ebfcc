//! The crate's one integration-test binary (libtorch is linked once): a module per area.

mod fastfood;
mod fwht;
mod subspace;
