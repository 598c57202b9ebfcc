//! The d90 protocol as plain numbers (Aghajanyan et al. 2021, section 4): the search over the grid,
//! the estimate where the score curve crosses the target, the bootstrap that says how far that
//! estimate moves when the experiment is repeated, and the comparisons and trends built on it.
//! No tch and no polars: the runner (`bench-suite`) searches with it, the reports read records
//! through it, and its coverage simulation ([`simulate`]) runs the whole search thousands of times
//! in seconds.
//!
//! - [`search`]: the grid and the grid / bisect searches; the grid d90 (the smallest probed `d`
//!   from which every larger probe succeeds), as the searches record it.
//! - [`curve`]: the isotonic fit of probe scores against log d and where it crosses the target.
//! - [`bootstrap`]: a search as the bootstrap reads it (per-seed, and where the runs kept them
//!   per-example, outcomes), its resamples, percentile intervals and the two-sided `determined`.
//! - [`compare`]: paired ratios of two crossings, slopes of log d90 and Spearman correlations over
//!   the same resamples, each with its verdict.
//! - [`simulate`]: a generator of per-seed, per-example outcomes from a known curve, and the
//!   coverage of the intervals against its known d90.

#![warn(missing_docs)]

pub mod bootstrap;
pub mod compare;
pub mod curve;
mod random;
pub mod search;
pub mod simulate;
