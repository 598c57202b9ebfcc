//! The crate's one integration-test binary (libtorch is linked once): a module per area, helpers
//! in `support`.

mod model;
mod pytorch_bin;
mod support;
