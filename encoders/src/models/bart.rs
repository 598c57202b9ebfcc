//! BART in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_bart.py`), with its
//! sequence-classification head (`BartForSequenceClassification`).
//!
//! An encoder-decoder: the encoder reads the input; the decoder reads the same input shifted one
//! token right (`decoder_start_token_id` first, HF's `shift_tokens_right`) under a causal mask
//! and no padding mask, attending to the encoder through cross-attention. The head reads the
//! decoder's state at each row's last end-of-sequence token (`eos_token_id`): dropout, dense,
//! tanh, dropout, out_proj (`classification_head`). The token embeddings are one variable,
//! `model.shared`, which HF ties to `model.{encoder,decoder}.embed_tokens`; positions are learned
//! with BART's offset of 2 rows. Layers are post-LayerNorm (epsilon 1e-5).
//!
//! [`super::Config`] holds the encoder's sizes under BERT's names (`d_model` is `hidden_size`,
//! `encoder_layers` is `num_hidden_layers`, ...) and the decoder's as `decoder_*`. SAID's layer
//! groups number the decoder's layers after the encoder's ([`layer_group`]). No IO here.

use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{EosHead, Layout, MultiHead, causal_bias, layer_norm_of_width, linear, shift_right};
use super::{Classifier, Config, HiddenAct, ModelType, padding_bias, parameter_count};

/// nn.LayerNorm's default epsilon, which every BART norm uses.
const LAYER_NORM_EPS: f64 = 1e-5;
/// BART's learned positions start at row 2 (`BartLearnedPositionalEmbedding.offset`).
const POSITION_OFFSET: i64 = 2;

/// The layer group of a parameter by its HF name, for a model with `encoder_layers` encoder
/// layers: the shared token embeddings and each side's positions and `layernorm_embedding` as the
/// embeddings, `model.encoder.layers.<i>` as `Layer(i)`, `model.decoder.layers.<i>` as
/// `Layer(encoder_layers + i)` (0-based over the whole network), `classification_head` as the
/// head.
pub fn layer_group(name: &str, encoder_layers: usize) -> LayerGroup {
    let Some(rest) = name.strip_prefix("model.") else {
        return LayerGroup::Head;
    };
    if rest.starts_with("shared.") {
        return LayerGroup::Embeddings;
    }
    for (side, offset) in [("encoder.", 0), ("decoder.", encoder_layers)] {
        let Some(rest) = rest.strip_prefix(side) else { continue };
        if rest.starts_with("embed_positions.")
            || rest.starts_with("embed_tokens.")
            || rest.starts_with("layernorm_embedding.")
        {
            return LayerGroup::Embeddings;
        }
        if let Some(index) = rest.strip_prefix("layers.").and_then(|rest| rest.split('.').next()?.parse::<usize>().ok())
        {
            return LayerGroup::Layer(offset + index);
        }
    }
    LayerGroup::Head
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in HF's parameter order
/// (the tied `embed_tokens` once, as `model.shared`), without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let d = config.hidden_size;
    let positions = config.max_position_embeddings + POSITION_OFFSET;
    let mut layout = Layout::default();
    let attention = |layout: &mut Layout, prefix: &str| {
        for projection in ["k_proj", "v_proj", "q_proj", "out_proj"] {
            layout.linear(&format!("{prefix}.{projection}"), d, d);
        }
    };
    let feed_forward = |layout: &mut Layout, layer: &str, ffn: i64| {
        layout.linear(&format!("{layer}.fc1"), d, ffn).linear(&format!("{layer}.fc2"), ffn, d);
    };
    layout.embedding("model.shared", config.vocab_size, d).embedding("model.encoder.embed_positions", positions, d);
    for index in 0..config.num_hidden_layers {
        let layer = format!("model.encoder.layers.{index}");
        attention(&mut layout, &format!("{layer}.self_attn"));
        layout.layer_norm(&format!("{layer}.self_attn_layer_norm"), d);
        feed_forward(&mut layout, &layer, config.intermediate_size);
        layout.layer_norm(&format!("{layer}.final_layer_norm"), d);
    }
    layout.layer_norm("model.encoder.layernorm_embedding", d).embedding("model.decoder.embed_positions", positions, d);
    for index in 0..config.decoder_layers {
        let layer = format!("model.decoder.layers.{index}");
        attention(&mut layout, &format!("{layer}.self_attn"));
        layout.layer_norm(&format!("{layer}.self_attn_layer_norm"), d);
        attention(&mut layout, &format!("{layer}.encoder_attn"));
        layout.layer_norm(&format!("{layer}.encoder_attn_layer_norm"), d);
        feed_forward(&mut layout, &layer, config.decoder_ffn_dim);
        layout.layer_norm(&format!("{layer}.final_layer_norm"), d);
    }
    layout.layer_norm("model.decoder.layernorm_embedding", d).linear("classification_head.dense", d, d).linear(
        "classification_head.out_proj",
        d,
        n_labels,
    );
    layout.finish()
}

// transformers 5.24.0: BartAttention
#[derive(Debug)]
struct Attention {
    heads: MultiHead,
    out_proj: nn::Linear,
}

impl Attention {
    fn new(p: nn::Path, d: i64, n_heads: i64, dropout: f64) -> Attention {
        // HF's registration order: k, v, q.
        let (key, value) = (linear(&p / "k_proj", d, d), linear(&p / "v_proj", d, d));
        let query = linear(&p / "q_proj", d, d);
        Attention {
            heads: MultiHead::new((query, key, value), n_heads, d / n_heads, dropout),
            out_proj: linear(&p / "out_proj", d, d),
        }
    }

    /// Queries from `hidden` `[batch, q, d]`, keys and values from `memory` `[batch, k, d]`;
    /// `bias` broadcasts to `[batch, heads, q, k]`.
    fn forward_t(&self, hidden: &Tensor, memory: &Tensor, bias: &Tensor, train: bool) -> Tensor {
        self.out_proj.forward(&self.heads.forward_t(hidden, memory, bias, train))
    }
}

/// The feed-forward block of a layer: fc1, activation, dropout, fc2.
#[derive(Debug)]
struct FeedForward {
    fc1: nn::Linear,
    fc2: nn::Linear,
    activation: HiddenAct,
    activation_dropout: f64,
}

impl FeedForward {
    fn new(p: &nn::Path, config: &Config, d: i64, ffn: i64) -> FeedForward {
        FeedForward {
            fc1: linear(p / "fc1", d, ffn),
            fc2: linear(p / "fc2", ffn, d),
            activation: config.hidden_act,
            activation_dropout: config.activation_dropout,
        }
    }

    fn forward_t(&self, hidden: &Tensor, train: bool) -> Tensor {
        let inner = self.activation.forward(&self.fc1.forward(hidden)).dropout(self.activation_dropout, train);
        self.fc2.forward(&inner)
    }
}

// transformers 5.24.0: BartEncoderLayer / BartDecoderLayer
#[derive(Debug)]
struct Layer {
    self_attn: Attention,
    self_attn_layer_norm: nn::LayerNorm,
    /// The decoder's cross-attention and its norm.
    encoder_attn: Option<(Attention, nn::LayerNorm)>,
    feed_forward: FeedForward,
    final_layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, config: &Config, decoder: bool) -> Layer {
        let d = config.hidden_size;
        let (heads, ffn) = if decoder {
            (config.decoder_attention_heads, config.decoder_ffn_dim)
        } else {
            (config.num_attention_heads, config.intermediate_size)
        };
        let attention_dropout = config.attention_probs_dropout_prob;
        Layer {
            self_attn: Attention::new(&p / "self_attn", d, heads, attention_dropout),
            self_attn_layer_norm: layer_norm_of_width(&p / "self_attn_layer_norm", d, LAYER_NORM_EPS),
            encoder_attn: decoder.then(|| {
                (
                    Attention::new(&p / "encoder_attn", d, heads, attention_dropout),
                    layer_norm_of_width(&p / "encoder_attn_layer_norm", d, LAYER_NORM_EPS),
                )
            }),
            feed_forward: FeedForward::new(&p, config, d, ffn),
            final_layer_norm: layer_norm_of_width(&p / "final_layer_norm", d, LAYER_NORM_EPS),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `encoder`: the encoder's output and its padding bias, for a decoder layer.
    fn forward_t(
        &self,
        hidden: &Tensor,
        self_bias: &Tensor,
        encoder: Option<(&Tensor, &Tensor)>,
        train: bool,
    ) -> Tensor {
        let attended = self.self_attn.forward_t(hidden, hidden, self_bias, train).dropout(self.dropout, train);
        let mut hidden = self.self_attn_layer_norm.forward(&(hidden + attended));
        if let (Some((cross, norm)), Some((memory, memory_bias))) = (&self.encoder_attn, encoder) {
            let attended = cross.forward_t(&hidden, memory, memory_bias, train).dropout(self.dropout, train);
            hidden = norm.forward(&(hidden + attended));
        }
        let output = self.feed_forward.forward_t(&hidden, train).dropout(self.dropout, train);
        self.final_layer_norm.forward(&(hidden + output))
    }
}

/// One side (encoder or decoder): positions, `layernorm_embedding`, layers.
#[derive(Debug)]
struct Stack {
    embed_positions: nn::Embedding,
    layernorm_embedding: nn::LayerNorm,
    layers: Vec<Layer>,
}

impl Stack {
    fn new(p: nn::Path, config: &Config, decoder: bool) -> Stack {
        let count = if decoder { config.decoder_layers } else { config.num_hidden_layers };
        Stack {
            embed_positions: nn::embedding(
                &p / "embed_positions",
                config.max_position_embeddings + POSITION_OFFSET,
                config.hidden_size,
                Default::default(),
            ),
            layernorm_embedding: layer_norm_of_width(&p / "layernorm_embedding", config.hidden_size, LAYER_NORM_EPS),
            layers: (0..count).map(|index| Layer::new(&p / "layers" / index, config, decoder)).collect(),
        }
    }

    fn embed(&self, tokens: &Tensor, dropout: f64, train: bool) -> Tensor {
        let seq_len = tokens.size()[1];
        let positions = Tensor::arange(seq_len, (Kind::Int64, tokens.device())).unsqueeze(0) + POSITION_OFFSET;
        self.layernorm_embedding.forward(&(tokens + self.embed_positions.forward(&positions))).dropout(dropout, train)
    }
}

/// A BART classifier (transformers 5.24.0 `BartForSequenceClassification`).
#[derive(Debug)]
pub struct SequenceClassifier {
    shared: nn::Embedding,
    embed_scale: f64,
    encoder: Stack,
    decoder: Stack,
    head: EosHead,
    dropout: f64,
    pad_token_id: i64,
    decoder_start_token_id: i64,
    encoder_layers: usize,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them (`model.*`,
    /// `classification_head.*`).
    ///
    /// # Panics
    /// On a config without `eos_token_id` or `decoder_start_token_id`, which
    /// [`Config::from_json`] refuses for BART.
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let model = &p / "model";
        let d = config.hidden_size;
        SequenceClassifier {
            shared: nn::embedding(&model / "shared", config.vocab_size, d, Default::default()),
            embed_scale: if config.scale_embedding { (d as f64).sqrt() } else { 1.0 },
            encoder: Stack::new(&model / "encoder", config, false),
            decoder: Stack::new(&model / "decoder", config, true),
            head: EosHead::new(
                &p / "classification_head",
                d,
                n_labels,
                config.head_dropout(),
                config.eos_token_id.expect("Config::from_json requires eos_token_id for BART"),
            ),
            dropout: config.hidden_dropout_prob,
            pad_token_id: config.pad_token_id,
            decoder_start_token_id: config
                .decoder_start_token_id
                .expect("Config::from_json requires decoder_start_token_id for BART"),
            encoder_layers: config.num_hidden_layers as usize,
            parameters: parameter_count(&classifier_layout(config, n_labels)),
        }
    }

    /// The decoder's last hidden state, `[batch, seq, d]`.
    pub fn last_hidden_state(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let tokens = self.shared.forward(input_ids) * self.embed_scale;
        let mut memory = self.encoder.embed(&tokens, self.dropout, train);
        let kind = memory.kind();
        let memory_bias = padding_bias(attention_mask, kind);
        for layer in &self.encoder.layers {
            memory = layer.forward_t(&memory, &memory_bias, None, train);
        }
        let decoder_input = shift_right(input_ids, self.decoder_start_token_id, self.pad_token_id);
        let decoder_tokens = self.shared.forward(&decoder_input) * self.embed_scale;
        let mut hidden = self.decoder.embed(&decoder_tokens, self.dropout, train);
        let causal = causal_bias(input_ids.size()[1], hidden.kind(), hidden.device());
        for layer in &self.decoder.layers {
            hidden = layer.forward_t(&hidden, &causal, Some((&memory, &memory_bias)), train);
        }
        hidden
    }

    /// Logits `[batch, n_labels]` from the decoder's state at each row's last `eos_token_id`.
    ///
    /// # Panics
    /// When a row has no end-of-sequence token (a tokenizer without BART's template).
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(&self.last_hidden_state(input_ids, attention_mask, train), input_ids, train)
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, _token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, train)
    }

    fn model_type(&self) -> ModelType {
        ModelType::Bart
    }

    fn layer_group(&self, name: &str) -> LayerGroup {
        layer_group(name, self.encoder_layers)
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}
