//! ALBERT in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_albert.py`), with
//! its sequence-classification head.
//!
//! ALBERT factorises the embeddings (`embedding_size`, mapped to `hidden_size` by
//! `encoder.embedding_hidden_mapping_in`) and shares its layers across depth:
//! `num_hidden_groups` groups of `inner_group_num` layers each, and pass `i` of the
//! `num_hidden_layers` runs group `int(i / (num_hidden_layers / num_hidden_groups))` (HF's
//! `AlbertTransformer`). A shared weight is one variable, so the parameter count D counts it once,
//! and SAID's per-layer scales follow the stored weights: one scale per shared group (see
//! [`layer_group`]), not one per pass. Its layer has no dropout after the feed-forward output, and
//! its classifier reads the pooler (`albert.pooler`, tanh) through dropout
//! (`classifier_dropout_prob`) and `classifier`.
//!
//! Variable paths spell HF names exactly
//! (`albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight`); no IO here.

use subspace::LayerGroup;
use tch::Tensor;
use tch::nn::{self, Module};

use super::bert::{Embeddings, embeddings_layout, self_attention_heads};
use super::layers::{Layout, MultiHead, layer_norm_of_width, linear};
use super::{Classifier, Config, HiddenAct, ModelType, padding_bias, parameter_count};

/// The layer group of a parameter by its HF name: `albert.embeddings.*` and the embedding
/// mapping `albert.encoder.embedding_hidden_mapping_in.*` as the embeddings; the shared layers of
/// group `g` (`albert.encoder.albert_layer_groups.<g>.*`, all its inner layers) as `Layer(g)`, one
/// group however many passes run it; the pooler and `classifier` as the head.
pub fn layer_group(name: &str) -> LayerGroup {
    let Some(rest) = name.strip_prefix("albert.") else {
        return LayerGroup::Head;
    };
    if rest.starts_with("embeddings.") || rest.starts_with("encoder.embedding_hidden_mapping_in.") {
        return LayerGroup::Embeddings;
    }
    match rest.strip_prefix("encoder.albert_layer_groups.").and_then(|rest| rest.split('.').next()?.parse().ok()) {
        Some(group) => LayerGroup::Layer(group),
        None => LayerGroup::Head,
    }
}

/// The shared group that pass `pass` (0-based, of `num_hidden_layers`) runs, as HF computes it
/// (`int(i / (num_hidden_layers / num_hidden_groups))`, in floating point).
pub fn group_of_pass(pass: i64, config: &Config) -> usize {
    (pass as f64 / (config.num_hidden_layers as f64 / config.num_hidden_groups as f64)) as usize
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in HF's parameter order,
/// without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let (hidden, embedding, intermediate) = (config.hidden_size, config.embedding_size(), config.intermediate_size);
    let mut layout = Layout::default();
    embeddings_layout(
        &mut layout,
        "albert",
        config.vocab_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        embedding,
    );
    layout.linear("albert.encoder.embedding_hidden_mapping_in", embedding, hidden);
    for group in 0..config.num_hidden_groups {
        for inner in 0..config.inner_group_num {
            let layer = format!("albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}");
            layout.layer_norm(&format!("{layer}.full_layer_layer_norm"), hidden);
            for module in ["query", "key", "value", "dense"] {
                layout.linear(&format!("{layer}.attention.{module}"), hidden, hidden);
            }
            layout
                .layer_norm(&format!("{layer}.attention.LayerNorm"), hidden)
                .linear(&format!("{layer}.ffn"), hidden, intermediate)
                .linear(&format!("{layer}.ffn_output"), intermediate, hidden);
        }
    }
    layout.linear("albert.pooler", hidden, hidden).linear("classifier", hidden, n_labels);
    layout.finish()
}

// transformers 5.24.0: AlbertAttention + AlbertLayer
#[derive(Debug)]
struct Layer {
    heads: MultiHead,
    dense: nn::Linear,
    attention_layer_norm: nn::LayerNorm,
    ffn: nn::Linear,
    ffn_output: nn::Linear,
    full_layer_layer_norm: nn::LayerNorm,
    activation: HiddenAct,
    output_dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, config: &Config) -> Layer {
        let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
        let attention = &p / "attention";
        Layer {
            heads: self_attention_heads(&attention, config),
            dense: linear(&attention / "dense", hidden, hidden),
            attention_layer_norm: layer_norm_of_width(&attention / "LayerNorm", hidden, eps),
            ffn: linear(&p / "ffn", hidden, config.intermediate_size),
            ffn_output: linear(&p / "ffn_output", config.intermediate_size, hidden),
            full_layer_layer_norm: layer_norm_of_width(&p / "full_layer_layer_norm", hidden, eps),
            activation: config.hidden_act,
            output_dropout: config.hidden_dropout_prob,
        }
    }

    /// `mask_bias`: `[batch, 1, 1, seq]`, 0 where attended and the dtype's minimum where masked.
    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let context = self.heads.forward_t(hidden, hidden, mask_bias, train);
        let projected = self.dense.forward(&context).dropout(self.output_dropout, train);
        let attended = self.attention_layer_norm.forward(&(hidden + projected));
        // HF's AlbertLayer: no dropout after ffn_output.
        let output = self.ffn_output.forward(&self.activation.forward(&self.ffn.forward(&attended)));
        self.full_layer_layer_norm.forward(&(output + attended))
    }
}

/// An ALBERT classifier (transformers 5.24.0 `AlbertForSequenceClassification`).
#[derive(Debug)]
pub struct SequenceClassifier {
    embeddings: Embeddings,
    embedding_hidden_mapping_in: nn::Linear,
    /// `[group][inner]`: the stored, shared layers.
    groups: Vec<Vec<Layer>>,
    /// The group each of the `num_hidden_layers` passes runs.
    schedule: Vec<usize>,
    pooler: nn::Linear,
    classifier: nn::Linear,
    dropout: f64,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them.
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let albert = &p / "albert";
        let encoder = &albert / "encoder";
        let groups = (0..config.num_hidden_groups)
            .map(|group| {
                let group_path = &encoder / "albert_layer_groups" / group / "albert_layers";
                (0..config.inner_group_num).map(|inner| Layer::new(&group_path / inner, config)).collect()
            })
            .collect();
        SequenceClassifier {
            embeddings: Embeddings::new(&albert / "embeddings", config),
            embedding_hidden_mapping_in: linear(
                &encoder / "embedding_hidden_mapping_in",
                config.embedding_size(),
                config.hidden_size,
            ),
            groups,
            schedule: (0..config.num_hidden_layers).map(|pass| group_of_pass(pass, config)).collect(),
            pooler: linear(&albert / "pooler", config.hidden_size, config.hidden_size),
            classifier: linear(&p / "classifier", config.hidden_size, n_labels),
            dropout: config.head_dropout(),
            parameters: parameter_count(&classifier_layout(config, n_labels)),
        }
    }

    /// The encoder's last hidden state, `[batch, seq, hidden]`.
    pub fn last_hidden_state(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let embedded = self.embeddings.forward_t(input_ids, token_type_ids, train);
        let mut hidden = self.embedding_hidden_mapping_in.forward(&embedded);
        let mask_bias = padding_bias(attention_mask, hidden.kind());
        for &group in &self.schedule {
            for layer in &self.groups[group] {
                hidden = layer.forward_t(&hidden, &mask_bias, train);
            }
        }
        hidden
    }

    /// Logits `[batch, n_labels]`: the pooler (tanh of `albert.pooler` on the first token),
    /// dropout, `classifier`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self.last_hidden_state(input_ids, attention_mask, token_type_ids, train);
        let pooled = self.pooler.forward(&hidden.select(1, 0)).tanh();
        self.classifier.forward(&pooled.dropout(self.dropout, train))
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, token_type_ids, train)
    }

    fn model_type(&self) -> ModelType {
        ModelType::Albert
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}
