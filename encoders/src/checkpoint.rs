//! Loading HF checkpoints (`model.safetensors`, or `pytorch_model.bin` through [`pytorch_bin`]) into
//! a model's variables, and initialising what the checkpoint does not have (task heads) from a
//! recorded seed.
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

use crate::Error;

pub mod pytorch_bin;
pub mod safetensors;

pub use pytorch_bin::WeightsFormat;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// How many variables were copied from checkpoint tensors.
    pub loaded: usize,
    /// Variables the checkpoint does not have, initialised from the seed (the task head).
    pub initialised: Vec<String>,
    /// Checkpoint tensors the model does not use (pre-training heads, a pooler it lacks, buffers).
    pub unused: Vec<String>,
    /// Checkpoint tensors loaded under another name: `(checkpoint name, variable)`, legacy names
    /// and tied embeddings saved under a tied name only (prefixes added or removed are not
    /// listed).
    pub renamed: Vec<(String, String)>,
}

/// HF's `legacy` renamings: a checkpoint name ending in the first is the variable ending in the
/// second.
const LEGACY_SUFFIXES: [(&str, &str); 2] =
    [("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias")];

/// The pre-training heads of HF's families: BERT's `cls`, RoBERTa's and XLM-R's `lm_head`,
/// ELECTRA's discriminator and generator heads, DistilBERT's MLM head, ALBERT's MLM and
/// sentence-order heads, BART's generation bias, XLNet's LM head.
const PRETRAINING_HEADS: [&str; 12] = [
    "cls.",
    "lm_head.",
    "discriminator_predictions.",
    "generator_predictions.",
    "generator_lm_head.",
    "vocab_transform.",
    "vocab_layer_norm.",
    "vocab_projector.",
    "predictions.",
    "sop_classifier.",
    "final_logits_bias",
    "lm_loss.",
];

/// Whether the checkpoint tensor `name` (encoder prefix removed) is one a model without it does
/// not use: pre-training heads, a pooler the model does not have, buffers.
fn unused_by_design(bare: &str, model_has_pooler: bool) -> bool {
    PRETRAINING_HEADS.iter().any(|head| bare.starts_with(head))
        // BART's and T5's token embeddings, saved under the names HF ties to `shared`.
        || bare == "encoder.embed_tokens.weight"
        || bare == "decoder.embed_tokens.weight"
        // fairseq's version buffers in converted BART checkpoints; the cross-attention position
        // bias of the original T5 checkpoints, which T5 never reads (HF ignores both).
        || bare == "encoder.version"
        || bare == "decoder.version"
        || bare == "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"
        || (bare.starts_with("pooler.") && !model_has_pooler)
        || bare.ends_with("position_ids")
        || bare == "embeddings.token_type_ids"
}

/// What becomes of the variables under the head's prefixes (`ModelType::head_prefixes`:
/// `classifier`, and DistilBERT's `pre_classifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head<'a> {
    /// No head: every variable comes from the checkpoint.
    None,
    /// The checkpoint's head where it has one (HF parity, evaluating a fine-tuned checkpoint),
    /// else initialised from the seed.
    IfPresent(&'a [&'a str]),
    /// Always initialised from the seed, as fine-tuning starts (the seed is part of a run's key);
    /// a head in the checkpoint (a folder saved from a `*ForSequenceClassification`) is reported
    /// unused.
    Fresh(&'a [&'a str]),
}

impl Head<'_> {
    fn prefixes(self) -> Vec<String> {
        match self {
            Head::None => Vec::new(),
            Head::IfPresent(prefixes) | Head::Fresh(prefixes) => {
                prefixes.iter().map(|prefix| format!("{prefix}.")).collect()
            }
        }
    }
}

/// Where each checkpoint tensor goes in a model whose variables (and shapes) are `variables`.
struct Placement {
    /// Variable -> checkpoint name.
    loaded: BTreeMap<String, String>,
    unused: Vec<String>,
    renamed: Vec<(String, String)>,
}

/// Matches checkpoint tensors (`name -> shape`) to `variables` (see the module doc), checking
/// every missing, unexpected or conflicting name and every shape, touching no tensor data.
fn place(
    path: &str,
    tensors: &BTreeMap<String, Vec<i64>>,
    variables: &BTreeMap<String, Vec<i64>>,
    encoder_prefix: &str,
    head: Head,
) -> Result<Placement, Error> {
    let model_has_pooler = variables.keys().any(|name| name.contains("pooler."));
    let encoder_dot = format!("{encoder_prefix}.");
    let head_prefixes = head.prefixes();
    let in_head = |name: &str| head_prefixes.iter().any(|prefix| name.starts_with(prefix.as_str()));
    let mut loaded: BTreeMap<String, String> = BTreeMap::new();
    let mut unused = Vec::new();
    let mut unexpected = Vec::new();
    let mut renamed = Vec::new();
    for name in tensors.keys() {
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
            let bare = name.strip_prefix(&encoder_dot).unwrap_or(name);
            if unused_by_design(bare, model_has_pooler) {
                unused.push(name.clone());
            } else {
                unexpected.push(name.clone());
            }
            continue;
        };
        if matches!(head, Head::Fresh(_)) && in_head(&target) {
            unused.push(name.clone());
            continue;
        }
        if legacy {
            renamed.push((name.clone(), target.clone()));
        }
        if let Some(first) = loaded.get(&target) {
            return Err(Error::Conflict {
                path: path.to_owned(),
                variable: target.clone(),
                first: first.clone(),
                second: name.clone(),
            });
        }
        loaded.insert(target, name.clone());
    }
    // Tied token embeddings saved once under a tied name (safetensors written with the duplicates
    // removed keep `decoder.embed_tokens` or `encoder.embed_tokens` and drop `shared`): HF ties
    // them, so the kept tensor gives `shared`.
    let tied_targets: Vec<String> = variables
        .keys()
        .filter(|name| name.ends_with("shared.weight") && !loaded.contains_key(*name) && !in_head(name))
        .cloned()
        .collect();
    for target in tied_targets {
        let source = unused.iter().position(|name| {
            let bare = name.strip_prefix(&encoder_dot).unwrap_or(name);
            (bare == "encoder.embed_tokens.weight" || bare == "decoder.embed_tokens.weight")
                && tensors[name] == variables[&target]
        });
        if let Some(index) = source {
            let name = unused.remove(index);
            renamed.push((name.clone(), target.clone()));
            loaded.insert(target, name);
        }
    }
    unused.sort();
    unexpected.sort();
    renamed.sort();
    let missing: Vec<String> =
        variables.keys().filter(|name| !loaded.contains_key(*name) && !in_head(name)).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(Error::Mismatch { path: path.to_owned(), missing, unexpected });
    }
    for (variable, name) in &loaded {
        if tensors[name] != variables[variable] {
            return Err(Error::Shape {
                path: path.to_owned(),
                name: variable.clone(),
                expected: variables[variable].clone(),
                actual: tensors[name].clone(),
            });
        }
    }
    Ok(Placement { loaded, unused, renamed })
}

/// The tensor names and shapes of a `.safetensors` file, from its header alone, checked as the
/// load checks it ([`safetensors::header`]).
pub fn safetensors_shapes(path: &Path) -> Result<BTreeMap<String, Vec<i64>>, Error> {
    Ok(safetensors::header(path)?.entries.into_iter().map(|(name, entry)| (name, entry.shape)).collect())
}

/// For the index of a sharded checkpoint (`model.safetensors.index.json` or
/// `pytorch_model.bin.index.json`, as `save_pretrained` writes above its shard size): each
/// shard file beside it with the tensor names the index's `weight_map` puts there; `None` for
/// any other file.
pub fn index_shards(path: &Path) -> Result<Option<BTreeMap<std::path::PathBuf, Vec<String>>>, Error> {
    let is_index = path.file_name().is_some_and(|name| name.to_string_lossy().ends_with(".index.json"));
    if !is_index {
        return Ok(None);
    }
    let error = |message: String| Error::Read { path: path.display().to_string(), message };
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    let index: Index = serde_json::from_str(&text).map_err(|err| error(format!("not a shard index: {err}")))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut shards: BTreeMap<std::path::PathBuf, Vec<String>> = BTreeMap::new();
    for (name, file) in index.weight_map {
        if file.contains('/') || file.contains('\\') || file.starts_with('.') || file.ends_with(".index.json") {
            return Err(error(format!("`{name}` is in `{file}`, which is not a file name beside the index")));
        }
        shards.entry(folder.join(&file)).or_default().push(name);
    }
    for shard in shards.keys() {
        if !shard.is_file() {
            return Err(error(format!(
                "the index names the shard {}, which is missing: download every shard of the checkpoint",
                shard.display()
            )));
        }
    }
    Ok(Some(shards))
}

/// What `read` gives of each shard the index at `index` lists, merged: the tensors the index
/// puts in each shard; one the shard lacks is an error.
fn from_shards<T>(
    index: &Path,
    shards: BTreeMap<std::path::PathBuf, Vec<String>>,
    read: fn(&Path) -> Result<BTreeMap<String, T>, Error>,
) -> Result<BTreeMap<String, T>, Error> {
    let mut merged = BTreeMap::new();
    for (shard, names) in shards {
        let mut found = read(&shard)?;
        for name in names {
            let tensor = found.remove(&name).ok_or_else(|| Error::Read {
                path: index.display().to_string(),
                message: format!("the index puts `{name}` in {}, which does not hold it", shard.display()),
            })?;
            merged.insert(name, tensor);
        }
    }
    Ok(merged)
}

/// The tensor names and shapes of the weights file at `path`, whichever its format: from the
/// header of a safetensors file, or from the pickled index of a `torch.save` file (its tensor
/// data is not read).
pub fn tensor_shapes(path: &Path) -> Result<BTreeMap<String, Vec<i64>>, Error> {
    if let Some(shards) = index_shards(path)? {
        return from_shards(path, shards, tensor_shapes);
    }
    match pytorch_bin::format_of(path)? {
        WeightsFormat::Safetensors => safetensors_shapes(path),
        WeightsFormat::TorchSave => Ok(pytorch_bin::shapes(path)?.into_iter().collect()),
    }
}

/// The tensors of the weights file at `path` (safetensors or a `torch.save` file), on the CPU.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, Error> {
    if let Some(shards) = index_shards(path)? {
        return from_shards(path, shards, read_tensors);
    }
    let tensors = match pytorch_bin::format_of(path)? {
        WeightsFormat::Safetensors => safetensors::read(path)?,
        WeightsFormat::TorchSave => pytorch_bin::read(path)?.into_iter().collect(),
    };
    Ok(tensors)
}

/// Checks, before any training, that the checkpoint at `path` fits a model whose variables are
/// `layout` (names and shapes, e.g. `shapes::sequence_classifier`): the same matching and checks
/// as [`load`], from the header of a safetensors file or the pickled index of a `torch.save` file.
pub fn check(path: &Path, layout: &[(String, Vec<i64>)], encoder_prefix: &str, head: Head) -> Result<(), Error> {
    let tensors = tensor_shapes(path)?;
    let variables: BTreeMap<String, Vec<i64>> = layout.iter().cloned().collect();
    place(&path.display().to_string(), &tensors, &variables, encoder_prefix, head).map(|_| ())
}

/// [`check`] for a fine-tuning run: the weights at `path` against the sequence classifier of
/// `config` with `n_labels` labels, its head fresh from the run's seed.
pub fn check_for_finetuning(path: &Path, config: &crate::models::Config, n_labels: i64) -> Result<(), Error> {
    let layout = crate::shapes::sequence_classifier(config, n_labels);
    check(path, &layout, config.model_type.prefix(), Head::Fresh(config.model_type.head_prefixes()))
}

/// Loads `path` into the variables of `vs`. Variables of the [`Head`] that do not come from the
/// checkpoint are initialised from `seed` as HF does (weights `N(0, init_std)`, biases 0).
/// `encoder_prefix` is the model's encoder prefix (`bert`, `roberta`).
pub fn load(
    vs: &nn::VarStore,
    path: &Path,
    encoder_prefix: &str,
    head: Head,
    seed: u64,
    init_std: f64,
) -> Result<LoadReport, Error> {
    let shown = path.display().to_string();
    let tensors = read_tensors(path)?;
    let variables: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let shapes = |tensors: &BTreeMap<String, Tensor>| -> BTreeMap<String, Vec<i64>> {
        tensors.iter().map(|(name, tensor)| (name.clone(), tensor.size())).collect()
    };
    let placement = place(&shown, &shapes(&tensors), &shapes(&variables), encoder_prefix, head)?;
    let _guard = tch::no_grad_guard();
    let mut initialised = Vec::new();
    for (name, variable) in &variables {
        let mut variable = variable.shallow_clone();
        match placement.loaded.get(name) {
            Some(source) => {
                variable.copy_(&tensors[source].to_kind(variable.kind()));
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
    Ok(LoadReport { loaded: placement.loaded.len(), initialised, unused: placement.unused, renamed: placement.renamed })
}
