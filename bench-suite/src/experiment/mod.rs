//! Experiments: declarative specs, the d90 search and the runner that ties them to the trainer;
//! what they write is the `results` crate's schema.
//!
//! - [`spec`]: YAML specs into a checked [`spec::Plan`] (presets ship in `bench-suite/presets/`).
//! - [`search`]: the d90 grid and the grid/bisect searches, independent of training (the `d90`
//!   crate).
//! - [`runner`]: checks a plan against the assets, then runs it, reusing finished work.
//! - [`yaml_location`]: the line of a field in a YAML text, for errors.

pub mod runner;
pub mod spec;
pub mod yaml_location;

/// The d90 search over the grid (the `d90` crate's, where the statistics that read it live too).
pub use d90::search;

pub use ::results::{results_dir, results_name};

/// The presets shipped with the suite: name and YAML text.
pub const PRESETS: [(&str, &str); 6] = [
    ("smoke", include_str!("../../presets/smoke.yaml")),
    ("quick", include_str!("../../presets/quick.yaml")),
    ("miniature", include_str!("../../presets/miniature.yaml")),
    ("nightly", include_str!("../../presets/nightly.yaml")),
    ("paper", include_str!("../../presets/paper.yaml")),
    ("miniatures", include_str!("../../presets/miniatures.yaml")),
];

/// A shipped preset's text and the file name errors should point at.
pub fn preset(name: &str) -> Option<(std::path::PathBuf, &'static str)> {
    PRESETS
        .iter()
        .find(|(preset, _)| *preset == name)
        .map(|(preset, text)| (std::path::PathBuf::from(format!("bench-suite/presets/{preset}.yaml")), *text))
}
