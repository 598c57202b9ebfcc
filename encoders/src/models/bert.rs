//! BERT, RoBERTa, XLM-R and ELECTRA in tch, numerically faithful to HF `transformers` 5.24.0
//! (`modeling_bert.py`, `modeling_roberta.py`, `modeling_xlm_roberta.py`, `modeling_electra.py`),
//! with their sequence-classification heads and BERT's and RoBERTa's masked-LM heads.
//!
//! One encoder serves the four, as HF's RoBERTa, XLM-R and ELECTRA copy BERT's layers; their
//! differences are configuration:
//! - RoBERTa and XLM-R (one architecture under two `model_type`s): position ids start after the
//!   padding index (`padding_idx + 1 + cumsum(mask)`, HF's `create_position_ids_from_input_ids`),
//!   a single token type, and a classification head (dense, tanh, out_proj on the first token)
//!   instead of BERT's pooler, dropout and linear;
//! - ELECTRA (the discriminator): embeddings of `embedding_size` projected to `hidden_size` by
//!   `embeddings_project` when the two differ, no pooler, and RoBERTa's head with gelu for tanh.
//!
//! Variable paths spell HF names exactly (`bert.encoder.layer.0.attention.self.query.weight`), so a
//! checkpoint loads with no renaming table; loading lives in `checkpoint`, and this file does no IO.

use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::layers::{Layout, MultiHead, layer_norm_of_width, linear};
use super::{Classifier, Config, HiddenAct, ModelType, padding_bias, parameter_count};

/// The layer group of a parameter by its HF name under the encoder prefix `prefix` (`bert`,
/// `roberta`, `electra`): `<prefix>.embeddings.*` and ELECTRA's `<prefix>.embeddings_project.*`
/// as the embeddings, `<prefix>.encoder.layer.<i>.*`, and everything else (pooler,
/// classification or MLM head) as the head.
pub fn layer_group(prefix: &str, name: &str) -> LayerGroup {
    let Some(rest) = name.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')) else {
        return LayerGroup::Head;
    };
    if rest.starts_with("embeddings.") || rest.starts_with("embeddings_project.") {
        return LayerGroup::Embeddings;
    }
    match rest.strip_prefix("encoder.layer.").and_then(|rest| rest.split('.').next()?.parse().ok()) {
        Some(index) => LayerGroup::Layer(index),
        None => LayerGroup::Head,
    }
}

/// Whether a parameter is exempt from weight decay, by HF `Trainer`'s rule (transformers 5.24.0
/// `get_decay_parameter_names`): its lower-cased dotted name contains `bias`, `layernorm` or
/// `rmsnorm`, or has a `norm` or `*_norm` component (every family here names its norms so:
/// `LayerNorm`, `layer_norm`, `sa_layer_norm`, `layernorm_embedding`, T5's RMS `layer_norm`).
/// So T5's `relative_attention_bias` and XLNet's `r_w_bias` are not decayed either, as in HF.
pub fn no_decay(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let component_norm = name.split('.').any(|part| part == "norm" || part.ends_with("_norm"));
    name.contains("bias") || name.contains("layernorm") || name.contains("rmsnorm") || component_norm
}

/// Initialises every variable of a BERT or RoBERTa model built from `config` as HF's
/// `BertPreTrainedModel._init_weights` (transformers 5.24.0) does for training from scratch:
/// linear and embedding weights `N(0, initializer_range)`, the padding row of the word
/// embeddings (and, for RoBERTa, of the position embeddings) zero, biases zero, LayerNorm weights
/// one. The draws of each tensor come from a keyed stream of `(seed, its HF name)`, so the
/// initial weights do not depend on the order variables were built in or on the thread count.
pub fn initialise_from_scratch(vs: &nn::VarStore, config: &Config, seed: u64) {
    let _guard = tch::no_grad_guard();
    for (name, variable) in vs.variables() {
        let mut variable = variable.shallow_clone();
        let is_layer_norm_weight = name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight");
        if is_layer_norm_weight {
            let _ = variable.fill_(1.0);
        } else if name.ends_with("bias") {
            let _ = variable.zero_();
        } else {
            let values = subspace::random::normals(
                &mut subspace::random::keyed_rng("init v1", seed, &name, 0),
                variable.numel(),
            );
            let values = Tensor::from_slice(&values).to_kind(Kind::Double) * config.initializer_range;
            variable.copy_(&values.reshape(variable.size()).to_kind(variable.kind()));
            let padding_row = name.ends_with("word_embeddings.weight")
                || (config.model_type.positions_after_padding() && name.ends_with("position_embeddings.weight"));
            if padding_row && config.pad_token_id < variable.size()[0] {
                let _ = variable.get(config.pad_token_id).zero_();
            }
        }
    }
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in the model's own
/// naming and HF's parameter order, without building it: the embeddings (of `embedding_size`),
/// ELECTRA's `embeddings_project` where the widths differ, the layers, then BERT's pooler and
/// `classifier` linear, or the dense + out_proj head of RoBERTa, XLM-R and ELECTRA.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let prefix = config.model_type.prefix();
    let (hidden, embedding) = (config.hidden_size, config.embedding_size());
    let mut layout = Layout::default();
    embeddings_layout(
        &mut layout,
        prefix,
        config.vocab_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        embedding,
    );
    if embedding != hidden {
        layout.linear(&format!("{prefix}.embeddings_project"), embedding, hidden);
    }
    for layer_idx in 0..config.num_hidden_layers as usize {
        layer_layout(&mut layout, &format!("{prefix}.encoder.layer.{layer_idx}"), hidden, config.intermediate_size);
    }
    match config.model_type {
        ModelType::Bert => layout.linear("bert.pooler.dense", hidden, hidden).linear("classifier", hidden, n_labels),
        ModelType::Roberta | ModelType::XlmRoberta | ModelType::Electra => {
            layout.linear("classifier.dense", hidden, hidden).linear("classifier.out_proj", hidden, n_labels)
        }
        ModelType::DistilBert | ModelType::Albert | ModelType::Bart | ModelType::T5 | ModelType::Xlnet => {
            unreachable!("{}'s layout is in its own file", config.model_type.name())
        }
    };
    layout.finish()
}

/// The 16 tensors of one BERT layer under `layer` (`bert.encoder.layer.3`).
fn layer_layout(layout: &mut Layout, layer: &str, hidden: i64, intermediate: i64) {
    for module in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
        layout.linear(&format!("{layer}.{module}"), hidden, hidden);
    }
    layout
        .layer_norm(&format!("{layer}.attention.output.LayerNorm"), hidden)
        .linear(&format!("{layer}.intermediate.dense"), hidden, intermediate)
        .linear(&format!("{layer}.output.dense"), intermediate, hidden)
        .layer_norm(&format!("{layer}.output.LayerNorm"), hidden);
}

/// The word, position and token-type embeddings and their LayerNorm under `{prefix}.embeddings`
/// (BERT's, RoBERTa's, XLM-R's, ELECTRA's and ALBERT's), `width` wide.
pub(super) fn embeddings_layout(
    layout: &mut Layout,
    prefix: &str,
    vocab_size: i64,
    max_positions: i64,
    type_vocab_size: i64,
    width: i64,
) {
    layout
        .embedding(&format!("{prefix}.embeddings.word_embeddings"), vocab_size, width)
        .embedding(&format!("{prefix}.embeddings.position_embeddings"), max_positions, width)
        .embedding(&format!("{prefix}.embeddings.token_type_embeddings"), type_vocab_size, width)
        .layer_norm(&format!("{prefix}.embeddings.LayerNorm"), width);
}

/// A BERT/RoBERTa-style encoder with a RoBERTa classification head (dense, out_proj).
#[allow(clippy::too_many_arguments)]
pub fn encoder_classifier_layout(
    prefix: &str,
    vocab_size: i64,
    max_positions: i64,
    type_vocab_size: i64,
    hidden: i64,
    intermediate: i64,
    n_layers: usize,
    n_labels: i64,
) -> Vec<(String, Vec<i64>)> {
    let mut layout = Layout::default();
    embeddings_layout(&mut layout, prefix, vocab_size, max_positions, type_vocab_size, hidden);
    for layer_idx in 0..n_layers {
        layer_layout(&mut layout, &format!("{prefix}.encoder.layer.{layer_idx}"), hidden, intermediate);
    }
    layout.linear("classifier.dense", hidden, hidden).linear("classifier.out_proj", hidden, n_labels);
    layout.finish()
}

fn layer_norm(p: nn::Path, config: &Config) -> nn::LayerNorm {
    layer_norm_of_width(p, config.hidden_size, config.layer_norm_eps)
}

// transformers 5.24.0: BertEmbeddings / RobertaEmbeddings / XLMRobertaEmbeddings /
// ElectraEmbeddings / AlbertEmbeddings (each `embedding_size` wide)
#[derive(Debug)]
pub(super) struct Embeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    /// RoBERTa's and XLM-R's position ids (after the padding index) rather than `0..seq`.
    positions_after_padding: bool,
    pad_token_id: i64,
}

impl Embeddings {
    pub(super) fn new(p: nn::Path, config: &Config) -> Embeddings {
        let width = config.embedding_size();
        let embedding = |name: &str, count: i64| nn::embedding(&p / name, count, width, Default::default());
        Embeddings {
            word_embeddings: embedding("word_embeddings", config.vocab_size),
            position_embeddings: embedding("position_embeddings", config.max_position_embeddings),
            token_type_embeddings: embedding("token_type_embeddings", config.type_vocab_size),
            layer_norm: layer_norm_of_width(&p / "LayerNorm", width, config.layer_norm_eps),
            dropout: config.hidden_dropout_prob,
            positions_after_padding: config.model_type.positions_after_padding(),
            pad_token_id: config.pad_token_id,
        }
    }

    /// `[batch, seq, embedding_size]` from `input_ids` and `token_type_ids` `[batch, seq]`.
    pub(super) fn forward_t(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let position_ids = if self.positions_after_padding {
            let mask = input_ids.ne(self.pad_token_id).to_kind(Kind::Int64);
            mask.cumsum(1, Kind::Int64) * &mask + self.pad_token_id
        } else {
            let seq_len = input_ids.size()[1];
            Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0)
        };
        // HF's order of the sums: words, token types, then positions.
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + self.position_embeddings.forward(&position_ids);
        self.layer_norm.forward(&embeddings).dropout(self.dropout, train)
    }
}

// transformers 5.24.0: BertSelfAttention + BertSelfOutput
#[derive(Debug)]
struct Attention {
    heads: MultiHead,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    hidden_dropout: f64,
}

/// BERT's self-attention heads (HF `BertSelfAttention`, transformers 5.24.0): `query`, `key` and
/// `value` under `p`, each `[hidden] -> [hidden]`, with the config's heads and attention dropout.
/// ALBERT's `AlbertAttention` registers the same names under its `attention`.
pub(super) fn self_attention_heads(p: &nn::Path, config: &Config) -> MultiHead {
    let hidden = config.hidden_size;
    let projections =
        (linear(p / "query", hidden, hidden), linear(p / "key", hidden, hidden), linear(p / "value", hidden, hidden));
    let n_heads = config.num_attention_heads;
    MultiHead::new(projections, n_heads, hidden / n_heads, config.attention_probs_dropout_prob)
}

impl Attention {
    fn new(p: nn::Path, config: &Config) -> Attention {
        let hidden = config.hidden_size;
        Attention {
            heads: self_attention_heads(&(&p / "self"), config),
            output: linear(&p / "output" / "dense", hidden, hidden),
            layer_norm: layer_norm(&p / "output" / "LayerNorm", config),
            hidden_dropout: config.hidden_dropout_prob,
        }
    }

    /// `mask_bias`: `[batch, 1, 1, seq]`, 0 where attended and the dtype's minimum where masked.
    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let context = self.heads.forward_t(hidden, hidden, mask_bias, train);
        let projected = self.output.forward(&context).dropout(self.hidden_dropout, train);
        self.layer_norm.forward(&(projected + hidden))
    }
}

// transformers 5.24.0: BertLayer (attention, BertIntermediate, BertOutput)
#[derive(Debug)]
struct Layer {
    attention: Attention,
    intermediate: nn::Linear,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    activation: HiddenAct,
    dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, config: &Config) -> Layer {
        Layer {
            attention: Attention::new(&p / "attention", config),
            intermediate: linear(&p / "intermediate" / "dense", config.hidden_size, config.intermediate_size),
            output: linear(&p / "output" / "dense", config.intermediate_size, config.hidden_size),
            layer_norm: layer_norm(&p / "output" / "LayerNorm", config),
            activation: config.hidden_act,
            dropout: config.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let attended = self.attention.forward_t(hidden, mask_bias, train);
        let intermediate = self.activation.forward(&self.intermediate.forward(&attended));
        let output = self.output.forward(&intermediate).dropout(self.dropout, train);
        self.layer_norm.forward(&(output + attended))
    }
}

/// The encoder's outputs.
pub struct EncoderOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor,
    /// BERT's pooler (`tanh(dense(first token))`), when the model has one.
    pub pooled: Option<Tensor>,
}

/// A BERT, RoBERTa, XLM-R or ELECTRA encoder (transformers 5.24.0: BertModel / RobertaModel /
/// XLMRobertaModel / ElectraModel), optionally with BERT's pooler.
#[derive(Debug)]
pub struct Encoder {
    embeddings: Embeddings,
    /// ELECTRA's `embeddings_project` (`embedding_size` -> `hidden_size`), where the two differ.
    embeddings_project: Option<nn::Linear>,
    layers: Vec<Layer>,
    pooler: Option<nn::Linear>,
}

impl Encoder {
    /// Registers the encoder's variables under `p` (e.g. `root / "bert"`).
    pub fn new(p: nn::Path, config: &Config, with_pooler: bool) -> Encoder {
        let layers =
            (0..config.num_hidden_layers).map(|idx| Layer::new(&p / "encoder" / "layer" / idx, config)).collect();
        let (embedding, hidden) = (config.embedding_size(), config.hidden_size);
        Encoder {
            embeddings: Embeddings::new(&p / "embeddings", config),
            embeddings_project: (embedding != hidden).then(|| linear(&p / "embeddings_project", embedding, hidden)),
            layers,
            pooler: with_pooler.then(|| linear(&p / "pooler" / "dense", config.hidden_size, config.hidden_size)),
        }
    }

    /// `input_ids`, `attention_mask` (1 = token, 0 = padding) and `token_type_ids`: `[batch, seq]` i64.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> EncoderOutput {
        let mut hidden = self.embeddings.forward_t(input_ids, token_type_ids, train);
        if let Some(project) = &self.embeddings_project {
            hidden = project.forward(&hidden);
        }
        let mask_bias = padding_bias(attention_mask, hidden.kind());
        for layer in &self.layers {
            hidden = layer.forward_t(&hidden, &mask_bias, train);
        }
        let pooled = self.pooler.as_ref().map(|pooler| pooler.forward(&hidden.select(1, 0)).tanh());
        EncoderOutput { last_hidden_state: hidden, pooled }
    }

    /// `[vocab, hidden]`: the input embeddings, which the MLM decoder shares.
    pub fn word_embeddings(&self) -> &Tensor {
        &self.embeddings.word_embeddings.ws
    }
}

// transformers 5.24.0: BertForSequenceClassification / RobertaForSequenceClassification /
// XLMRobertaForSequenceClassification / ElectraForSequenceClassification
#[derive(Debug)]
enum Head {
    /// Pooler (in the encoder), dropout, `classifier`.
    Bert { classifier: nn::Linear },
    /// First token, dropout, `classifier.dense`, the activation (tanh: RoBERTa and XLM-R; gelu:
    /// ELECTRA), dropout, `classifier.out_proj`.
    Dense { dense: nn::Linear, activation: HiddenAct, out_proj: nn::Linear },
}

/// An encoder of BERT's layers with a sequence-classification head, named as HF names it.
#[derive(Debug)]
pub struct SequenceClassifier {
    encoder: Encoder,
    head: Head,
    dropout: f64,
    model_type: ModelType,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store: the encoder under `bert`,
    /// `roberta` (RoBERTa and XLM-R) or `electra`, the head under `classifier`.
    ///
    /// # Panics
    /// For DistilBERT and ALBERT, which have their own layers (their files' `SequenceClassifier`).
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let model_type = config.model_type;
        let encoder = Encoder::new(&p / model_type.prefix(), config, model_type == ModelType::Bert);
        let classifier = &p / "classifier";
        let dense = |activation| Head::Dense {
            dense: linear(&classifier / "dense", config.hidden_size, config.hidden_size),
            activation,
            out_proj: linear(&classifier / "out_proj", config.hidden_size, n_labels),
        };
        let head = match model_type {
            ModelType::Bert => Head::Bert { classifier: linear(classifier.clone(), config.hidden_size, n_labels) },
            ModelType::Roberta | ModelType::XlmRoberta => dense(HiddenAct::Tanh),
            // ElectraClassificationHead: `get_activation("gelu")`, whatever `hidden_act` says.
            ModelType::Electra => dense(HiddenAct::Gelu),
            ModelType::DistilBert | ModelType::Albert | ModelType::Bart | ModelType::T5 | ModelType::Xlnet => {
                panic!("{} is built by its own file's SequenceClassifier", model_type.name())
            }
        };
        let parameters = parameter_count(&classifier_layout(config, n_labels));
        SequenceClassifier { encoder, head, dropout: config.head_dropout(), model_type, parameters }
    }

    /// The encoder under the head (registered under `bert`, `roberta` or `electra`).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Logits `[batch, n_labels]`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let output = self.encoder.forward_t(input_ids, attention_mask, token_type_ids, train);
        match &self.head {
            Head::Bert { classifier } => {
                let pooled = output.pooled.expect("BERT models are built with a pooler");
                classifier.forward(&pooled.dropout(self.dropout, train))
            }
            Head::Dense { dense, activation, out_proj } => {
                let first = output.last_hidden_state.select(1, 0).dropout(self.dropout, train);
                let hidden = activation.forward(&dense.forward(&first)).dropout(self.dropout, train);
                out_proj.forward(&hidden)
            }
        }
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        SequenceClassifier::forward_t(self, input_ids, attention_mask, token_type_ids, train)
    }

    fn model_type(&self) -> ModelType {
        self.model_type
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }
}

// transformers 5.24.0: BertForMaskedLM (BertOnlyMLMHead) / RobertaForMaskedLM (RobertaLMHead)
/// An encoder with its masked-language-model head: dense, activation, LayerNorm, then a decoder
/// (the word embeddings when `tie_word_embeddings`, HF's default; its own `decoder.weight`
/// otherwise) plus a bias (for the pre-training experiments).
#[derive(Debug)]
pub struct MaskedLm {
    encoder: Encoder,
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    /// `[vocab, hidden]` when the decoder is not tied to the word embeddings.
    decoder: Option<Tensor>,
    bias: Tensor,
    activation: HiddenAct,
}

impl MaskedLm {
    /// Registers the variables as HF names them: the encoder under `bert`/`roberta`, the head under
    /// `cls.predictions` (BERT) or `lm_head` (RoBERTa, XLM-R). No family has a pooler here.
    ///
    /// # Panics
    /// For ELECTRA, DistilBERT and ALBERT, whose MLM heads (the generator's, `vocab_transform`,
    /// `predictions`) are not implemented; pre-training settings refuse them first.
    pub fn new(p: nn::Path, config: &Config) -> MaskedLm {
        let encoder = Encoder::new(&p / config.model_type.prefix(), config, false);
        let (head, transform, layer_norm_name, activation) = match config.model_type {
            ModelType::Bert => {
                let head = &p / "cls" / "predictions";
                let transform = &head / "transform";
                (head, transform, "LayerNorm", config.hidden_act)
            }
            // RobertaLMHead applies gelu whatever hidden_act says.
            ModelType::Roberta | ModelType::XlmRoberta => {
                let head = &p / "lm_head";
                (head.clone(), head, "layer_norm", HiddenAct::Gelu)
            }
            ModelType::Electra
            | ModelType::DistilBert
            | ModelType::Albert
            | ModelType::Bart
            | ModelType::T5
            | ModelType::Xlnet => {
                panic!("no masked-LM head for {} (pre-training settings refuse it)", config.model_type.name())
            }
        };
        let decoder = (!config.tie_word_embeddings)
            .then(|| (&head / "decoder").var("weight", &[config.vocab_size, config.hidden_size], nn::Init::Const(0.0)));
        MaskedLm {
            encoder,
            dense: linear(&transform / "dense", config.hidden_size, config.hidden_size),
            layer_norm: layer_norm(&transform / layer_norm_name, config),
            decoder,
            bias: head.zeros("bias", &[config.vocab_size]),
            activation,
        }
    }

    /// Logits over the vocabulary, `[batch, seq, vocab]`.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self.encoder.forward_t(input_ids, attention_mask, token_type_ids, train).last_hidden_state;
        self.head(&hidden)
    }

    /// Logits over the vocabulary at the positions `positions` (`[n]` i64 indices into the
    /// flattened `[batch * seq]` tokens), `[n, vocab]`: the head runs on those positions only (as
    /// fairseq's `masked_tokens`), with the same values [`MaskedLm::forward_t`] gives there.
    pub fn forward_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        positions: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self.encoder.forward_t(input_ids, attention_mask, token_type_ids, train).last_hidden_state;
        let hidden_size = hidden.size()[2];
        self.head(&hidden.reshape([-1, hidden_size]).index_select(0, positions))
    }

    fn head(&self, hidden: &Tensor) -> Tensor {
        let transformed = self.layer_norm.forward(&self.activation.forward(&self.dense.forward(hidden)));
        let decoder = self.decoder.as_ref().unwrap_or_else(|| self.encoder.word_embeddings());
        if transformed.dim() == 2 {
            // One fused GEMM with the bias (no second vocabulary-sized buffer): the MLM hot path.
            return self.bias.addmm(&transformed, &decoder.transpose(0, 1));
        }
        transformed.matmul(&decoder.transpose(0, 1)) + &self.bias
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(model_type: &str) -> Config {
        Config::from_json(&format!(
            r#"{{"model_type": "{model_type}", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 12,
                "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 40}}"#
        ))
        .unwrap()
    }

    #[test]
    fn layer_groups_by_hf_name() {
        use LayerGroup::{Embeddings, Head, Layer};
        for (name, group) in [
            ("roberta.embeddings.word_embeddings.weight", Embeddings),
            ("roberta.embeddings.LayerNorm.bias", Embeddings),
            ("roberta.encoder.layer.0.attention.self.query.weight", Layer(0)),
            ("roberta.encoder.layer.11.output.LayerNorm.bias", Layer(11)),
            ("classifier.out_proj.weight", Head),
            ("lm_head.layer_norm.weight", Head),
        ] {
            assert_eq!(layer_group("roberta", name), group, "{name}");
        }
        assert_eq!(layer_group("bert", "bert.pooler.dense.weight"), Head);
        assert_eq!(layer_group("bert", "bert.encoder.layer.3.intermediate.dense.bias"), Layer(3));
        // Another family's prefix is not this encoder.
        assert_eq!(layer_group("bert", "roberta.encoder.layer.3.intermediate.dense.bias"), Head);
    }

    /// On every tensor of both families' classifiers, the family's rules give what the name rules
    /// of earlier versions gave (`layer.<i>` anywhere, `embeddings` anywhere; `bias` or
    /// `LayerNorm` for no decay), so committed SAID results keep their scale groups.
    #[test]
    fn the_rules_agree_with_the_earlier_name_rules_on_bert_and_roberta() {
        for model_type in ["bert", "roberta"] {
            let config = config(model_type);
            for (name, _) in classifier_layout(&config, 2) {
                let parts: Vec<&str> = name.split('.').collect();
                let layer = parts.windows(2).find_map(|pair| match pair {
                    ["layer", index] => index.parse::<usize>().ok(),
                    _ => None,
                });
                let earlier = match layer {
                    Some(index) => LayerGroup::Layer(index),
                    None if name.contains("embeddings") => LayerGroup::Embeddings,
                    None => LayerGroup::Head,
                };
                assert_eq!(config.layer_group(&name), earlier, "{name}");
                assert_eq!(no_decay(&name), name.ends_with("bias") || name.contains("LayerNorm"), "{name}");
            }
        }
    }

    #[test]
    fn parameter_count_is_the_built_models() {
        for model_type in ["bert", "roberta"] {
            let config = config(model_type);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let model = SequenceClassifier::new(vs.root(), &config, 3);
            let built: usize = vs.variables().values().map(Tensor::numel).sum();
            assert_eq!(model.parameter_count(), built, "{model_type}");
        }
    }
}
