//! T5 in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_t5.py`), classified as
//! HF's `T5ForSequenceClassification` does.
//!
//! How T5 classifies here: with HF's encoder-decoder head, not text-to-text label words. The
//! encoder reads the input; the decoder reads it shifted one token right
//! (`decoder_start_token_id` first); `classification_head` (dropout, dense, tanh, dropout,
//! out_proj) reads the decoder's state at each row's last `</s>`, as BART's does. Results record
//! the family (`t5`), and this head is the only one the suite builds for it.
//!
//! T5's layers are pre-norm with RMS norms (`T5LayerNorm`: no mean, no bias, epsilon 1e-6), have
//! no biases, do not scale attention scores, and add a learned relative position bias (bucketed by
//! distance; bidirectional in the encoder, causal in the decoder) computed by each stack's first
//! block and shared by the rest; cross-attention has none. The feed-forward is `wi`, activation,
//! `wo`, or gated (`wi_0` through the activation times `wi_1`, then `wo`, T5 v1.1). Token
//! embeddings are one variable, `transformer.shared`, unscaled.

use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{EosHead, Layout, MultiHead, causal_bias, linear_no_bias, shift_right};
use super::{Classifier, Config, HiddenAct, ModelType, padding_bias, parameter_count};

/// The layer group of a parameter by its HF name, for `encoder_layers` and `decoder_layers`
/// blocks: the shared token embeddings as the embeddings; `transformer.encoder.block.<i>` as
/// `Layer(i)` and `transformer.decoder.block.<i>` as `Layer(encoder_layers + i)` (0-based over the
/// whole network; the first block's relative position bias with its block); each stack's
/// `final_layer_norm` with its last block; `classification_head` as the head.
pub fn layer_group(name: &str, encoder_layers: usize, decoder_layers: usize) -> LayerGroup {
    let Some(rest) = name.strip_prefix("transformer.") else {
        return LayerGroup::Head;
    };
    if rest.starts_with("shared.") {
        return LayerGroup::Embeddings;
    }
    for (side, offset, count) in [("encoder.", 0, encoder_layers), ("decoder.", encoder_layers, decoder_layers)] {
        let Some(rest) = rest.strip_prefix(side) else { continue };
        if rest.starts_with("embed_tokens.") {
            return LayerGroup::Embeddings;
        }
        if rest.starts_with("final_layer_norm.") {
            return LayerGroup::Layer(offset + count.saturating_sub(1));
        }
        if let Some(index) = rest.strip_prefix("block.").and_then(|rest| rest.split('.').next()?.parse::<usize>().ok())
        {
            return LayerGroup::Layer(offset + index);
        }
    }
    LayerGroup::Head
}

/// The width of the attention's projections: `num_heads * d_kv`.
fn inner_dim(config: &Config) -> i64 {
    config.num_attention_heads * config.d_kv.unwrap_or(config.hidden_size / config.num_attention_heads)
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in HF's parameter order
/// (the tied `embed_tokens` once, as `transformer.shared`), without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let (d, inner, ff) = (config.hidden_size, inner_dim(config), config.intermediate_size);
    let mut layout = Layout::default();
    layout.embedding("transformer.shared", config.vocab_size, d);
    let attention = |layout: &mut Layout, prefix: &str, relative: bool| {
        for projection in ["q", "k", "v"] {
            layout.linear_no_bias(&format!("{prefix}.{projection}"), d, inner);
        }
        layout.linear_no_bias(&format!("{prefix}.o"), inner, d);
        if relative {
            layout.embedding(
                &format!("{prefix}.relative_attention_bias"),
                config.relative_attention_num_buckets,
                config.num_attention_heads,
            );
        }
    };
    // T5LayerNorm: a weight, no bias.
    let norm = |layout: &mut Layout, prefix: &str| {
        layout.tensor(format!("{prefix}.weight"), [d]);
    };
    let feed_forward = |layout: &mut Layout, prefix: &str| {
        let inputs: &[&str] = if config.gated_act { &["wi_0", "wi_1"] } else { &["wi"] };
        for input in inputs {
            layout.linear_no_bias(&format!("{prefix}.DenseReluDense.{input}"), d, ff);
        }
        layout.linear_no_bias(&format!("{prefix}.DenseReluDense.wo"), ff, d);
        norm(layout, &format!("{prefix}.layer_norm"));
    };
    for (side, count) in [("encoder", config.num_hidden_layers), ("decoder", config.decoder_layers)] {
        for index in 0..count {
            let block = format!("transformer.{side}.block.{index}");
            attention(&mut layout, &format!("{block}.layer.0.SelfAttention"), index == 0);
            norm(&mut layout, &format!("{block}.layer.0.layer_norm"));
            if side == "decoder" {
                attention(&mut layout, &format!("{block}.layer.1.EncDecAttention"), false);
                norm(&mut layout, &format!("{block}.layer.1.layer_norm"));
                feed_forward(&mut layout, &format!("{block}.layer.2"));
            } else {
                feed_forward(&mut layout, &format!("{block}.layer.1"));
            }
        }
        norm(&mut layout, &format!("transformer.{side}.final_layer_norm"));
    }
    layout.linear("classification_head.dense", d, d).linear("classification_head.out_proj", d, n_labels);
    layout.finish()
}

/// `T5LayerNorm`: `x / sqrt(mean(x^2) + eps) * weight`, the statistic in f32.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(p: nn::Path, width: i64, eps: f64) -> RmsNorm {
        RmsNorm { weight: p.ones("weight", &[width]), eps }
    }

    fn forward(&self, hidden: &Tensor) -> Tensor {
        let variance = hidden.to_kind(Kind::Float).pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        // As HF: the product stays in f32 unless the weight is half precision (never here).
        &self.weight * (hidden * (variance + self.eps).rsqrt())
    }
}

/// HF's `T5Attention._relative_position_bucket`: the bucket of each relative position
/// (`memory - query`), with half the buckets for each direction when `bidirectional`, exact
/// buckets below half of each half, and logarithmic ones up to `max_distance`.
fn relative_position_bucket(relative: &Tensor, bidirectional: bool, num_buckets: i64, max_distance: i64) -> Tensor {
    let mut buckets = relative.zeros_like();
    let mut num_buckets = num_buckets;
    let distance = if bidirectional {
        num_buckets /= 2;
        buckets += relative.gt(0).to_kind(Kind::Int64) * num_buckets;
        relative.abs()
    } else {
        relative.clamp_max(0).neg()
    };
    let max_exact = num_buckets / 2;
    let is_small = distance.lt(max_exact);
    // As HF: the ratio and its logarithm in f32, scaled, truncated toward zero.
    let logarithmic = (distance.to_kind(Kind::Float) / max_exact as f64).log()
        / (max_distance as f64 / max_exact as f64).ln()
        * (num_buckets - max_exact) as f64;
    let large = (logarithmic.to_kind(Kind::Int64) + max_exact).clamp_max(num_buckets - 1);
    buckets + distance.where_self(&is_small, &large)
}

// transformers 5.24.0: T5Attention
#[derive(Debug)]
struct Attention {
    heads: MultiHead,
    o: nn::Linear,
    /// `[buckets, heads]`, in each stack's first self-attention.
    relative_attention_bias: Option<nn::Embedding>,
}

impl Attention {
    fn new(p: nn::Path, config: &Config, relative: bool) -> Attention {
        let (d, inner) = (config.hidden_size, inner_dim(config));
        let projections = (
            linear_no_bias(&p / "q", d, inner),
            linear_no_bias(&p / "k", d, inner),
            linear_no_bias(&p / "v", d, inner),
        );
        let n_heads = config.num_attention_heads;
        Attention {
            heads: MultiHead::new(projections, n_heads, inner / n_heads, config.attention_probs_dropout_prob)
                .unscaled(),
            o: linear_no_bias(&p / "o", inner, d),
            relative_attention_bias: relative.then(|| {
                nn::embedding(
                    &p / "relative_attention_bias",
                    config.relative_attention_num_buckets,
                    config.num_attention_heads,
                    Default::default(),
                )
            }),
        }
    }

    /// HF's `compute_bias`: `[1, heads, q, k]`.
    fn position_bias(
        &self,
        q_len: i64,
        k_len: i64,
        bidirectional: bool,
        config: (i64, i64),
        device: tch::Device,
    ) -> Tensor {
        let embedding = self.relative_attention_bias.as_ref().expect("the first block has the relative bias");
        let query = Tensor::arange(q_len, (Kind::Int64, device)).unsqueeze(1);
        let memory = Tensor::arange(k_len, (Kind::Int64, device)).unsqueeze(0);
        let buckets = relative_position_bucket(&(memory - query), bidirectional, config.0, config.1);
        embedding.forward(&buckets).permute([2, 0, 1]).unsqueeze(0)
    }

    /// No score scaling (T5's); `position_bias` and `mask` broadcast to `[batch, heads, q, k]`.
    fn forward_t(
        &self,
        hidden: &Tensor,
        memory: &Tensor,
        position_bias: &Tensor,
        mask: &Tensor,
        train: bool,
    ) -> Tensor {
        // HF adds the position bias and the mask first (`position_bias_masked`).
        self.o.forward(&self.heads.forward_t(hidden, memory, &(position_bias + mask), train))
    }
}

// transformers 5.24.0: T5DenseActDense / T5DenseGatedActDense
#[derive(Debug)]
struct FeedForward {
    wi: Vec<nn::Linear>,
    wo: nn::Linear,
    activation: HiddenAct,
    dropout: f64,
}

impl FeedForward {
    fn new(p: nn::Path, config: &Config) -> FeedForward {
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let inputs: &[&str] = if config.gated_act { &["wi_0", "wi_1"] } else { &["wi"] };
        FeedForward {
            wi: inputs.iter().map(|name| linear_no_bias(&p / *name, d, ff)).collect(),
            wo: linear_no_bias(&p / "wo", ff, d),
            activation: config.hidden_act,
            dropout: config.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, hidden: &Tensor, train: bool) -> Tensor {
        let activated = self.activation.forward(&self.wi[0].forward(hidden));
        let inner = match self.wi.get(1) {
            Some(linear) => activated * linear.forward(hidden),
            None => activated,
        };
        self.wo.forward(&inner.dropout(self.dropout, train))
    }
}

// transformers 5.24.0: T5Block (T5LayerSelfAttention, T5LayerCrossAttention, T5LayerFF)
#[derive(Debug)]
struct Block {
    self_attention: Attention,
    self_norm: RmsNorm,
    cross: Option<(Attention, RmsNorm)>,
    feed_forward: FeedForward,
    ff_norm: RmsNorm,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, config: &Config, decoder: bool, first: bool) -> Block {
        let (d, eps) = (config.hidden_size, config.layer_norm_eps);
        let layer = &p / "layer";
        let ff_index = if decoder { 2 } else { 1 };
        Block {
            self_attention: Attention::new(&layer / 0 / "SelfAttention", config, first),
            self_norm: RmsNorm::new(&layer / 0 / "layer_norm", d, eps),
            cross: decoder.then(|| {
                (
                    Attention::new(&layer / 1 / "EncDecAttention", config, false),
                    RmsNorm::new(&layer / 1 / "layer_norm", d, eps),
                )
            }),
            feed_forward: FeedForward::new(&layer / ff_index / "DenseReluDense", config),
            ff_norm: RmsNorm::new(&layer / ff_index / "layer_norm", d, eps),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `self_bias`: the relative position bias plus the self-attention mask; `encoder`: the
    /// encoder's output and its padding mask, for a decoder block.
    fn forward_t(
        &self,
        hidden: &Tensor,
        position_bias: &Tensor,
        mask: &Tensor,
        encoder: Option<(&Tensor, &Tensor)>,
        train: bool,
    ) -> Tensor {
        let normed = self.self_norm.forward(hidden);
        let attended = self.self_attention.forward_t(&normed, &normed, position_bias, mask, train);
        let mut hidden = hidden + attended.dropout(self.dropout, train);
        if let (Some((cross, norm)), Some((memory, memory_mask))) = (&self.cross, encoder) {
            let normed = norm.forward(&hidden);
            let zero = Tensor::zeros([1], (normed.kind(), normed.device()));
            let attended = cross.forward_t(&normed, memory, &zero, memory_mask, train);
            hidden = &hidden + attended.dropout(self.dropout, train);
        }
        let forwarded = self.feed_forward.forward_t(&self.ff_norm.forward(&hidden), train);
        hidden + forwarded.dropout(self.dropout, train)
    }
}

/// One stack: blocks and `final_layer_norm`.
#[derive(Debug)]
struct Stack {
    blocks: Vec<Block>,
    final_layer_norm: RmsNorm,
}

impl Stack {
    fn new(p: nn::Path, config: &Config, decoder: bool) -> Stack {
        let count = if decoder { config.decoder_layers } else { config.num_hidden_layers };
        Stack {
            blocks: (0..count).map(|index| Block::new(&p / "block" / index, config, decoder, index == 0)).collect(),
            final_layer_norm: RmsNorm::new(&p / "final_layer_norm", config.hidden_size, config.layer_norm_eps),
        }
    }
}

/// A T5 classifier (transformers 5.24.0 `T5ForSequenceClassification`).
#[derive(Debug)]
pub struct SequenceClassifier {
    shared: nn::Embedding,
    encoder: Stack,
    decoder: Stack,
    head: EosHead,
    dropout: f64,
    buckets: (i64, i64),
    pad_token_id: i64,
    decoder_start_token_id: i64,
    layers: (usize, usize),
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them
    /// (`transformer.*`, `classification_head.*`).
    ///
    /// # Panics
    /// On a config without `eos_token_id` or `decoder_start_token_id`, which
    /// [`Config::from_json`] refuses for T5.
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let transformer = &p / "transformer";
        let d = config.hidden_size;
        SequenceClassifier {
            shared: nn::embedding(&transformer / "shared", config.vocab_size, d, Default::default()),
            encoder: Stack::new(&transformer / "encoder", config, false),
            decoder: Stack::new(&transformer / "decoder", config, true),
            head: EosHead::new(
                &p / "classification_head",
                d,
                n_labels,
                config.head_dropout(),
                config.eos_token_id.expect("Config::from_json requires eos_token_id for T5"),
            ),
            dropout: config.hidden_dropout_prob,
            buckets: (config.relative_attention_num_buckets, config.relative_attention_max_distance),
            pad_token_id: config.pad_token_id,
            decoder_start_token_id: config
                .decoder_start_token_id
                .expect("Config::from_json requires decoder_start_token_id for T5"),
            layers: (config.num_hidden_layers as usize, config.decoder_layers as usize),
            parameters: parameter_count(&classifier_layout(config, n_labels)),
        }
    }

    /// The decoder's output (after its final norm), `[batch, seq, d]`.
    pub fn last_hidden_state(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let seq_len = input_ids.size()[1];
        let device = input_ids.device();
        let mut memory = self.shared.forward(input_ids).dropout(self.dropout, train);
        let memory_mask = padding_bias(attention_mask, memory.kind());
        let bias = self.encoder.blocks[0].self_attention.position_bias(seq_len, seq_len, true, self.buckets, device);
        for block in &self.encoder.blocks {
            memory = block.forward_t(&memory, &bias, &memory_mask, None, train);
        }
        let memory = self.encoder.final_layer_norm.forward(&memory).dropout(self.dropout, train);

        let decoder_input = shift_right(input_ids, self.decoder_start_token_id, self.pad_token_id);
        let mut hidden = self.shared.forward(&decoder_input).dropout(self.dropout, train);
        let causal = causal_bias(seq_len, hidden.kind(), device);
        let bias = self.decoder.blocks[0].self_attention.position_bias(seq_len, seq_len, false, self.buckets, device);
        for block in &self.decoder.blocks {
            hidden = block.forward_t(&hidden, &bias, &causal, Some((&memory, &memory_mask)), train);
        }
        self.decoder.final_layer_norm.forward(&hidden).dropout(self.dropout, train)
    }

    /// Logits `[batch, n_labels]` from the decoder's state at each row's last `eos_token_id`.
    ///
    /// # Panics
    /// When a row has no end-of-sequence token (a tokenizer without T5's template).
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(&self.last_hidden_state(input_ids, attention_mask, train), input_ids, train)
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, _token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, train)
    }

    fn model_type(&self) -> ModelType {
        ModelType::T5
    }

    fn layer_group(&self, name: &str) -> LayerGroup {
        layer_group(name, self.layers.0, self.layers.1)
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}
