//! One module per benchmarked component.

pub mod fastfood;
pub mod fwht;
