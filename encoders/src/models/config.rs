//! HF `config.json` of every family, read into one [`Config`] under BERT's field names (HF
//! `transformers` 5.24.0: `BertConfig`, `RobertaConfig`, `XLMRobertaConfig`, `ElectraConfig`,
//! `DistilBertConfig`, `AlbertConfig`, `BartConfig`, `T5Config`, `XLNetConfig`).
//!
//! DistilBERT names its fields otherwise (`dim`, `n_layers`, `hidden_dim`, ...); they are read
//! under their BERT names with HF's `DistilBertConfig` defaults, so that the rest of the suite
//! (shapes, tokenisation limits, result files) reads one set of names. ALBERT's defaults differ
//! from BERT's (no dropout, `gelu_new`) and its head dropout is `classifier_dropout_prob`; those
//! are read the same way. BART's encoder fields (`d_model`, `encoder_layers`, ...) are read as
//! BERT's and its decoder's as `decoder_*` fields of their own; T5's likewise (`d_model`,
//! `num_layers`, `d_ff`, `dropout_rate`, ...), with its head width `d_kv`, its relative position
//! buckets and its gated feed-forward of its own; XLNet's (`d_model`, `n_layer`, `n_head`,
//! `d_inner`, `d_head`, `ff_activation`, `summary_last_dropout`) likewise.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{HiddenAct, ModelType};
use crate::Error;

/// HF `config.json` (transformers 5.24.0), with BERT's field names.
///
/// Every field that changes what a family computes is either honoured here, with HF's
/// fallbacks, or refused by [`Config::from_json`] with an error naming it; none is silently
/// ignored:
/// - honoured: `vocab_size`, `hidden_size`, `num_hidden_layers`, `num_attention_heads`,
///   `intermediate_size`, `hidden_act`, `hidden_dropout_prob`, `attention_probs_dropout_prob`,
///   `classifier_dropout` (`null`: `hidden_dropout_prob`, as HF's heads do),
///   `max_position_embeddings`, `type_vocab_size`, `layer_norm_eps`, `pad_token_id` (RoBERTa's and
///   XLM-R's position ids), `initializer_range` (fresh heads), `tie_word_embeddings` (the MLM
///   decoder), `embedding_size` (ELECTRA's and ALBERT's factorised embeddings: HF's default 128
///   when absent), ALBERT's `num_hidden_groups` and `inner_group_num` (its shared layers) and
///   `classifier_dropout_prob` (its head dropout);
/// - DistilBERT's `dim`, `n_layers`, `n_heads`, `hidden_dim`, `activation`, `dropout`,
///   `attention_dropout` and `seq_classif_dropout`, read as the BERT fields above (its LayerNorm
///   epsilon is HF's fixed 1e-12 and it has no token types);
/// - BART's `d_model`, `encoder_layers`, `encoder_attention_heads`, `encoder_ffn_dim`,
///   `activation_function`, `dropout`, `attention_dropout`, `init_std`, read as the BERT fields
///   above (LayerNorm epsilon 1e-5, PyTorch's default that BART's norms use; no token types), and
///   its own `decoder_layers`, `decoder_attention_heads`, `decoder_ffn_dim`,
///   `activation_dropout`, `scale_embedding`, `eos_token_id` (the classification head reads the
///   last end-of-sequence token) and `decoder_start_token_id`;
/// - T5's `d_model`, `num_layers`, `num_heads`, `d_ff`, `dropout_rate` (every dropout),
///   `layer_norm_epsilon`, `num_decoder_layers` (default `num_layers`), `feed_forward_proj` (`relu`,
///   `gated-gelu` as `gelu_new`, `gated-<act>`), `initializer_factor` (a fresh head's standard
///   deviation is `factor / sqrt(d_model)`, as HF initialises `T5ClassificationHead`), and its own
///   `d_kv`, `relative_attention_num_buckets` and `relative_attention_max_distance`; T5 has no
///   position table, and the suite's longest sequence for it is `max_position_embeddings`, 512
///   unless the config sets it;
/// - XLNet's `d_model`, `n_layer`, `n_head`, `d_inner`, `d_head` (as `d_kv`), `ff_activation`,
///   `dropout` (every dropout), `summary_last_dropout` (the head's), `summary_first_dropout` and
///   `clamp_len`; `mem_len`, `reuse_len`, `same_length` and `use_mems_*` change nothing without
///   memory, which fine-tuning does not use; the suite's longest sequence for XLNet is
///   `max_position_embeddings`, 512 unless set;
/// - refused unless they have their default: `position_embedding_type` (`absolute`),
///   `is_decoder` and `add_cross_attention` (`false`), `problem_type` (`null` or
///   `single_label_classification`), `pruned_heads` (empty), `embedding_size` outside ELECTRA and
///   ALBERT (absent or equal to `hidden_size`), DistilBERT's `sinusoidal_pos_embds` (`false`),
///   BART's `encoder_layerdrop` and `decoder_layerdrop` (0), XLNet's `attn_type` (`bi`), `bi_data`
///   (`false`), `summary_type` (`last`), `summary_use_proj` (`true`), `summary_activation`
///   (`tanh`) and `summary_proj_to_labels` (`false`);
/// - read elsewhere or deliberately not applied: `torch_dtype`/`dtype` (checkpoints are converted
///   to f32 on load; the compute precision is the suite's `--precision`), `id2label`/`label2id`
///   and `num_labels` (the task defines the labels), `use_cache`, `chunk_size_feed_forward`,
///   `attn_implementation`, `output_*`, `return_dict`, `gradient_checkpointing` (no numerical
///   effect), ELECTRA's `summary_*` and DistilBERT's `qa_dropout` (heads the suite does not build).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The family (HF `model_type`); one the suite does not implement is refused.
    pub model_type: ModelType,
    /// Rows of the token embedding table (XLNet's `n_token`).
    pub vocab_size: i64,
    /// The model width (DistilBERT's `dim`; BART's, T5's and XLNet's `d_model`).
    pub hidden_size: i64,
    /// Encoder layers (DistilBERT's `n_layers`, BART's `encoder_layers`, T5's `num_layers`,
    /// XLNet's `n_layer`); ALBERT's passes through its shared layers.
    pub num_hidden_layers: i64,
    /// Attention heads of each encoder layer (DistilBERT's `n_heads`, BART's
    /// `encoder_attention_heads`, T5's `num_heads`, XLNet's `n_head`).
    pub num_attention_heads: i64,
    /// The feed-forward width (DistilBERT's `hidden_dim`, BART's `encoder_ffn_dim`, T5's `d_ff`,
    /// XLNet's `d_inner`).
    pub intermediate_size: i64,
    /// The feed-forward activation (default `gelu`; ALBERT's `gelu_new`; DistilBERT's
    /// `activation`, BART's `activation_function`, XLNet's `ff_activation`, T5's from
    /// `feed_forward_proj`).
    #[serde(default)]
    pub hidden_act: HiddenAct,
    /// Dropout of embeddings and layer outputs (default 0.1, ALBERT's 0; DistilBERT's, BART's and
    /// XLNet's `dropout`, T5's `dropout_rate`).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout of attention probabilities (default 0.1; ALBERT's and BART's 0; T5's and XLNet's
    /// are `hidden_dropout_prob`).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout of the classification head; `None` falls back to `hidden_dropout_prob`.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Rows of the learned position table (BART's has 2 more, HF's offset); for T5 and XLNet,
    /// which have none, the longest sequence the suite feeds them (512 unless set).
    pub max_position_embeddings: i64,
    /// Rows of the token type table (default 2; 0 for DistilBERT, BART, T5 and XLNet, which
    /// have none).
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: i64,
    /// LayerNorm epsilon (default 1e-12; BART's 1e-5; T5's `layer_norm_epsilon`, default 1e-6).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// The padding token (default 0; RoBERTa's, XLM-R's and BART's 1, XLNet's 5): RoBERTa's and
    /// XLM-R's position ids start after it; BART and T5 pad their shifted decoder input with it.
    #[serde(default)]
    pub pad_token_id: i64,
    /// HF's `position_embedding_type`; anything but `absolute` (the default) is refused.
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// Standard deviation of freshly initialised weights (task heads).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// Whether the MLM decoder shares the word embeddings (HF's default: yes).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// The width of the token, position and type embeddings where it differs from
    /// `hidden_size` (ELECTRA, ALBERT; [`Config::embedding_size`] gives the width in every case).
    #[serde(default)]
    embedding_size: Option<i64>,
    /// ALBERT: the number of stored (shared) layer groups.
    #[serde(default = "default_one")]
    pub num_hidden_groups: i64,
    /// ALBERT: the layers in each shared group.
    #[serde(default = "default_one")]
    pub inner_group_num: i64,
    /// BART: decoder layers (0 for encoder-only families).
    #[serde(default)]
    pub decoder_layers: i64,
    /// BART: the decoder's attention heads.
    #[serde(default)]
    pub decoder_attention_heads: i64,
    /// BART: the decoder's feed-forward width.
    #[serde(default)]
    pub decoder_ffn_dim: i64,
    /// BART: dropout after the feed-forward activation.
    #[serde(default)]
    pub activation_dropout: f64,
    /// BART: whether token embeddings are scaled by `sqrt(d_model)`.
    #[serde(default)]
    pub scale_embedding: bool,
    /// The end-of-sequence token (BART's head reads the last one); `null` in other families.
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    /// BART: the first token of the decoder's input (the input shifted right).
    #[serde(default)]
    pub decoder_start_token_id: Option<i64>,
    /// T5: the width of each attention head (`d_kv`; `hidden_size / num_attention_heads` elsewhere).
    #[serde(default)]
    pub d_kv: Option<i64>,
    /// T5: a gated feed-forward (`feed_forward_proj: gated-*`, T5 v1.1).
    #[serde(default)]
    pub gated_act: bool,
    /// T5: relative position buckets of the attention bias.
    #[serde(default)]
    pub relative_attention_num_buckets: i64,
    /// T5: the distance beyond which relative positions share a bucket.
    #[serde(default)]
    pub relative_attention_max_distance: i64,
    /// XLNet: relative positions beyond this are clamped (`clamp_len`; none when not positive).
    #[serde(default)]
    pub clamp_len: i64,
    /// XLNet: dropout before the summary projection.
    #[serde(default)]
    pub summary_first_dropout: f64,
    #[serde(default)]
    encoder_layerdrop: f64,
    #[serde(default)]
    decoder_layerdrop: f64,
    #[serde(default)]
    is_decoder: bool,
    #[serde(default)]
    add_cross_attention: bool,
    #[serde(default)]
    problem_type: Option<String>,
    #[serde(default)]
    pruned_heads: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    sinusoidal_pos_embds: bool,
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
fn default_one() -> i64 {
    1
}

/// ELECTRA's and ALBERT's `embedding_size` when a config omits it (transformers 5.24.0
/// `ElectraConfig`, `AlbertConfig`).
const FACTORISED_DEFAULT_EMBEDDING_SIZE: i64 = 128;

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Reads a family's own field `own` as BERT's `bert` (HF's `attribute_map`: a config may also
/// carry the BERT name as an alias, as transformers 4.x wrote `num_hidden_layers` into BART's
/// configs): the family's value, else the alias's, else HF's `default`. Both present with
/// different values is refused, naming both.
fn aliased(map: &mut JsonMap, own: &'static str, bert: &'static str, default: serde_json::Value) -> Result<(), Error> {
    let mine = map.remove(own).filter(|value| !value.is_null());
    let alias = if own == bert { None } else { map.remove(bert).filter(|value| !value.is_null()) };
    let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    };
    let value = match (mine, alias) {
        (Some(mine), Some(alias)) if !same(&mine, &alias) => {
            return Err(Error::Unsupported {
                field: bert,
                value: format!("{alias} (and `{own}` = {mine})"),
                why: "the config gives this size twice, under the family's name and BERT's, with different values: fix \
                      the file",
            });
        }
        (Some(mine), _) => mine,
        (None, Some(alias)) => alias,
        (None, None) => default,
    };
    map.insert(bert.to_owned(), value);
    Ok(())
}

fn unsupported_early(field: &'static str, value: i64) -> Result<Config, Error> {
    Err(Error::Unsupported { field, value: value.to_string(), why: "a size is at least 1" })
}

/// Sets `field` to `default` where the config omits it or gives null.
fn default_of(map: &mut JsonMap, field: &str, default: serde_json::Value) {
    if map.get(field).is_none_or(serde_json::Value::is_null) {
        map.insert(field.to_owned(), default);
    }
}

/// T5's fields under BERT's names, with HF's `T5Config` defaults (transformers 5.24.0) where the
/// config omits them.
fn t5_as_bert(mut map: JsonMap) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    aliased(&mut map, "d_model", "hidden_size", json!(512))?;
    aliased(&mut map, "num_layers", "num_hidden_layers", json!(6))?;
    aliased(&mut map, "num_heads", "num_attention_heads", json!(8))?;
    aliased(&mut map, "d_ff", "intermediate_size", json!(2048))?;
    aliased(&mut map, "d_kv", "d_kv", json!(64))?;
    aliased(&mut map, "dropout_rate", "hidden_dropout_prob", json!(0.1))?;
    aliased(&mut map, "layer_norm_epsilon", "layer_norm_eps", json!(1e-6))?;
    let layers = map["num_hidden_layers"].clone();
    aliased(&mut map, "num_decoder_layers", "decoder_layers", layers)?;
    let (heads, ff, dropout) =
        (map["num_attention_heads"].clone(), map["intermediate_size"].clone(), map["hidden_dropout_prob"].clone());
    map.insert("decoder_attention_heads".to_owned(), heads);
    map.insert("decoder_ffn_dim".to_owned(), ff);
    map.insert("attention_probs_dropout_prob".to_owned(), dropout);
    let factor = map.remove("initializer_factor").and_then(|value| value.as_f64()).unwrap_or(1.0);
    let d = map["hidden_size"].as_f64().unwrap_or(512.0);
    // HF initialises T5ClassificationHead's weights with std factor / sqrt(d_model).
    map.insert("initializer_range".to_owned(), json!(factor / d.sqrt()));
    let projection = map.remove("feed_forward_proj").filter(|value| !value.is_null()).unwrap_or(json!("relu"));
    let projection = projection.as_str().unwrap_or("relu").to_owned();
    // HF's T5Config: `<act>` or `gated-<act>`, and `gated-gelu` means gelu_new.
    let (gated, activation) = match projection.split('-').collect::<Vec<_>>()[..] {
        [act] => (false, act.to_owned()),
        ["gated", "gelu"] => (true, "gelu_new".to_owned()),
        ["gated", act] => (true, act.to_owned()),
        _ => {
            return Err(Error::Unsupported {
                field: "feed_forward_proj",
                value: format!("`{projection}`"),
                why: "T5's feed_forward_proj is `<activation>` or `gated-<activation>` (e.g. `relu`, `gated-gelu`)",
            });
        }
    };
    // Derived by HF from feed_forward_proj; a saved config repeats them.
    map.remove("dense_act_fn");
    map.remove("is_gated_act");
    map.insert("hidden_act".to_owned(), json!(activation));
    map.insert("gated_act".to_owned(), json!(gated));
    map.insert("type_vocab_size".to_owned(), json!(0));
    for (field, default) in [
        ("relative_attention_num_buckets", json!(32)),
        ("relative_attention_max_distance", json!(128)),
        ("classifier_dropout", json!(0.0)),
        ("pad_token_id", json!(0)),
        ("eos_token_id", json!(1)),
        ("max_position_embeddings", json!(512)),
    ] {
        default_of(&mut map, field, default);
    }
    Ok(serde_json::Value::Object(map))
}

/// XLNet's fields under BERT's names, with HF's `XLNetConfig` defaults (transformers 5.24.0)
/// where the config omits them; the settings that would change what the suite computes, and that
/// it does not implement, refused by name.
fn xlnet_as_bert(mut map: JsonMap) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    for (field, default, why) in [
        ("attn_type", json!("bi"), "fine-tuning XLNet uses bidirectional attention (`bi`)"),
        ("bi_data", json!(false), "bidirectional data pipelines are a pre-training setting"),
        ("summary_type", json!("last"), "the suite implements XLNet's own summary, the last token"),
        ("summary_use_proj", json!(true), "the suite implements XLNet's summary with its projection"),
        ("summary_activation", json!("tanh"), "the suite implements XLNet's tanh summary"),
        ("summary_proj_to_labels", json!(false), "a summary projected to the labels is not implemented"),
    ] {
        if let Some(value) = map.get(field).filter(|value| !value.is_null())
            && *value != default
        {
            return Err(Error::Unsupported { field, value: value.to_string(), why });
        }
    }
    aliased(&mut map, "n_token", "vocab_size", json!(32000))?;
    aliased(&mut map, "d_model", "hidden_size", json!(1024))?;
    aliased(&mut map, "n_layer", "num_hidden_layers", json!(24))?;
    aliased(&mut map, "n_head", "num_attention_heads", json!(16))?;
    aliased(&mut map, "d_inner", "intermediate_size", json!(4096))?;
    let heads = map["num_attention_heads"].as_i64().unwrap_or(16).max(1);
    let d_head = json!(map["hidden_size"].as_i64().unwrap_or(1024) / heads);
    aliased(&mut map, "d_head", "d_kv", d_head)?;
    aliased(&mut map, "ff_activation", "hidden_act", json!("gelu"))?;
    aliased(&mut map, "dropout", "hidden_dropout_prob", json!(0.1))?;
    let dropout = map["hidden_dropout_prob"].clone();
    map.insert("attention_probs_dropout_prob".to_owned(), dropout);
    aliased(&mut map, "summary_last_dropout", "classifier_dropout", json!(0.1))?;
    map.insert("type_vocab_size".to_owned(), json!(0));
    for (field, default) in
        [("pad_token_id", json!(5)), ("clamp_len", json!(-1)), ("max_position_embeddings", json!(512))]
    {
        default_of(&mut map, field, default);
    }
    Ok(serde_json::Value::Object(map))
}

/// BART's fields under BERT's names, with HF's `BartConfig` defaults (transformers 5.24.0) where
/// the config omits them; the decoder's fields keep their names.
fn bart_as_bert(mut map: JsonMap) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    aliased(&mut map, "d_model", "hidden_size", json!(1024))?;
    aliased(&mut map, "encoder_layers", "num_hidden_layers", json!(12))?;
    aliased(&mut map, "encoder_attention_heads", "num_attention_heads", json!(16))?;
    aliased(&mut map, "encoder_ffn_dim", "intermediate_size", json!(4096))?;
    aliased(&mut map, "dropout", "hidden_dropout_prob", json!(0.1))?;
    aliased(&mut map, "attention_dropout", "attention_probs_dropout_prob", json!(0.0))?;
    aliased(&mut map, "init_std", "initializer_range", json!(0.02))?;
    aliased(&mut map, "activation_function", "hidden_act", json!("gelu"))?;
    for (field, default) in [
        ("max_position_embeddings", json!(1024)),
        ("decoder_layers", json!(12)),
        ("decoder_attention_heads", json!(16)),
        ("decoder_ffn_dim", json!(4096)),
        ("activation_dropout", json!(0.0)),
        ("classifier_dropout", json!(0.0)),
        ("pad_token_id", json!(1)),
        ("eos_token_id", json!(2)),
        ("decoder_start_token_id", json!(2)),
        ("scale_embedding", json!(false)),
    ] {
        default_of(&mut map, field, default);
    }
    // nn.LayerNorm's default epsilon; no token type embeddings.
    map.insert("layer_norm_eps".to_owned(), json!(1e-5));
    map.insert("type_vocab_size".to_owned(), json!(0));
    Ok(serde_json::Value::Object(map))
}

/// ALBERT's defaults where they differ from the fields' defaults here (transformers 5.24.0
/// `AlbertConfig`); `classifier_dropout_prob` is read as `classifier_dropout`.
fn albert_as_bert(mut map: JsonMap) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    for (field, default) in [
        ("hidden_act", json!("gelu_new")),
        ("hidden_dropout_prob", json!(0.0)),
        ("attention_probs_dropout_prob", json!(0.0)),
        ("embedding_size", json!(FACTORISED_DEFAULT_EMBEDDING_SIZE)),
    ] {
        default_of(&mut map, field, default);
    }
    if map.get("classifier_dropout").is_some_and(|value| !value.is_null()) {
        return Err(Error::Unsupported {
            field: "classifier_dropout",
            value: map["classifier_dropout"].to_string(),
            why: "ALBERT's head dropout is `classifier_dropout_prob`; HF ignores `classifier_dropout` for ALBERT: \
                  remove it",
        });
    }
    map.remove("classifier_dropout");
    aliased(&mut map, "classifier_dropout_prob", "classifier_dropout", json!(0.1))?;
    Ok(serde_json::Value::Object(map))
}

/// DistilBERT's fields under BERT's names, with HF's `DistilBertConfig` defaults (transformers
/// 5.24.0) where the config omits them.
fn distilbert_as_bert(mut map: JsonMap) -> Result<serde_json::Value, Error> {
    use serde_json::json;
    aliased(&mut map, "dim", "hidden_size", json!(768))?;
    aliased(&mut map, "n_layers", "num_hidden_layers", json!(6))?;
    aliased(&mut map, "n_heads", "num_attention_heads", json!(12))?;
    aliased(&mut map, "hidden_dim", "intermediate_size", json!(3072))?;
    aliased(&mut map, "dropout", "hidden_dropout_prob", json!(0.1))?;
    aliased(&mut map, "attention_dropout", "attention_probs_dropout_prob", json!(0.1))?;
    aliased(&mut map, "seq_classif_dropout", "classifier_dropout", json!(0.2))?;
    aliased(&mut map, "activation", "hidden_act", json!("gelu"))?;
    default_of(&mut map, "max_position_embeddings", json!(512));
    // Hard-coded in HF's DistilBERT modules; it has no token type embeddings.
    map.insert("layer_norm_eps".to_owned(), json!(1e-12));
    map.insert("type_vocab_size".to_owned(), json!(0));
    Ok(serde_json::Value::Object(map))
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

    /// Reads an HF `config.json` of any of the suite's families ([`ModelType`]).
    ///
    /// # Errors
    /// Invalid JSON, an unknown `model_type` (the message lists the known ones), a field missing,
    /// or a field that would change the computation and is not implemented, named.
    pub fn from_json(text: &str) -> Result<Config, Error> {
        Config::from_value(serde_json::from_str(text)?)
    }

    /// [`Config::from_json`] for the `config.json` of the checkpoint called `name` (a hub
    /// repository such as `google/bert_uncased_L-4_H-256_A-4`, or a folder's name). A config
    /// without `model_type` (Google's original BERT configs, which the BERT miniatures' 2020
    /// commits hold) takes the family whose `model_type` is the longest one `name` contains: the
    /// fallback of HF's `AutoConfig.from_pretrained` (transformers
    /// `models/auto/configuration_auto.py`), which matches longer names first so that
    /// `xlm-roberta` wins over `roberta` and `roberta` over `bert`. Only the suite's families are
    /// matched (HF matches all of its own): a name such as `mobilebert-...` reads as BERT here, and
    /// the weights' check then refuses what does not fit.
    ///
    /// # Errors
    /// Those of [`Config::from_json`]; a config without `model_type` whose `name` contains no
    /// family's.
    pub fn from_json_named(text: &str, name: &str) -> Result<Config, Error> {
        let mut value: serde_json::Value = serde_json::from_str(text)?;
        if let serde_json::Value::Object(map) = &mut value
            && !map.contains_key("model_type")
        {
            let family = ModelType::ALL
                .iter()
                .map(|family| family.name())
                .filter(|family| name.contains(family))
                .max_by_key(|family| family.len())
                .ok_or_else(|| Error::NoModelType { name: name.to_owned() })?;
            map.insert("model_type".to_owned(), serde_json::json!(family));
        }
        Config::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Config, Error> {
        let value = match value {
            serde_json::Value::Object(mut map) => match map.get("model_type").and_then(|v| v.as_str()) {
                Some("distilbert") => distilbert_as_bert(map)?,
                // HF's RobertaConfig and XLMRobertaConfig: padding is token 1 (BERT's default is 0).
                Some("roberta" | "xlm-roberta") => {
                    default_of(&mut map, "pad_token_id", serde_json::json!(1));
                    serde_json::Value::Object(map)
                }
                Some("albert") => albert_as_bert(map)?,
                Some("bart") => bart_as_bert(map)?,
                Some("t5") => t5_as_bert(map)?,
                Some("xlnet") => xlnet_as_bert(map)?,
                _ => serde_json::Value::Object(map),
            },
            other => other,
        };
        let config: Config = serde_json::from_value(value)?;
        for (field, value) in [
            ("num_attention_heads", config.num_attention_heads),
            ("hidden_size", config.hidden_size),
            ("intermediate_size", config.intermediate_size),
            ("vocab_size", config.vocab_size),
        ] {
            if value < 1 {
                return unsupported_early(field, value);
            }
        }
        if config.hidden_size % config.num_attention_heads != 0 && config.model_type != ModelType::T5 {
            return Err(Error::Heads { hidden: config.hidden_size, heads: config.num_attention_heads });
        }
        let unsupported =
            |field: &'static str, value: String, why: &'static str| Err(Error::Unsupported { field, value, why });
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
            && !matches!(config.model_type, ModelType::Electra | ModelType::Albert)
        {
            return unsupported(
                "embedding_size",
                embedding_size.to_string(),
                "factorised embeddings are ELECTRA's and ALBERT's: for this model_type, embedding_size must equal \
                 hidden_size",
            );
        }
        let groups = (config.num_hidden_groups, config.inner_group_num);
        if groups != (1, 1) && config.model_type != ModelType::Albert {
            return unsupported(
                "num_hidden_groups",
                format!("{groups:?} (with inner_group_num)"),
                "shared layer groups are ALBERT's: leave both at 1",
            );
        }
        if config.num_hidden_groups < 1
            || config.inner_group_num < 1
            || config.num_hidden_groups > config.num_hidden_layers.max(1)
        {
            return unsupported(
                "num_hidden_groups",
                format!("{} (inner_group_num {})", config.num_hidden_groups, config.inner_group_num),
                "ALBERT needs 1 <= num_hidden_groups <= num_hidden_layers and inner_group_num >= 1",
            );
        }
        if config.encoder_layerdrop != 0.0 || config.decoder_layerdrop != 0.0 {
            return unsupported(
                "encoder_layerdrop",
                format!("{} (decoder_layerdrop {})", config.encoder_layerdrop, config.decoder_layerdrop),
                "LayerDrop (skipping layers at random in training) is not implemented; set both to 0",
            );
        }
        if matches!(config.model_type, ModelType::Bart | ModelType::T5) {
            if config.eos_token_id.is_none() || config.decoder_start_token_id.is_none() {
                return unsupported(
                    "eos_token_id",
                    "null".into(),
                    "BART's and T5's classification heads read the last end-of-sequence token and their decoders \
                     start from decoder_start_token_id: set both",
                );
            }
            if config.num_hidden_layers < 1
                || config.decoder_layers < 1
                || config.decoder_attention_heads < 1
                || config.decoder_ffn_dim < 1
            {
                return unsupported(
                    "decoder_layers",
                    config.decoder_layers.to_string(),
                    "an encoder-decoder needs at least one encoder and one decoder layer, and decoder_attention_heads \
                     and decoder_ffn_dim of at least 1",
                );
            }
            if config.hidden_size % config.decoder_attention_heads != 0 && config.model_type == ModelType::Bart {
                return Err(Error::Heads { hidden: config.hidden_size, heads: config.decoder_attention_heads });
            }
        } else if config.decoder_layers != 0 {
            return unsupported(
                "decoder_layers",
                config.decoder_layers.to_string(),
                "only BART and T5 have a decoder here",
            );
        }
        if config.sinusoidal_pos_embds {
            return unsupported(
                "sinusoidal_pos_embds",
                "true".into(),
                "DistilBERT's fixed sinusoidal position table is not implemented (public DistilBERT checkpoints \
                 learn theirs)",
            );
        }
        for (field, value) in [
            ("hidden_dropout_prob", config.hidden_dropout_prob),
            ("attention_probs_dropout_prob", config.attention_probs_dropout_prob),
            ("classifier_dropout", config.classifier_dropout.unwrap_or(0.0)),
            ("activation_dropout", config.activation_dropout),
            ("summary_first_dropout", config.summary_first_dropout),
        ] {
            if !(0.0..1.0).contains(&value) {
                return unsupported(field, value.to_string(), "a dropout probability lies in [0, 1)");
            }
        }
        Ok(config)
    }

    /// The dropout of the classification head: `classifier_dropout`, or `hidden_dropout_prob`
    /// when that is `null` (HF's `BertForSequenceClassification`, `RobertaClassificationHead`,
    /// `ElectraClassificationHead`; DistilBERT's `seq_classif_dropout`).
    pub fn head_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// The layer group of the parameter named `name` of this config's classifier (SAID's
    /// per-layer scales): BART numbers its decoder's layers after its encoder's
    /// (`Layer(encoder_layers + i)`), which its name alone does not say; every other family
    /// answers from the name. The one public lookup before a model is built, for every family.
    pub fn layer_group(&self, name: &str) -> subspace::LayerGroup {
        match self.model_type {
            ModelType::Bart => super::bart::layer_group(name, self.num_hidden_layers as usize),
            ModelType::T5 => {
                super::t5::layer_group(name, self.num_hidden_layers as usize, self.decoder_layers as usize)
            }
            other => other.layer_group_from_name(name).expect("every other family answers from the name"),
        }
    }

    /// The width of the token, position and type embeddings: `embedding_size` for ELECTRA and
    /// ALBERT (HF's default 128 when the config omits it), `hidden_size` for every other family.
    pub fn embedding_size(&self) -> i64 {
        match self.model_type {
            ModelType::Electra | ModelType::Albert => self.embedding_size.unwrap_or(FACTORISED_DEFAULT_EMBEDDING_SIZE),
            _ => self.hidden_size,
        }
    }

    /// The longest sequence the position table holds: `max_position_embeddings`, less RoBERTa's
    /// (and XLM-R's) `pad_token_id + 1` offset (positions start after the padding index: 512 for
    /// RoBERTa-base's 514). BART's table has `max_position_embeddings + 2` rows (its offset of 2),
    /// so it holds `max_position_embeddings`.
    pub fn max_sequence_length(&self) -> i64 {
        if self.model_type.positions_after_padding() {
            self.max_position_embeddings - self.pad_token_id - 1
        } else {
            self.max_position_embeddings
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distilbert_fields_are_read_under_berts_names_with_hfs_defaults() {
        let config =
            Config::from_json(r#"{"model_type": "distilbert", "vocab_size": 30522, "dim": 64, "n_heads": 4}"#).unwrap();
        assert_eq!((config.hidden_size, config.num_attention_heads), (64, 4));
        assert_eq!(
            (config.num_hidden_layers, config.intermediate_size, config.max_position_embeddings),
            (6, 3072, 512)
        );
        assert_eq!(config.classifier_dropout, Some(0.2));
        assert_eq!((config.layer_norm_eps, config.type_vocab_size), (1e-12, 0));
        let relu =
            Config::from_json(r#"{"model_type": "distilbert", "vocab_size": 10, "activation": "relu"}"#).unwrap();
        assert_eq!(relu.hidden_act, HiddenAct::Relu);
        // HF's attribute_map: BERT's name is an alias; equal is fine, different is refused.
        let both = Config::from_json(
            r#"{"model_type": "distilbert", "vocab_size": 10, "dim": 64, "hidden_size": 64, "n_heads": 4}"#,
        );
        assert_eq!(both.unwrap().hidden_size, 64);
        let alias =
            Config::from_json(r#"{"model_type": "distilbert", "vocab_size": 10, "hidden_size": 64, "n_heads": 4}"#);
        assert_eq!(alias.unwrap().hidden_size, 64);
        let both = Config::from_json(
            r#"{"model_type": "distilbert", "vocab_size": 10, "dim": 64, "hidden_size": 32, "n_heads": 4}"#,
        );
        assert!(both.unwrap_err().to_string().contains("gives this size twice"));
        let sinusoidal =
            Config::from_json(r#"{"model_type": "distilbert", "vocab_size": 10, "sinusoidal_pos_embds": true}"#);
        assert!(sinusoidal.unwrap_err().to_string().contains("sinusoidal_pos_embds"));
    }

    /// transformers 4.x wrote BART's `num_hidden_layers` (an alias of `encoder_layers`) into its
    /// configs, as facebook/bart-base's has.
    #[test]
    fn bart_configs_with_berts_aliases_are_read() {
        let text = r#"{"model_type": "bart", "vocab_size": 50265, "d_model": 768, "encoder_layers": 6,
            "decoder_layers": 6, "encoder_attention_heads": 12, "decoder_attention_heads": 12, "encoder_ffn_dim": 3072,
            "decoder_ffn_dim": 3072, "num_hidden_layers": 6, "max_position_embeddings": 1024, "classifier_dropout": null,
            "eos_token_id": 2, "pad_token_id": 1, "decoder_start_token_id": 2}"#;
        let config = Config::from_json(text).unwrap();
        assert_eq!((config.num_hidden_layers, config.hidden_size, config.head_dropout()), (6, 768, 0.0));
        let conflicting = text.replace(r#""num_hidden_layers": 6"#, r#""num_hidden_layers": 12"#);
        assert!(Config::from_json(&conflicting).unwrap_err().to_string().contains("`encoder_layers` = 6"));
        let t5 = r#"{"model_type": "t5", "vocab_size": 100, "d_model": 64, "num_heads": 4, "decoder_start_token_id": 0,
            "classifier_dropout": null}"#;
        assert_eq!(Config::from_json(t5).unwrap().head_dropout(), 0.0, "T5's null head dropout is HF's 0.0");
    }

    #[test]
    fn embedding_size_is_electras_alone() {
        let sizes = r#""vocab_size": 10, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
                       "intermediate_size": 64, "max_position_embeddings": 16"#;
        let electra = Config::from_json(&format!(r#"{{"model_type": "electra", {sizes}}}"#)).unwrap();
        assert_eq!(electra.embedding_size(), 128, "HF's default");
        let electra =
            Config::from_json(&format!(r#"{{"model_type": "electra", "embedding_size": 16, {sizes}}}"#)).unwrap();
        assert_eq!(electra.embedding_size(), 16);
        let bert = Config::from_json(&format!(r#"{{"model_type": "bert", "embedding_size": 16, {sizes}}}"#));
        assert!(bert.unwrap_err().to_string().contains("embedding_size"));
        let xlmr =
            Config::from_json(&format!(r#"{{"model_type": "xlm-roberta", "pad_token_id": 1, {sizes}}}"#)).unwrap();
        assert_eq!((xlmr.model_type, xlmr.max_sequence_length()), (ModelType::XlmRoberta, 14));
        let albert = Config::from_json(&format!(r#"{{"model_type": "albert", {sizes}}}"#)).unwrap();
        assert_eq!(albert.embedding_size(), 128);
        assert_eq!(
            (albert.hidden_dropout_prob, albert.head_dropout(), albert.hidden_act),
            (0.0, 0.1, HiddenAct::GeluTanh)
        );
        let albert =
            Config::from_json(&format!(r#"{{"model_type": "albert", "classifier_dropout_prob": 0.3, {sizes}}}"#));
        assert_eq!(albert.unwrap().head_dropout(), 0.3);
        let shared = Config::from_json(&format!(r#"{{"model_type": "bert", "num_hidden_groups": 2, {sizes}}}"#));
        assert!(shared.unwrap_err().to_string().contains("ALBERT's"));
        let roberta = Config::from_json(&format!(r#"{{"model_type": "roberta", {sizes}}}"#)).unwrap();
        assert_eq!(roberta.pad_token_id, 1, "HF's RobertaConfig default");
        let no_heads = r#"{"model_type": "t5", "num_heads": 0, "vocab_size": 10, "decoder_start_token_id": 0}"#;
        assert!(Config::from_json(no_heads).unwrap_err().to_string().contains("num_attention_heads"));
        let unknown = Config::from_json(&format!(r#"{{"model_type": "gpt2", {sizes}}}"#)).unwrap_err().to_string();
        assert!(unknown.contains("gpt2") && unknown.contains("distilbert"), "{unknown}");
    }

    #[test]
    fn a_config_without_model_type_takes_the_family_its_name_names_as_hf_infers_it() {
        // The BERT miniatures' 2020 config.json (Google's original bert_config.json, as published).
        let original = r#"{"hidden_size": 256, "hidden_act": "gelu", "initializer_range": 0.02, "vocab_size": 30522,
            "hidden_dropout_prob": 0.1, "num_attention_heads": 4, "type_vocab_size": 2,
            "max_position_embeddings": 512, "num_hidden_layers": 4, "intermediate_size": 1024,
            "attention_probs_dropout_prob": 0.1}"#;
        let bert = Config::from_json_named(original, "bert_uncased_L-4_H-256_A-4@6c36e823").unwrap();
        assert_eq!((bert.model_type, bert.layer_norm_eps, bert.pad_token_id), (ModelType::Bert, 1e-12, 0));
        assert!(Config::from_json(original).unwrap_err().to_string().contains("model_type"));
        // The longest family name wins, as in HF's fallback.
        for (name, family) in [
            ("xlm-roberta-base@e73636d4", ModelType::XlmRoberta),
            ("roberta-base", ModelType::Roberta),
            ("distilbert-base-uncased", ModelType::DistilBert),
            ("albert-base-v2", ModelType::Albert),
        ] {
            assert_eq!(Config::from_json_named(original, name).unwrap().model_type, family, "{name}");
        }
        // A model_type given is never replaced by the name's.
        let given = original.replacen('{', r#"{"model_type": "electra","#, 1);
        assert_eq!(Config::from_json_named(&given, "bert-folder").unwrap().model_type, ModelType::Electra);
        let unnamed = Config::from_json_named(original, "my-model").unwrap_err().to_string();
        assert!(unnamed.contains("`my-model`") && unnamed.contains("\"model_type\""), "{unnamed}");
    }
}
