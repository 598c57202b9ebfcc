//! XLNet in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_xlnet.py`), with its
//! sequence-classification head (`XLNetForSequenceClassification`).
//!
//! Fine-tuning runs the content stream only (no query stream, permutation mask or memory, as HF
//! does when none is given): Transformer-XL relative attention with sinusoidal relative
//! positions (`klen` down to `-qlen`, HF's `relative_positional_encoding` for `attn_type: bi`),
//! the content, position and segment terms with their learned biases (`r_w_bias`, `r_r_bias`,
//! `r_s_bias`, `seg_embed`), and a token attending to itself even where it is padding (HF's
//! `non_tgt_mask`). Computations are time-major (`[seq, batch, ...]`) with HF's einsum equations.
//!
//! Padding: XLNet's tokenizer pads on the left and HF's summary reads the last position, which is
//! then `<cls>`. The suite pads on the right, and this head reads the last attended position
//! instead, which is the same token. The attention is relative and padding is masked, so every
//! real token's state does not depend on which side the padding is: the logits are HF's on
//! left-padded input (the parity test checks exactly that). `mask_emb` (the query stream's) is
//! loaded and counted in D but does not enter the content stream.

use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{Layout, layer_norm_of_width, linear};
use super::{Classifier, Config, HiddenAct, ModelType, parameter_count};

/// The layer group of a parameter by its HF name: `transformer.word_embedding` and
/// `transformer.mask_emb` as the embeddings, `transformer.layer.<i>.*` as `Layer(i)`, the summary
/// and `logits_proj` as the head.
pub fn layer_group(name: &str) -> LayerGroup {
    let Some(rest) = name.strip_prefix("transformer.") else {
        return LayerGroup::Head;
    };
    if rest.starts_with("word_embedding.") || rest == "mask_emb" {
        return LayerGroup::Embeddings;
    }
    match rest.strip_prefix("layer.").and_then(|rest| rest.split('.').next()?.parse().ok()) {
        Some(index) => LayerGroup::Layer(index),
        None => LayerGroup::Head,
    }
}

fn head_width(config: &Config) -> i64 {
    config.d_kv.unwrap_or(config.hidden_size / config.num_attention_heads)
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in HF's parameter order,
/// without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let (d, n, dh, inner) =
        (config.hidden_size, config.num_attention_heads, head_width(config), config.intermediate_size);
    let mut layout = Layout::default();
    layout.tensor("transformer.mask_emb", [1, 1, d]).embedding("transformer.word_embedding", config.vocab_size, d);
    for index in 0..config.num_hidden_layers {
        let attention = format!("transformer.layer.{index}.rel_attn");
        for projection in ["q", "k", "v", "o", "r"] {
            layout.tensor(format!("{attention}.{projection}"), [d, n, dh]);
        }
        for bias in ["r_r_bias", "r_s_bias", "r_w_bias"] {
            layout.tensor(format!("{attention}.{bias}"), [n, dh]);
        }
        layout.tensor(format!("{attention}.seg_embed"), [2, n, dh]).layer_norm(&format!("{attention}.layer_norm"), d);
        let ff = format!("transformer.layer.{index}.ff");
        layout.layer_norm(&format!("{ff}.layer_norm"), d).linear(&format!("{ff}.layer_1"), d, inner).linear(
            &format!("{ff}.layer_2"),
            inner,
            d,
        );
    }
    layout.linear("sequence_summary.summary", d, d).linear("logits_proj", d, n_labels);
    layout.finish()
}

fn einsum(equation: &str, tensors: &[&Tensor]) -> Tensor {
    Tensor::einsum(equation, tensors, None::<&[i64]>)
}

// transformers 5.24.0: XLNetRelativeAttention (content stream) + XLNetFeedForward
#[derive(Debug)]
struct Layer {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    r: Tensor,
    r_r_bias: Tensor,
    r_s_bias: Tensor,
    r_w_bias: Tensor,
    seg_embed: Tensor,
    attention_norm: nn::LayerNorm,
    layer_1: nn::Linear,
    layer_2: nn::Linear,
    ff_norm: nn::LayerNorm,
    activation: HiddenAct,
    scale: f64,
    dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, config: &Config) -> Layer {
        let (d, n, dh) = (config.hidden_size, config.num_attention_heads, head_width(config));
        let attention = &p / "rel_attn";
        let ff = &p / "ff";
        let param = |name: &str, shape: &[i64]| attention.var(name, shape, nn::Init::Const(0.0));
        Layer {
            q: param("q", &[d, n, dh]),
            k: param("k", &[d, n, dh]),
            v: param("v", &[d, n, dh]),
            o: param("o", &[d, n, dh]),
            r: param("r", &[d, n, dh]),
            r_r_bias: param("r_r_bias", &[n, dh]),
            r_s_bias: param("r_s_bias", &[n, dh]),
            r_w_bias: param("r_w_bias", &[n, dh]),
            seg_embed: param("seg_embed", &[2, n, dh]),
            attention_norm: layer_norm_of_width(&attention / "layer_norm", d, config.layer_norm_eps),
            layer_1: linear(&ff / "layer_1", d, config.intermediate_size),
            layer_2: linear(&ff / "layer_2", config.intermediate_size, d),
            ff_norm: layer_norm_of_width(&ff / "layer_norm", d, config.layer_norm_eps),
            activation: config.hidden_act,
            scale: 1.0 / (dh as f64).sqrt(),
            dropout: config.hidden_dropout_prob,
        }
    }

    /// `h` `[q, b, d]`; `mask` `[q, k, b, 1]` (1 = masked); `positions` `[q + k, b, d]`;
    /// `segments` `[q, k, b, 2]` (one-hot: same segment or not).
    fn forward_t(&self, h: &Tensor, mask: &Tensor, positions: &Tensor, segments: &Tensor, train: bool) -> Tensor {
        let q_head = einsum("ibh,hnd->ibnd", &[h, &self.q]);
        let k_head = einsum("ibh,hnd->ibnd", &[h, &self.k]);
        let v_head = einsum("ibh,hnd->ibnd", &[h, &self.v]);
        let k_head_r = einsum("ibh,hnd->ibnd", &[positions, &self.r]);
        let ac = einsum("ibnd,jbnd->bnij", &[&(&q_head + &self.r_w_bias), &k_head]);
        let bd = einsum("ibnd,jbnd->bnij", &[&(&q_head + &self.r_r_bias), &k_head_r]);
        let klen = ac.size()[3];
        let bd = rel_shift_bnij(&bd, klen);
        let ef = einsum("ibnd,snd->ibns", &[&(&q_head + &self.r_s_bias), &self.seg_embed]);
        let ef = einsum("ijbs,ibns->bnij", &[segments, &ef]);
        let scores = (ac + bd + ef) * self.scale - einsum("ijbn->bnij", &[mask]) * 1e30;
        let probs = scores.softmax(3, scores.kind()).dropout(self.dropout, train);
        let attn_vec = einsum("bnij,jbnd->ibnd", &[&probs, &v_head]);
        let attn_out = einsum("ibnd,hnd->ibh", &[&attn_vec, &self.o]).dropout(self.dropout, train);
        let attended = self.attention_norm.forward(&(attn_out + h));
        let inner = self.activation.forward(&self.layer_1.forward(&attended)).dropout(self.dropout, train);
        let output = self.layer_2.forward(&inner).dropout(self.dropout, train);
        self.ff_norm.forward(&(output + attended))
    }
}

/// HF's `rel_shift_bnij`: `[b, n, q, q + k]` relative scores to `[b, n, q, k]` absolute ones.
fn rel_shift_bnij(x: &Tensor, klen: i64) -> Tensor {
    let size = x.size();
    let (b, n, i, j) = (size[0], size[1], size[2], size[3]);
    let shifted = x.reshape([b, n, j, i]).narrow(2, 1, j - 1).reshape([b, n, i, j - 1]);
    shifted.narrow(3, 0, klen)
}

/// An XLNet classifier (transformers 5.24.0 `XLNetForSequenceClassification`).
#[derive(Debug)]
pub struct SequenceClassifier {
    word_embedding: nn::Embedding,
    layers: Vec<Layer>,
    summary: nn::Linear,
    logits_proj: nn::Linear,
    d_model: i64,
    clamp_len: i64,
    dropout: f64,
    first_dropout: f64,
    last_dropout: f64,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them
    /// (`transformer.*`, `sequence_summary.summary.*`, `logits_proj.*`).
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let transformer = &p / "transformer";
        let d = config.hidden_size;
        // The query stream's mask embedding: in the checkpoint and in D, not in the content stream.
        let _mask_emb = transformer.var("mask_emb", &[1, 1, d], nn::Init::Const(0.0));
        SequenceClassifier {
            word_embedding: nn::embedding(&transformer / "word_embedding", config.vocab_size, d, Default::default()),
            layers: (0..config.num_hidden_layers)
                .map(|index| Layer::new(&transformer / "layer" / index, config))
                .collect(),
            summary: linear(&p / "sequence_summary" / "summary", d, d),
            logits_proj: linear(&p / "logits_proj", d, n_labels),
            d_model: d,
            clamp_len: config.clamp_len,
            dropout: config.hidden_dropout_prob,
            first_dropout: config.summary_first_dropout,
            last_dropout: config.head_dropout(),
            parameters: parameter_count(&classifier_layout(config, n_labels)),
        }
    }

    /// HF's `relative_positional_encoding` for `attn_type: bi` without `bi_data`: sinusoids of the
    /// positions `klen, klen - 1, ..., -qlen + 1`, `[qlen + klen, batch, d]`.
    fn relative_positions(&self, qlen: i64, klen: i64, batch: i64, device: tch::Device) -> Tensor {
        let freq_seq = Tensor::arange_start_step(0, self.d_model, 2, (Kind::Int64, device)).to_kind(Kind::Float);
        let inv_freq = Tensor::pow_scalar(10000i64, &(freq_seq / self.d_model as f64)).reciprocal();
        let mut positions = Tensor::arange_start_step(klen, -qlen, -1, (Kind::Int64, device)).to_kind(Kind::Float);
        if self.clamp_len > 0 {
            positions = positions.clamp(-self.clamp_len as f64, self.clamp_len as f64);
        }
        let sinusoid = positions.unsqueeze(1) * inv_freq.unsqueeze(0);
        Tensor::cat(&[sinusoid.sin(), sinusoid.cos()], -1).unsqueeze(1).expand([-1, batch, -1], false)
    }

    /// The last layer's states, `[batch, seq, d]` (batch-major, as HF returns them).
    pub fn last_hidden_state(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let (batch, seq_len) = input_ids.size2().expect("[batch, seq]");
        let device = input_ids.device();
        let ids = input_ids.transpose(0, 1).contiguous();
        let types = token_type_ids.transpose(0, 1).contiguous();
        let mut h = self.word_embedding.forward(&ids).dropout(self.dropout, train);
        let kind = h.kind();
        // HF: padding keys are masked, but every token attends to itself (`non_tgt_mask`).
        let padding = (attention_mask.transpose(0, 1).to_kind(kind).neg() + 1.0).gt(0.0).to_kind(kind);
        let padding = padding.unsqueeze(0).unsqueeze(-1);
        let self_attention = Tensor::eye(seq_len, (kind, device)).neg().unsqueeze(-1).unsqueeze(-1);
        let mask = (padding + self_attention).gt(0.0).to_kind(kind);
        let segments = types.unsqueeze(1).ne_tensor(&types.unsqueeze(0)).to_kind(Kind::Int64).one_hot(2).to_kind(kind);
        let positions =
            self.relative_positions(seq_len, seq_len, batch, device).to_kind(kind).dropout(self.dropout, train);
        for layer in &self.layers {
            h = layer.forward_t(&h, &mask, &positions, &segments, train);
        }
        h.dropout(self.dropout, train).permute([1, 0, 2]).contiguous()
    }

    /// Logits `[batch, n_labels]`: the summary (projection, tanh) of each row's last attended
    /// token (`<cls>`), dropout, `logits_proj`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self.last_hidden_state(input_ids, attention_mask, token_type_ids, train);
        let last = (attention_mask.sum_dim_intlist(1, false, Kind::Int64) - 1).clamp_min(0);
        let index = last.view([-1, 1, 1]).expand([-1, 1, self.d_model], false);
        let output = hidden.gather(1, &index, false).squeeze_dim(1).dropout(self.first_dropout, train);
        let summary = self.summary.forward(&output).tanh().dropout(self.last_dropout, train);
        self.logits_proj.forward(&summary)
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, token_type_ids, train)
    }

    fn model_type(&self) -> ModelType {
        ModelType::Xlnet
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}
