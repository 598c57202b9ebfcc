//! BERT and RoBERTa encoders in tch, numerically faithful to HF `transformers`, with their
//! sequence-classification heads.
//!
//! One encoder serves both families; RoBERTa's differences are configuration: position ids start
//! after the padding index (`padding_idx + 1 + cumsum(mask)`, HF's
//! `create_position_ids_from_input_ids`), a single token type, and its classification head (dense,
//! tanh, out_proj on the first token) instead of BERT's pooler, dropout and linear.
//!
//! Variable paths spell HF names exactly (`bert.encoder.layer.0.attention.self.query.weight`), so a
//! checkpoint loads with no renaming table; loading lives in `checkpoint`, and this file does no IO.

use serde::Deserialize;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// HF `config.json`, with HF's field names.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: ModelType,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
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
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")]
    Heads { hidden: i64, heads: i64 },
    #[error("config: hidden_act `{0}` is not supported (gelu, relu, gelu_new)")]
    Activation(String),
    #[error("config: position_embedding_type `{0}` is not supported (absolute)")]
    PositionEmbedding(String),
}

impl Config {
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_json::from_str(text)?;
        if config.hidden_size % config.num_attention_heads != 0 {
            return Err(ConfigError::Heads { hidden: config.hidden_size, heads: config.num_attention_heads });
        }
        if !["gelu", "relu", "gelu_new"].contains(&config.hidden_act.as_str()) {
            return Err(ConfigError::Activation(config.hidden_act));
        }
        if config.position_embedding_type != "absolute" {
            return Err(ConfigError::PositionEmbedding(config.position_embedding_type));
        }
        Ok(config)
    }
}

fn activation(name: &str, x: &Tensor) -> Tensor {
    match name {
        "relu" => x.relu(),
        "gelu_new" => x.gelu("tanh"),
        _ => x.gelu("none"),
    }
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

// transformers: BertEmbeddings / RobertaEmbeddings
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

// transformers: BertSelfAttention + BertSelfOutput
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

// transformers: BertLayer (attention, BertIntermediate, BertOutput)
#[derive(Debug)]
struct Layer {
    attention: Attention,
    intermediate: nn::Linear,
    output: nn::Linear,
    layer_norm: nn::LayerNorm,
    activation: String,
    dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, config: &Config) -> Layer {
        Layer {
            attention: Attention::new(&p / "attention", config),
            intermediate: linear(&p / "intermediate" / "dense", config.hidden_size, config.intermediate_size),
            output: linear(&p / "output" / "dense", config.intermediate_size, config.hidden_size),
            layer_norm: layer_norm(&p / "output" / "LayerNorm", config),
            activation: config.hidden_act.clone(),
            dropout: config.hidden_dropout_prob,
        }
    }

    fn forward_t(&self, hidden: &Tensor, mask_bias: &Tensor, train: bool) -> Tensor {
        let attended = self.attention.forward_t(hidden, mask_bias, train);
        let intermediate = activation(&self.activation, &self.intermediate.forward(&attended));
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

/// A BERT or RoBERTa encoder (transformers: BertModel / RobertaModel), optionally with BERT's pooler.
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

// transformers: BertForSequenceClassification / RobertaForSequenceClassification
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
        SequenceClassifier { encoder, head, dropout: config.hidden_dropout_prob }
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

// transformers: BertForMaskedLM (BertOnlyMLMHead) / RobertaForMaskedLM (RobertaLMHead)
/// An encoder with its masked-language-model head: dense, activation, LayerNorm, then a decoder
/// tied to the word embeddings plus a bias (for the pre-training experiments).
#[derive(Debug)]
pub struct MaskedLm {
    encoder: Encoder,
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    bias: Tensor,
    activation: String,
}

impl MaskedLm {
    /// Registers the variables as HF names them: the encoder under `bert`/`roberta`, the head under
    /// `cls.predictions` (BERT) or `lm_head` (RoBERTa). Neither family has a pooler here.
    pub fn new(p: nn::Path, config: &Config) -> MaskedLm {
        let encoder = Encoder::new(&p / config.model_type.prefix(), config, false);
        let (dense, layer_norm, bias, activation) = match config.model_type {
            ModelType::Bert => {
                let head = &p / "cls" / "predictions";
                (
                    linear(&head / "transform" / "dense", config.hidden_size, config.hidden_size),
                    layer_norm(&head / "transform" / "LayerNorm", config),
                    head.zeros("bias", &[config.vocab_size]),
                    config.hidden_act.clone(),
                )
            }
            ModelType::Roberta => {
                let head = &p / "lm_head";
                (
                    linear(&head / "dense", config.hidden_size, config.hidden_size),
                    layer_norm(&head / "layer_norm", config),
                    head.zeros("bias", &[config.vocab_size]),
                    // RobertaLMHead applies gelu whatever hidden_act says.
                    "gelu".to_owned(),
                )
            }
        };
        MaskedLm { encoder, dense, layer_norm, bias, activation }
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
        let transformed = self.layer_norm.forward(&activation(&self.activation, &self.dense.forward(&hidden)));
        transformed.matmul(&self.encoder.word_embeddings().transpose(0, 1)) + &self.bias
    }
}
