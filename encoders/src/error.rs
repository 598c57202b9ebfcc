//! The encoders' one error type (candle-core's pattern, as `datasets::Error` and
//! `trainer::Error`): a `config.json` refused by
//! [`Config::from_json`](crate::models::Config::from_json), or a checkpoint that could not be read,
//! checked or loaded into a model ([`crate::checkpoint`]).

/// Why a `config.json` was refused, or a checkpoint could not be read, checked or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid JSON, a required field missing or of the wrong type, an unknown `model_type`, or
    /// an unsupported `hidden_act`.
    #[error("config: {0}")]
    ConfigParse(#[from] serde_json::Error),
    /// A `config.json` without `model_type` whose checkpoint's name contains no family's.
    #[error(
        "config: no `model_type`, and `{name}` names no family the suite implements (bert, roberta, xlm-roberta, \
         electra, distilbert, albert, bart, t5, xlnet), from which HF's AutoConfig would infer it: add \
         `\"model_type\": \"<family>\"` to config.json"
    )]
    NoModelType {
        /// The checkpoint's name (its repository or folder).
        name: String,
    },
    /// The width does not split evenly into attention heads (the encoder's, or BART's decoder's;
    /// T5, with its own `d_kv`, is exempt).
    #[error("config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")]
    Heads {
        /// `hidden_size`.
        hidden: i64,
        /// The number of heads that does not divide it.
        heads: i64,
    },
    /// A config field with a value the suite does not implement or that is out of range.
    #[error("config: `{field}` = {value} is not supported: {why}")]
    Unsupported {
        /// The field, under BERT's name where the family's was read as BERT's.
        field: &'static str,
        /// The value given, as written in the message.
        value: String,
        /// Why it is refused, and what to do instead where there is a fix.
        why: &'static str,
    },
    /// A weights file could not be opened or read, is neither a safetensors file nor a state
    /// dict that `torch.save` wrote, or holds no tensors or a dtype the suite does not load.
    #[error("read {path}: {message}")]
    Read {
        /// The weights file, as displayed.
        path: String,
        /// What went wrong (the I/O or parse error).
        message: String,
    },
    /// The checkpoint's tensor names do not fit the model's variables: variables it lacks, or
    /// tensors that are neither variables nor unused by design (pre-training heads, buffers).
    #[error(
        "checkpoint {path} does not fit the model:\n  missing: {}\n  unexpected: {}",
        if .missing.is_empty() { "none".to_owned() } else { .missing.join(", ") },
        if .unexpected.is_empty() { "none".to_owned() } else { .unexpected.join(", ") }
    )]
    Mismatch {
        /// The weights file, as displayed.
        path: String,
        /// Model variables (outside the head) that no checkpoint tensor gives, sorted.
        missing: Vec<String>,
        /// Checkpoint tensors that match no variable and are not unused by design, sorted.
        unexpected: Vec<String>,
    },
    /// Two checkpoint tensors give the same variable (a legacy and a current name, or a name with
    /// and without the encoder prefix).
    #[error("checkpoint {path}: `{first}` and `{second}` both give the variable `{variable}`; remove one")]
    Conflict {
        /// The weights file, as displayed.
        path: String,
        /// The model variable both tensors map to.
        variable: String,
        /// The checkpoint name matched to the variable first.
        first: String,
        /// The checkpoint name that also matched it.
        second: String,
    },
    /// A checkpoint tensor's shape differs from that of the variable it gives.
    #[error("checkpoint {path}: tensor `{name}` has shape {actual:?}, the model expects {expected:?}")]
    Shape {
        /// The weights file, as displayed.
        path: String,
        /// The model variable (its name in the model, not the checkpoint's).
        name: String,
        /// The variable's shape.
        expected: Vec<i64>,
        /// The checkpoint tensor's shape.
        actual: Vec<i64>,
    },
}
