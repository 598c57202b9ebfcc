//! BERT and RoBERTa in tch, numerically faithful to HF `transformers` 5.24.0 (`modeling_bert.py`,
//! `modeling_roberta.py`), with their sequence-classification and masked-LM heads.
//!
//! One encoder serves both families; RoBERTa's differences are configuration: position ids start
//! after the padding index (`padding_idx + 1 + cumsum(mask)`, HF's
//! `create_position_ids_from_input_ids`), a single token type, and its classification head (dense,
//! tanh, out_proj on the first token) instead of BERT's pooler, dropout and linear.
//!
//! Variable paths spell HF names exactly (`bert.encoder.layer.0.attention.self.query.weight`), so a
//! checkpoint loads with no renaming table; loading lives in `checkpoint`, and this file does no IO.

use std::collections::BTreeMap;

use serde::Deserialize;
use subspace::LayerGroup;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::{Classifier, HiddenAct, ModelType, parameter_count};

/// HF `config.json` (transformers 5.24.0 `BertConfig` / `RobertaConfig`), with HF's field names.
///
/// Every field that changes what BERT or RoBERTa compute is either honoured here, with HF's
/// fallbacks, or refused by [`Config::from_json`] with an error naming it; none is silently
/// ignored:
/// - honoured: `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
///   `intermediate_size`, `hidden_act`, `hidden_dropout_prob`, `attention_probs_dropout_prob`,
///   `classifier_dropout` (`null`: `hidden_dropout_prob`, as HF's heads do),
///   `max_position_embeddings`, `type_vocab_size`, `layer_norm_eps`, `pad_token_id` (RoBERTa's
///   position ids), `initializer_range` (fresh heads), `tie_word_embeddings` (the MLM decoder);
/// - refused unless they have their default: `position_embedding_type` (`absolute`),
///   `is_decoder` and `add_cross_attention` (`false`), `problem_type` (`null` or
///   `single_label_classification`), `pruned_heads` (empty), `embedding_size` (absent or equal
///   to `hidden_size`);
/// - read elsewhere or deliberately not applied: `torch_dtype`/`dtype` (checkpoints are converted
///   to f32 on load; the compute precision is the suite's `--precision`), `id2label`/`label2id`
///   and `num_labels` (the task defines the labels), `use_cache`, `chunk_size_feed_forward`,
///   `attn_implementation`, `output_*`, `return_dict`, `gradient_checkpointing` (no numerical
///   effect).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: ModelType,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default)]
    pub hidden_act: HiddenAct,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout of the classification head; `None` falls back to `hidden_dropout_prob`.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    pub max_position_embeddings: i64,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: i64,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: i64,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// Standard deviation of freshly initialised weights (task heads).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Whether the MLM decoder shares the word embeddings (HF's default: yes).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    is_decoder: bool,
    #[serde(default)]
    add_cross_attention: bool,
    #[serde(default)]
    problem_type: Option<String>,
    #[serde(default)]
    pruned_heads: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    embedding_size: Option<i64>,
}

fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab_size() -> i64 {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_position_embedding_type() -> String {
    "absolute".to_owned()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")]
    Heads { hidden: i64, heads: i64 },
    #[error("config: `{field}` = {value} is not supported: {why}")]
    Unsupported { field: &'static str, value: String, why: &'static str },
}

impl Config {
    /// The family and shape that result files record (HF's `model_type`, `num_hidden_layers`,
    /// `hidden_size`), so that reports never read them from a model's name.
    pub fn architecture(&self) -> results::Architecture {
        results::Architecture {
            model_type: self.model_type.name().to_owned(),
            num_hidden_layers: self.num_hidden_layers as usize,
            hidden_size: self.hidden_size as usize,
        }
    }

    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_json::from_str(text)?;
        if config.hidden_size % config.num_attention_heads != 0 {
            return Err(ConfigError::Heads { hidden: config.hidden_size, heads: config.num_attention_heads });
        }
        let unsupported =
            |field: &'static str, value: String, why: &'static str| Err(ConfigError::Unsupported { field, value, why });
        if config.position_embedding_type != "absolute" {
            return unsupported(
                "position_embedding_type",
                format!("`{}`", config.position_embedding_type),
                "only absolute position embeddings are implemented",
            );
        }
        if config.is_decoder {
            return unsupported("is_decoder", "true".into(), "the encoders here are bidirectional");
        }
        if config.add_cross_attention {
            return unsupported("add_cross_attention", "true".into(), "the encoders here have no cross-attention");
        }
        if let Some(problem_type) = config.problem_type.as_deref()
            && problem_type != "single_label_classification"
        {
            return unsupported(
                "problem_type",
                format!("`{problem_type}`"),
                "the suite trains single-label classifiers (cross-entropy); use null or single_label_classification",
            );
        }
        if !config.pruned_heads.is_empty() {
            return unsupported(
                "pruned_heads",
                serde_json::to_string(&config.pruned_heads).expect("json"),
                "pruned attention heads are not implemented",
            );
        }
        if let Some(embedding_size) = config.embedding_size
            && embedding_size != config.hidden_size
        {
            return unsupported(
                "embedding_size",
                embedding_size.to_string(),
                "factorised embeddings (ELECTRA, ALBERT) are not BERT or RoBERTa: embedding_size must equal hidden_size",
            );
        }
        for (field, value) in [
            ("hidden_dropout_prob", config.hidden_dropout_prob),
            ("attention_probs_dropout_prob", config.attention_probs_dropout_prob),
            ("classifier_dropout", config.classifier_dropout.unwrap_or(0.0)),
        ] {
            if !(0.0..1.0).contains(&value) {
                return unsupported(field, value.to_string(), "a dropout probability lies in [0, 1)");
            }
        }
        Ok(config)
    }

    /// The dropout of the classification head: `classifier_dropout`, or `hidden_dropout_prob`
    /// when that is `null` (HF's `BertForSequenceClassification` and `RobertaClassificationHead`).
    pub fn head_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// The longest sequence the position table holds: `max_position_embeddings`, less RoBERTa's
    /// `pad_token_id + 1` offset (positions start after the padding index: 512 for RoBERTa-base's
    /// 514).
    pub fn max_sequence_length(&self) -> i64 {
        match self.model_type {
            ModelType::Bert => self.max_position_embeddings,
            ModelType::Roberta => self.max_position_embeddings - self.pad_token_id - 1,
        }
    }
}

/// The layer group of a parameter by its HF name under the encoder prefix `prefix` (`bert`,
/// `roberta`): `<prefix>.embeddings.*`, `<prefix>.encoder.layer.<i>.*`, and everything else
/// (pooler, classification or MLM head) as the head.
pub fn layer_group(prefix: &str, name: &str) -> LayerGroup {
    let Some(rest) = name.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')) else {
        return LayerGroup::Head;
    };
    if rest.starts_with("embeddings.") {
        return LayerGroup::Embeddings;
    }
    match rest.strip_prefix("encoder.layer.").and_then(|rest| rest.split('.').next()?.parse().ok()) {
        Some(index) => LayerGroup::Layer(index),
        None => LayerGroup::Head,
    }
}

/// Biases and LayerNorm weights are not decayed (HF `Trainer`: every parameter of an
/// `nn.LayerNorm`, and every bias). BERT names its norms `LayerNorm`, RoBERTa's LM head
/// `layer_norm`.
pub fn no_decay(name: &str) -> bool {
    name.ends_with(".bias") || name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight")
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
                || (config.model_type == ModelType::Roberta && name.ends_with("position_embeddings.weight"));
            if padding_row && config.pad_token_id < variable.size()[0] {
                let _ = variable.get(config.pad_token_id).zero_();
            }
        }
    }
}

/// `(name, shape)` of every tensor of [`SequenceClassifier`] for `config`, in the model's own
/// naming, without building it. BERT has a pooler and a `classifier` linear, RoBERTa a dense +
/// out_proj head.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    let mut shapes = encoder_classifier_layout(
        config.model_type.prefix(),
        config.vocab_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers as usize,
        n_labels,
    );
    if config.model_type == ModelType::Bert {
        let hidden = config.hidden_size;
        shapes.truncate(shapes.len() - 4);
        shapes.push(("bert.pooler.dense.weight".to_owned(), vec![hidden, hidden]));
        shapes.push(("bert.pooler.dense.bias".to_owned(), vec![hidden]));
        shapes.push(("classifier.weight".to_owned(), vec![n_labels, hidden]));
        shapes.push(("classifier.bias".to_owned(), vec![n_labels]));
    }
    shapes
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
    let mut shapes: Vec<(String, Vec<i64>)> = vec![
        (format!("{prefix}.embeddings.word_embeddings.weight"), vec![vocab_size, hidden]),
        (format!("{prefix}.embeddings.position_embeddings.weight"), vec![max_positions, hidden]),
        (format!("{prefix}.embeddings.token_type_embeddings.weight"), vec![type_vocab_size, hidden]),
        (format!("{prefix}.embeddings.LayerNorm.weight"), vec![hidden]),
        (format!("{prefix}.embeddings.LayerNorm.bias"), vec![hidden]),
    ];
    for layer_idx in 0..n_layers {
        let layer = format!("{prefix}.encoder.layer.{layer_idx}");
        for (module, out_dim, in_dim) in [
            ("attention.self.query", hidden, hidden),
            ("attention.self.key", hidden, hidden),
            ("attention.self.value", hidden, hidden),
            ("attention.output.dense", hidden, hidden),
        ] {
            shapes.push((format!("{layer}.{module}.weight"), vec![out_dim, in_dim]));
            shapes.push((format!("{layer}.{module}.bias"), vec![out_dim]));
        }
        shapes.push((format!("{layer}.attention.output.LayerNorm.weight"), vec![hidden]));
        shapes.push((format!("{layer}.attention.output.LayerNorm.bias"), vec![hidden]));
        shapes.push((format!("{layer}.intermediate.dense.weight"), vec![intermediate, hidden]));
        shapes.push((format!("{layer}.intermediate.dense.bias"), vec![intermediate]));
        shapes.push((format!("{layer}.output.dense.weight"), vec![hidden, intermediate]));
        shapes.push((format!("{layer}.output.dense.bias"), vec![hidden]));
        shapes.push((format!("{layer}.output.LayerNorm.weight"), vec![hidden]));
        shapes.push((format!("{layer}.output.LayerNorm.bias"), vec![hidden]));
    }
    shapes.push(("classifier.dense.weight".to_owned(), vec![hidden, hidden]));
    shapes.push(("classifier.dense.bias".to_owned(), vec![hidden]));
    shapes.push(("classifier.out_proj.weight".to_owned(), vec![n_labels, hidden]));
    shapes.push(("classifier.out_proj.bias".to_owned(), vec![n_labels]));
    shapes
}

fn layer_norm(p: nn::Path, config: &Config) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![config.hidden_size],
        nn::LayerNormConfig { eps: config.layer_norm_eps, ..Default::default() },
    )
}

fn linear(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(p, in_dim, out_dim, Default::default())
}

// transformers 5.24.0: BertEmbeddings / RobertaEmbeddings
#[derive(Debug)]
struct Embeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    model_type: ModelType,
    pad_token_id: i64,
}

impl Embeddings {
    fn new(p: nn::Path, config: &Config) -> Embeddings {
        let embedding =
            |name: &str, count: i64| nn::embedding(&p / name, count, config.hidden_size, Default::default());
        Embeddings {
            word_embeddings: embedding("word_embeddings", config.vocab_size),
            position_embeddings: embedding("position_embeddings", config.max_position_embeddings),
            token_type_embeddings: embedding("token_type_embeddings", config.type_vocab_size),
            layer_norm: layer_norm(&p / "LayerNorm", config),
            dropout: config.hidden_dropout_prob,
            model_type: config.model_type,
            pad_token_id: config.pad_token_id,
        }
    }

    fn forward_t(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let position_ids = match self.model_type {
            ModelType::Bert => {
                let seq_len = input_ids.size()[1];
                Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0)
            }
            ModelType::Roberta => {
                let mask = input_ids.ne(self.pad_token_id).to_kind(Kind::Int64);
                mask.cumsum(1, Kind::Int64) * &mask + self.pad_token_id
            }
        };
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(&position_ids)
            + self.token_type_embeddings.forward(token_type_ids);
        self.layer_norm.forward(&embeddings).dropout(self.dropout, train)
    }
}

// transformers 5.24.0: BertSelfAttention + BertSelfOutput
#[derive(Debug)]
struct Attention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    n_heads: i64,
    head_dim: i64,
    attention_dropout: f64,
    hidden_dropout: f64,
}

impl Attention {
    fn new(p: nn::Path, config: &Config) -> Attention {
        let hidden = config.hidden_size;
        let attention = &p / "self";
        Attention {
            query: linear(&attention / "query", hidden, hidden),
            key: linear(&attention / "key", hidden, hidden),
            value: linear(&attention / "value", hidden, hidden),
            output: linear(&p / "output" / "dense", hidden, hidden),
            layer_norm: layer_norm(&p / "output" / "LayerNorm", config),
            n_heads: config.num_attention_heads,
            head_dim: hidden / config.num_attention_heads,
            attention_dropout: config.attention_probs_dropout_prob,
            hidden_dropout: config.hidden_dropout_prob,
        }
    }

    /// `mask_bias`: `[batch, 1, 1, seq]`, 0 where attended and the dtype's minimum where masked.
    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let (batch, seq_len, width) = hidden.size3().expect("[batch, seq, hidden]");
        let heads = |x: Tensor| x.view([batch, seq_len, self.n_heads, self.head_dim]).transpose(1, 2);
        let query = heads(self.query.forward(hidden));
        let key = heads(self.key.forward(hidden));
        let value = heads(self.value.forward(hidden));
        let scores = query.matmul(&key.transpose(-1, -2)) / (self.head_dim as f64).sqrt() + mask_bias;
        let probs = scores.softmax(-1, scores.kind()).dropout(self.attention_dropout, train);
        let context = probs.matmul(&value).transpose(1, 2).contiguous().view([batch, seq_len, width]);
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

/// A BERT or RoBERTa encoder (transformers 5.24.0: BertModel / RobertaModel), optionally with BERT's pooler.
#[derive(Debug)]
pub struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<nn::Linear>,
}

impl Encoder {
    /// Registers the encoder's variables under `p` (e.g. `root / "bert"`).
    pub fn new(p: nn::Path, config: &Config, with_pooler: bool) -> Encoder {
        let layers =
            (0..config.num_hidden_layers).map(|idx| Layer::new(&p / "encoder" / "layer" / idx, config)).collect();
        Encoder {
            embeddings: Embeddings::new(&p / "embeddings", config),
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
        let kind = hidden.kind();
        let min_value = if kind == Kind::Double { f64::MIN } else { f64::from(f32::MIN) };
        let mask_bias = (attention_mask.to_kind(kind).neg() + 1.0) * min_value;
        let mask_bias = mask_bias.unsqueeze(1).unsqueeze(1);
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

// transformers 5.24.0: BertForSequenceClassification / RobertaForSequenceClassification
#[derive(Debug)]
enum Head {
    /// Pooler (in the encoder), dropout, `classifier`.
    Bert { classifier: nn::Linear },
    /// First token, dropout, `classifier.dense`, tanh, dropout, `classifier.out_proj`.
    Roberta { dense: nn::Linear, out_proj: nn::Linear },
}

/// An encoder with a sequence-classification head, named as HF names it.
#[derive(Debug)]
pub struct SequenceClassifier {
    encoder: Encoder,
    head: Head,
    dropout: f64,
    model_type: ModelType,
    parameters: usize,
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store: the encoder under `bert` or
    /// `roberta`, the head under `classifier`.
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        let model_type = config.model_type;
        let encoder = Encoder::new(&p / model_type.prefix(), config, model_type == ModelType::Bert);
        let classifier = &p / "classifier";
        let head = match model_type {
            ModelType::Bert => {
                Head::Bert { classifier: nn::linear(classifier, config.hidden_size, n_labels, Default::default()) }
            }
            ModelType::Roberta => Head::Roberta {
                dense: linear(&classifier / "dense", config.hidden_size, config.hidden_size),
                out_proj: linear(&classifier / "out_proj", config.hidden_size, n_labels),
            },
        };
        let parameters = parameter_count(&classifier_layout(config, n_labels));
        SequenceClassifier { encoder, head, dropout: config.head_dropout(), model_type, parameters }
    }

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
            Head::Roberta { dense, out_proj } => {
                let first = output.last_hidden_state.select(1, 0).dropout(self.dropout, train);
                let hidden = dense.forward(&first).tanh().dropout(self.dropout, train);
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
    /// `cls.predictions` (BERT) or `lm_head` (RoBERTa). Neither family has a pooler here.
    pub fn new(p: nn::Path, config: &Config) -> MaskedLm {
        let encoder = Encoder::new(&p / config.model_type.prefix(), config, false);
        let (head, transform, layer_norm_name, activation) = match config.model_type {
            ModelType::Bert => {
                let head = &p / "cls" / "predictions";
                let transform = &head / "transform";
                (head, transform, "LayerNorm", config.hidden_act)
            }
            // RobertaLMHead applies gelu whatever hidden_act says.
            ModelType::Roberta => {
                let head = &p / "lm_head";
                (head.clone(), head, "layer_norm", HiddenAct::Gelu)
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
                assert_eq!(config.model_type.layer_group(&name), earlier, "{name}");
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
