//! Building blocks several families share, each written once: linear and LayerNorm layers as
//! HF's modules register them, the multi-head attention product of HF's
//! `eager_attention_forward` (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, ALBERT, BART, T5), the
//! encoder-decoders' (BART's, T5's) decoder input shifted right under a causal mask, their
//! classification head on the last end-of-sequence state, and the tensor layouts of all
//! families. Each family keeps what differs: the projections' HF names, the output projection,
//! dropout and residual order, position biases. XLNet's two-stream relative attention is its own.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::masked_value;

/// `nn.Linear(in_dim, out_dim)` with a bias, registered at `p` (`weight` `[out, in]`, `bias`).
pub(super) fn linear(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(p, in_dim, out_dim, Default::default())
}

/// `nn.Linear(in_dim, out_dim, bias=False)` (T5's projections), registered at `p`.
pub(super) fn linear_no_bias(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(p, in_dim, out_dim, nn::LinearConfig { bias: false, ..Default::default() })
}

/// `nn.LayerNorm(width, eps)`, registered at `p` (`weight`, `bias`).
pub(super) fn layer_norm_of_width(p: nn::Path, width: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![width], nn::LayerNormConfig { eps, ..Default::default() })
}

/// The query, key and value projections of multi-head attention and the product that joins
/// them (transformers 5.24.0 `eager_attention_forward`): scores `q k^T * scaling + bias`,
/// softmax, dropout, the weighted values with the heads merged back. The output projection
/// (and its dropout and residual) belongs to the family.
#[derive(Debug)]
pub(super) struct MultiHead {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    n_heads: i64,
    /// Width of one head (`inner / n_heads`; T5's `d_kv`).
    head_dim: i64,
    /// `head_dim^-0.5`, or 1 for T5 (which folds it into its initialisation).
    scaling: f64,
    dropout: f64,
}

impl MultiHead {
    /// Projections already registered under the family's names (in the family's order, which
    /// fixes the order of their random initialisation), each `[width] -> [n_heads * head_dim]`;
    /// scores scaled by `head_dim^-0.5`.
    pub(super) fn new(
        (query, key, value): (nn::Linear, nn::Linear, nn::Linear),
        n_heads: i64,
        head_dim: i64,
        dropout: f64,
    ) -> MultiHead {
        MultiHead { query, key, value, n_heads, head_dim, scaling: (head_dim as f64).powf(-0.5), dropout }
    }

    /// The same without score scaling (T5's).
    pub(super) fn unscaled(self) -> MultiHead {
        MultiHead { scaling: 1.0, ..self }
    }

    /// Queries from `hidden` `[batch, q, width]`, keys and values from `memory` `[batch, k,
    /// width]` (`hidden` itself for self-attention); `bias` broadcasts to `[batch, heads, q, k]`
    /// (padding, causal and position biases, added by the caller). Returns the merged heads,
    /// `[batch, q, n_heads * head_dim]`, before the output projection.
    pub(super) fn forward_t(&self, hidden: &Tensor, memory: &Tensor, bias: &Tensor, train: bool) -> Tensor {
        let (batch, q_len, _) = hidden.size3().expect("[batch, seq, width]");
        let k_len = memory.size()[1];
        let heads = |x: Tensor, len: i64| x.view([batch, len, self.n_heads, self.head_dim]).transpose(1, 2);
        let query = heads(self.query.forward(hidden), q_len);
        let key = heads(self.key.forward(memory), k_len);
        let value = heads(self.value.forward(memory), k_len);
        let scores = query.matmul(&key.transpose(-1, -2)) * self.scaling + bias;
        let probs = scores.softmax(-1, scores.kind()).dropout(self.dropout, train);
        probs.matmul(&value).transpose(1, 2).contiguous().view([batch, q_len, self.n_heads * self.head_dim])
    }
}

/// The classification head of BART and T5 (transformers 5.24.0 `BartClassificationHead`,
/// `T5ClassificationHead`; both `classification_head.{dense,out_proj}`): dropout, dense, tanh,
/// dropout, out_proj, on the decoder's state at each row's last end-of-sequence token.
#[derive(Debug)]
pub(super) struct EosHead {
    dense: nn::Linear,
    out_proj: nn::Linear,
    dropout: f64,
    eos_token_id: i64,
}

impl EosHead {
    /// Registers `dense` `[d, d]` and `out_proj` `[n_labels, d]` under `p`.
    pub(super) fn new(p: nn::Path, d: i64, n_labels: i64, dropout: f64, eos_token_id: i64) -> EosHead {
        EosHead {
            dense: linear(&p / "dense", d, d),
            out_proj: linear(&p / "out_proj", d, n_labels),
            dropout,
            eos_token_id,
        }
    }

    /// Logits `[batch, n_labels]` from the decoder's last hidden state `[batch, seq, d]`.
    ///
    /// # Panics
    /// When a row of `input_ids` has no end-of-sequence token (a tokenizer without the model's
    /// template).
    pub(super) fn forward_t(&self, hidden: &Tensor, input_ids: &Tensor, train: bool) -> Tensor {
        let sentence = last_eos_state(hidden, input_ids, self.eos_token_id);
        let hidden = self.dense.forward(&sentence.dropout(self.dropout, train)).tanh();
        self.out_proj.forward(&hidden.dropout(self.dropout, train))
    }
}

/// `[1, 1, seq, seq]`: 0 on and below the diagonal, the dtype's minimum above (HF's causal mask).
pub(super) fn causal_bias(seq_len: i64, kind: Kind, device: tch::Device) -> Tensor {
    Tensor::ones([seq_len, seq_len], (kind, device)).triu(1).g_mul_scalar(masked_value(kind)).unsqueeze(0).unsqueeze(0)
}

/// The input shifted one token right, `start` first, label padding (-100) as `pad` (HF's
/// `shift_tokens_right`, and T5's `_shift_right`).
pub(super) fn shift_right(input_ids: &Tensor, start: i64, pad: i64) -> Tensor {
    let seq_len = input_ids.size()[1];
    let first = input_ids.narrow(1, 0, 1).full_like(start);
    let shifted = Tensor::cat(&[first, input_ids.narrow(1, 0, seq_len - 1)], 1);
    shifted.masked_fill(&shifted.eq(-100), pad)
}

/// `[batch, width]`: each row's state at its last `eos` token.
///
/// # Panics
/// When a row has no `eos` token.
fn last_eos_state(hidden: &Tensor, input_ids: &Tensor, eos: i64) -> Tensor {
    let mask = input_ids.eq(eos);
    assert!(
        bool::try_from(mask.any_dim(1, false).all()).unwrap_or(false),
        "the classification head reads the end-of-sequence token {eos}, which a row lacks: use the model's tokenizer"
    );
    let seq_len = input_ids.size()[1];
    // The last EOS of each row: the largest position where the mask is set.
    let positions = Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0) * mask.to_kind(Kind::Int64);
    let width = hidden.size()[2];
    let index = positions.argmax(1, false).view([-1, 1, 1]).expand([-1, 1, width], false);
    hidden.gather(1, &index, false).squeeze_dim(1)
}

/// `(name, shape)` of a model's tensors in HF's parameter order, written module by module as
/// HF's modules register them (`nn.Linear`: `weight` `[out, in]`, then `bias`).
#[derive(Debug, Default)]
pub(super) struct Layout(Vec<(String, Vec<i64>)>);

impl Layout {
    /// One tensor.
    pub(super) fn tensor(&mut self, name: impl Into<String>, shape: impl Into<Vec<i64>>) -> &mut Layout {
        self.0.push((name.into(), shape.into()));
        self
    }

    /// `nn.Linear(in_dim, out_dim)` at `prefix`.
    pub(super) fn linear(&mut self, prefix: &str, in_dim: i64, out_dim: i64) -> &mut Layout {
        self.tensor(format!("{prefix}.weight"), [out_dim, in_dim]).tensor(format!("{prefix}.bias"), [out_dim])
    }

    /// `nn.Linear(in_dim, out_dim, bias=False)` at `prefix`.
    pub(super) fn linear_no_bias(&mut self, prefix: &str, in_dim: i64, out_dim: i64) -> &mut Layout {
        self.tensor(format!("{prefix}.weight"), [out_dim, in_dim])
    }

    /// `nn.LayerNorm(width)` at `prefix`.
    pub(super) fn layer_norm(&mut self, prefix: &str, width: i64) -> &mut Layout {
        self.tensor(format!("{prefix}.weight"), [width]).tensor(format!("{prefix}.bias"), [width])
    }

    /// `nn.Embedding(count, width)` at `prefix`.
    pub(super) fn embedding(&mut self, prefix: &str, count: i64, width: i64) -> &mut Layout {
        self.tensor(format!("{prefix}.weight"), [count, width])
    }

    pub(super) fn finish(&mut self) -> Vec<(String, Vec<i64>)> {
        std::mem::take(&mut self.0)
    }
}
