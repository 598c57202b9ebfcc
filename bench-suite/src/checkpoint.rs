//! Loading HF checkpoints (`model.safetensors`) into a model's variables, and initialising what the
//! checkpoint does not have (task heads) from a recorded seed.
//!
//! Checkpoint names are matched to variable names with or without the encoder prefix (`bert.`,
//! `roberta.`): the MiniLM checkpoint has none, task checkpoints have it. Pre-training heads
//! (`cls.*`, `lm_head.*`) and the `position_ids` buffer are reported as unused. Any other
//! mismatch is an error that lists every missing and unexpected tensor.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor, nn};

use crate::random;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("read {path}: {message}")]
    Read { path: String, message: String },
    #[error(
        "checkpoint {path} does not fit the model:\n  missing: {}\n  unexpected: {}",
        if .missing.is_empty() { "none".to_owned() } else { .missing.join(", ") },
        if .unexpected.is_empty() { "none".to_owned() } else { .unexpected.join(", ") }
    )]
    Mismatch { path: String, missing: Vec<String>, unexpected: Vec<String> },
    #[error("checkpoint {path}: tensor `{name}` has shape {actual:?}, the model expects {expected:?}")]
    Shape { path: String, name: String, expected: Vec<i64>, actual: Vec<i64> },
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: usize,
    /// Variables the checkpoint does not have, initialised from the seed (the task head).
    pub initialised: Vec<String>,
    /// Checkpoint tensors the model does not use (pre-training heads, buffers).
    pub unused: Vec<String>,
}

/// Loads `path` into the variables of `vs`. Variables under `fresh_prefix` (e.g. `classifier`), if
/// given, may be absent from the checkpoint: those are initialised from `seed` as HF does (weights
/// `N(0, init_std)`, biases 0); without it every variable must come from the checkpoint.
/// `encoder_prefix` is the model's encoder prefix (`bert`, `roberta`).
pub fn load(
    vs: &nn::VarStore,
    path: &Path,
    encoder_prefix: &str,
    fresh_prefix: Option<&str>,
    seed: u64,
    init_std: f64,
) -> Result<LoadReport, CheckpointError> {
    let shown = path.display().to_string();
    let tensors = Tensor::read_safetensors(path)
        .map_err(|err| CheckpointError::Read { path: shown.clone(), message: err.to_string() })?;
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut loaded = BTreeMap::new();
    let mut unused = Vec::new();
    let mut unexpected = Vec::new();
    for (name, tensor) in tensors {
        let prefixed = format!("{encoder_prefix}.{name}");
        let target = if variables.contains_key(&name) {
            name.clone()
        } else if variables.contains_key(&prefixed) {
            prefixed
        } else {
            let bare = name.strip_prefix(&format!("{encoder_prefix}.")).unwrap_or(&name);
            if bare.starts_with("cls.")
                || bare.starts_with("lm_head.")
                || name.starts_with("lm_head.")
                || bare.ends_with("position_ids")
            {
                unused.push(name);
            } else {
                unexpected.push(name);
            }
            continue;
        };
        loaded.insert(target, tensor);
    }
    let missing: Vec<String> = variables
        .keys()
        .filter(|name| {
            let fresh = fresh_prefix.is_some_and(|prefix| name.starts_with(&format!("{prefix}.")));
            !loaded.contains_key(*name) && !fresh
        })
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(CheckpointError::Mismatch { path: shown, missing, unexpected });
    }
    let _guard = tch::no_grad_guard();
    let mut initialised = Vec::new();
    for (name, variable) in &variables {
        let mut variable = variable.shallow_clone();
        match loaded.get(name) {
            Some(tensor) => {
                if tensor.size() != variable.size() {
                    return Err(CheckpointError::Shape {
                        path: shown,
                        name: name.clone(),
                        expected: variable.size(),
                        actual: tensor.size(),
                    });
                }
                variable.copy_(&tensor.to_kind(variable.kind()));
            }
            None => {
                if name.ends_with("bias") {
                    let _ = variable.zero_();
                } else {
                    let values =
                        random::normals(&mut random::keyed_rng("head init v1", seed, name, 0), variable.numel());
                    let values = Tensor::from_slice(&values).to_kind(Kind::Double) * init_std;
                    variable.copy_(&values.reshape(variable.size()).to_kind(variable.kind()));
                }
                initialised.push(name.clone());
            }
        }
    }
    Ok(LoadReport { loaded: loaded.len(), initialised, unused })
}
