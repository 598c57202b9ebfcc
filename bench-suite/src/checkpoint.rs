//! Loading HF checkpoints (`model.safetensors`) into a model's variables, and initialising what the
//! checkpoint does not have (task heads) from a recorded seed.
//!
//! Checkpoint names are matched to variable names as HF `transformers` (5.24.0,
//! `PreTrainedModel._load_pretrained_model` and `conversion_mapping.py`'s `legacy` renamings)
//! matches them:
//! - with or without the encoder prefix (`bert.`, `roberta.`): the MiniLM checkpoint has none,
//!   task checkpoints have it;
//! - legacy names of checkpoints converted from TensorFlow: `LayerNorm.gamma` is the LayerNorm's
//!   `weight`, `LayerNorm.beta` its `bias` (HF's own `bert-base-uncased` `model.safetensors` is
//!   written so); renamed tensors are listed in the [`LoadReport`], as HF logs them.
//!
//! Tensors the model does not use are reported as unused and skipped, as HF does: pre-training
//! heads (`cls.*`, `lm_head.*`), a pooler when the model has none (RoBERTa's classifier reads the
//! first token instead), and buffers (`position_ids`, `token_type_ids`). Anything else that does
//! not fit is an error that lists every missing and unexpected tensor: a variable the model needs
//! is never left at its initial value, and two checkpoint tensors for one variable (a legacy and
//! a current name) are refused.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor, nn};

use subspace::random;

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
    #[error("checkpoint {path}: `{first}` and `{second}` both give the variable `{variable}`; remove one")]
    Conflict { path: String, variable: String, first: String, second: String },
    #[error("checkpoint {path}: tensor `{name}` has shape {actual:?}, the model expects {expected:?}")]
    Shape { path: String, name: String, expected: Vec<i64>, actual: Vec<i64> },
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: usize,
    /// Variables the checkpoint does not have, initialised from the seed (the task head).
    pub initialised: Vec<String>,
    /// Checkpoint tensors the model does not use (pre-training heads, a pooler it lacks, buffers).
    pub unused: Vec<String>,
    /// Checkpoint tensors loaded under another name: `(checkpoint name, variable)`, legacy names
    /// only (prefixes added or removed are not listed).
    pub renamed: Vec<(String, String)>,
}

/// HF's `legacy` renamings: a checkpoint name ending in the first is the variable ending in the
/// second.
const LEGACY_SUFFIXES: [(&str, &str); 2] =
    [("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias")];

/// Whether the checkpoint tensor `name` (encoder prefix removed) is one a model without it does
/// not use: pre-training heads, a pooler the model does not have, buffers.
fn unused_by_design(bare: &str, model_has_pooler: bool) -> bool {
    bare.starts_with("cls.")
        || bare.starts_with("lm_head.")
        || (bare.starts_with("pooler.") && !model_has_pooler)
        || bare.ends_with("position_ids")
        || bare == "embeddings.token_type_ids"
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
    let model_has_pooler = variables.keys().any(|name| name.contains("pooler."));
    let encoder_dot = format!("{encoder_prefix}.");
    let mut loaded: BTreeMap<String, (String, Tensor)> = BTreeMap::new();
    let mut unused = Vec::new();
    let mut unexpected = Vec::new();
    let mut renamed = Vec::new();
    for (name, tensor) in tensors {
        let (current, legacy) = match LEGACY_SUFFIXES.iter().find(|(old, _)| name.ends_with(old)) {
            Some((old, new)) => (format!("{}{new}", &name[..name.len() - old.len()]), true),
            None => (name.clone(), false),
        };
        let prefixed = format!("{encoder_dot}{current}");
        let target = if variables.contains_key(&current) {
            current
        } else if variables.contains_key(&prefixed) {
            prefixed
        } else {
            let bare = name.strip_prefix(&encoder_dot).unwrap_or(&name);
            if unused_by_design(bare, model_has_pooler) {
                unused.push(name);
            } else {
                unexpected.push(name);
            }
            continue;
        };
        if legacy {
            renamed.push((name.clone(), target.clone()));
        }
        if let Some((first, _)) = loaded.get(&target) {
            return Err(CheckpointError::Conflict {
                path: shown,
                variable: target.clone(),
                first: first.clone(),
                second: name,
            });
        }
        loaded.insert(target, (name, tensor));
    }
    // The file's order is not the reader's: sorted names keep reports and errors stable.
    unused.sort();
    unexpected.sort();
    renamed.sort();
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
            Some((_, tensor)) => {
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
    Ok(LoadReport { loaded: loaded.len(), initialised, unused, renamed })
}
