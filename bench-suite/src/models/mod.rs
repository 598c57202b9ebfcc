//! Model families behind one trait, one file per family (BERT and RoBERTa share one, as HF's
//! RoBERTa reuses BERT's layers). A family says everything the trainer and the subspace need to
//! know about its parameters, by their HF names, so no other module guesses from a name: the layer
//! group of each parameter (SAID's per-layer scales), which ones are exempt from weight decay, and
//! the layout (names and shapes) of its classifier, from which its parameter count follows.
//!
//! - [`bert`]: BERT and RoBERTa (`BertModel`/`RobertaModel` and their classification and MLM
//!   heads), with the HF `config.json` they read.
//! - [`activation`]: HF's activation names as an enum.
//!
//! Models do no IO: checkpoints are read in `checkpoint`, files in `datasets`.

pub mod activation;
pub mod bert;

use serde::Deserialize;
use subspace::LayerGroup;
use tch::Tensor;

pub use activation::HiddenAct;
pub use bert::{Config, ConfigError, Encoder, EncoderOutput, MaskedLm, SequenceClassifier};

/// A sequence classifier of any family: what the trainer, the subspace and the runner need.
pub trait Classifier {
    /// Logits `[batch, n_labels]` (f32, or the autocast kind) from `input_ids`, `attention_mask`
    /// (1 = token, 0 = padding) and `token_type_ids`, each `[batch, seq]` i64.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor;

    /// The family (HF `model_type`).
    fn model_type(&self) -> ModelType;

    /// The layer group of the parameter named `name` (its HF name).
    fn layer_group(&self, name: &str) -> LayerGroup {
        self.model_type().layer_group(name)
    }

    /// Whether the parameter named `name` is exempt from weight decay.
    fn no_decay(&self, name: &str) -> bool {
        self.model_type().no_decay(name)
    }

    /// The number of parameters (every trainable tensor, head included).
    fn parameter_count(&self) -> usize;
}

/// The number of parameters of a layout (`(name, shape)` of every tensor).
pub fn parameter_count(layout: &[(String, Vec<i64>)]) -> usize {
    layout.iter().map(|(_, shape)| shape.iter().product::<i64>() as usize).sum()
}

/// The families the suite implements, as HF's `model_type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Bert,
    Roberta,
}

impl ModelType {
    /// The prefix of the encoder's tensors in HF's task models.
    pub fn prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta => "roberta",
        }
    }

    /// The family's name as HF spells `model_type`.
    pub fn name(self) -> &'static str {
        self.prefix()
    }

    /// The layer group of a parameter of this family by its HF name, for checks made before a
    /// model is built (a spec's scale count `m`); a built model answers the same.
    pub fn layer_group(self, name: &str) -> LayerGroup {
        match self {
            ModelType::Bert | ModelType::Roberta => bert::layer_group(self.prefix(), name),
        }
    }

    /// Whether the parameter named `name` is exempt from weight decay in this family.
    pub fn no_decay(self, name: &str) -> bool {
        match self {
            ModelType::Bert | ModelType::Roberta => bert::no_decay(name),
        }
    }
}
