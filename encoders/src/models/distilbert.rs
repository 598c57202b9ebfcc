//! DistilBERT in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_distilbert.py`),
//! with its sequence-classification head.
//!
//! Its layers are BERT's in other names and with two differences of its own: no token type
//! embeddings, and no dropout on the attention output before `sa_layer_norm` (HF's
//! `TransformerBlock`). Its head reads the first token through `pre_classifier`, ReLU, dropout
//! (`seq_classif_dropout`) and `classifier`.
//!
//! [`super::Config`] holds DistilBERT's fields under BERT's names (`dim` is `hidden_size`,
//! `hidden_dim` is `intermediate_size`, ...). Variable paths spell HF names exactly
//! (`distilbert.transformer.layer.0.attention.q_lin.weight`); this file does no IO.

use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{Layout, MultiHead, layer_norm_of_width, linear};
use super::{Classifier, Config, HiddenAct, ModelType, padding_bias, parameter_count};

/// HF's fixed LayerNorm epsilon in every DistilBERT module.
const LAYER_NORM_EPS: f64 = 1e-12;

/// The layer group of a parameter by its HF name: `distilbert.embeddings.*`,
/// `distilbert.transformer.layer.<i>.*`, and everything else (`pre_classifier`, `classifier`,
/// the MLM head's `vocab_*`) as the head.
pub fn layer_group(name: &str) -> LayerGroup {
    let Some(rest) = name.strip_prefix("distilbert.") else {
        return LayerGroup::Head;
    };
    if rest.starts_with("embeddings.") {
        return LayerGroup::Embeddings;
    }
    match rest.strip_prefix("transformer.layer.").and_then(|rest| rest.split('.').next()?.parse().ok()) {
        Some(index) => LayerGroup::Layer(index),
        None => LayerGroup::Head,
    }
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in HF's parameter order,
/// without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let (dim, hidden_dim) = (config.hidden_size, config.intermediate_size);
    let mut layout = Layout::default();
    layout
        .embedding("distilbert.embeddings.word_embeddings", config.vocab_size, dim)
        .embedding("distilbert.embeddings.position_embeddings", config.max_position_embeddings, dim)
        .layer_norm("distilbert.embeddings.LayerNorm", dim);
    for layer_idx in 0..config.num_hidden_layers {
        let layer = format!("distilbert.transformer.layer.{layer_idx}");
        for module in ["q_lin", "k_lin", "v_lin", "out_lin"] {
            layout.linear(&format!("{layer}.attention.{module}"), dim, dim);
        }
        layout
            .layer_norm(&format!("{layer}.sa_layer_norm"), dim)
            .linear(&format!("{layer}.ffn.lin1"), dim, hidden_dim)
            .linear(&format!("{layer}.ffn.lin2"), hidden_dim, dim)
            .layer_norm(&format!("{layer}.output_layer_norm"), dim);
    }
    layout.linear("pre_classifier", dim, dim).linear("classifier", dim, n_labels);
    layout.finish()
}

// transformers 5.24.0: distilbert Embeddings
#[derive(Debug)]
struct Embeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, config: &Config) -> Embeddings {
        let embedding =
            |name: &str, count: i64| nn::embedding(&p / name, count, config.hidden_size, Default::default());
        Embeddings {
            word_embeddings: embedding("word_embeddings", config.vocab_size),
            position_embeddings: embedding("position_embeddings", config.max_position_embeddings),
            layer_norm: layer_norm_of_width(&p / "LayerNorm", config.hidden_size, LAYER_NORM_EPS),
            dropout: config.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, input_ids: &Tensor, train: bool) -> Tensor {
        let seq_len = input_ids.size()[1];
        let position_ids = Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let embeddings = self.word_embeddings.forward(input_ids) + self.position_embeddings.forward(&position_ids);
        self.layer_norm.forward(&embeddings).dropout(self.dropout, train)
    }
}

// transformers 5.24.0: DistilBertSelfAttention, FFN, TransformerBlock
#[derive(Debug)]
struct Block {
    heads: MultiHead,
    out_lin: nn::Linear,
    sa_layer_norm: nn::LayerNorm,
    lin1: nn::Linear,
    lin2: nn::Linear,
    output_layer_norm: nn::LayerNorm,
    activation: HiddenAct,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, config: &Config) -> Block {
        let (dim, hidden_dim) = (config.hidden_size, config.intermediate_size);
        let attention = &p / "attention";
        let projections = (
            linear(&attention / "q_lin", dim, dim),
            linear(&attention / "k_lin", dim, dim),
            linear(&attention / "v_lin", dim, dim),
        );
        let n_heads = config.num_attention_heads;
        Block {
            heads: MultiHead::new(projections, n_heads, dim / n_heads, config.attention_probs_dropout_prob),
            out_lin: linear(&attention / "out_lin", dim, dim),
            sa_layer_norm: layer_norm_of_width(&p / "sa_layer_norm", dim, LAYER_NORM_EPS),
            lin1: linear(&p / "ffn" / "lin1", dim, hidden_dim),
            lin2: linear(&p / "ffn" / "lin2", hidden_dim, dim),
            output_layer_norm: layer_norm_of_width(&p / "output_layer_norm", dim, LAYER_NORM_EPS),
            activation: config.hidden_act,
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `mask_bias`: `[batch, 1, 1, seq]`, 0 where attended and the dtype's minimum where masked.
    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let context = self.heads.forward_t(hidden, hidden, mask_bias, train);
        // No dropout on the attention output (HF's DistilBertSelfAttention ends at out_lin).
        let attended = self.sa_layer_norm.forward(&(self.out_lin.forward(&context) + hidden));
        let intermediate = self.activation.forward(&self.lin1.forward(&attended));
        let output = self.lin2.forward(&intermediate).dropout(self.dropout, train);
        self.output_layer_norm.forward(&(output + attended))
    }
}

/// A DistilBERT classifier (transformers 5.24.0 `DistilBertForSequenceClassification`): the
/// encoder under `distilbert`, then `pre_classifier`, ReLU, dropout and `classifier` on the first
/// token.
#[derive(Debug)]
pub struct SequenceClassifier {
    embeddings: Embeddings,
    blocks: Vec<Block>,
    pre_classifier: nn::Linear,
    classifier: nn::Linear,
    dropout: f64,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them.
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let encoder = &p / "distilbert";
        let blocks = (0..config.num_hidden_layers)
            .map(|idx| Block::new(&encoder / "transformer" / "layer" / idx, config))
            .collect();
        SequenceClassifier {
            embeddings: Embeddings::new(&encoder / "embeddings", config),
            blocks,
            pre_classifier: linear(&p / "pre_classifier", config.hidden_size, config.hidden_size),
            classifier: linear(&p / "classifier", config.hidden_size, n_labels),
            dropout: config.head_dropout(),
            parameters: parameter_count(&classifier_layout(config, n_labels)),
        }
    }

    /// The encoder's last hidden state, `[batch, seq, dim]` (DistilBERT has no token types).
    pub fn last_hidden_state(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let mut hidden = self.embeddings.forward_t(input_ids, train);
        let mask_bias = padding_bias(attention_mask, hidden.kind());
        for block in &self.blocks {
            hidden = block.forward_t(&hidden, &mask_bias, train);
        }
        hidden
    }

    /// Logits `[batch, n_labels]`.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let first = self.last_hidden_state(input_ids, attention_mask, train).select(1, 0);
        let pooled = self.pre_classifier.forward(&first).relu().dropout(self.dropout, train);
        self.classifier.forward(&pooled)
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, _token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, train)
    }

    fn model_type(&self) -> ModelType {
        ModelType::DistilBert
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}
