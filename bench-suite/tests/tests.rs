//! The crate's one integration-test binary (libtorch is linked once): a module per area, helpers
//! in `support` (the file encoders' binary uses, so each helper is written once).

mod cases;
mod cases3;
mod experiment;
mod gpu_check;
mod hub;
mod local;
mod pretrain;
mod real_finetune;
#[path = "../../encoders/tests/support.rs"]
mod support;
mod tokenize;
mod train;
mod wordpiece;
