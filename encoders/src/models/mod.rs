//! Model families behind one trait, one file per family (BERT, RoBERTa, XLM-R and ELECTRA share
//! one, as HF's RoBERTa, XLM-R and ELECTRA copy BERT's layers). A family says everything the
//! trainer and the subspace need to know about its parameters, by their HF names, so no other
//! module guesses from a name: the layer group of each parameter (SAID's per-layer scales), which
//! ones are exempt from weight decay, and the layout (names and shapes) of its classifier, from
//! which its parameter count follows.
//!
//! - [`bert`]: BERT, RoBERTa, XLM-R and ELECTRA (`BertModel`, `RobertaModel`, `XLMRobertaModel`,
//!   `ElectraModel` and their classification heads; BERT's and RoBERTa's MLM heads).
//! - [`distilbert`]: DistilBERT and its classification head.
//! - [`albert`]: ALBERT (factorised embeddings, layers shared across depth) and its head.
//! - [`bart`]: BART (encoder-decoder) and its head on the last end-of-sequence token.
//! - [`t5`]: T5 (encoder-decoder, relative position buckets) with HF's
//!   `T5ForSequenceClassification` head, not text-to-text label words.
//! - [`xlnet`]: XLNet (relative attention, content stream) and its summary head.
//! - `layers`: what several families share, written once: linear and LayerNorm layers, the
//!   multi-head attention product, BART's and T5's head on the last end-of-sequence state.
//! - [`config`]: the HF `config.json` of every family, under BERT's field names.
//! - [`activation`]: HF's activation names as an enum.
//!
//! Models do no IO: checkpoints are read in `checkpoint`, files in `datasets`.

pub mod activation;
pub mod albert;
pub mod bart;
pub mod bert;
pub mod config;
pub mod distilbert;
mod layers;
pub mod t5;
pub mod xlnet;

use serde::Deserialize;
use subspace::LayerGroup;
use tch::{Kind, Tensor, nn};

pub use activation::HiddenAct;
pub use bert::{Encoder, EncoderOutput, MaskedLm};
pub use config::Config;

/// A sequence classifier of any family: what the trainer, the subspace and the runner need.
pub trait Classifier {
    /// Logits `[batch, n_labels]` (f32, or the autocast kind) from `input_ids`, `attention_mask`
    /// (1 = token, 0 = padding) and `token_type_ids`, each `[batch, seq]` i64.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor;

    /// The family (HF `model_type`).
    fn model_type(&self) -> ModelType;

    /// The layer group of the parameter named `name` (its HF name), as [`Config::layer_group`]
    /// answers for this model's config.
    fn layer_group(&self, name: &str) -> LayerGroup {
        self.model_type()
            .layer_group_from_name(name)
            .expect("BART's and T5's classifiers answer layer_group themselves: their groups need the depth")
    }

    /// Whether the parameter named `name` is exempt from weight decay.
    fn no_decay(&self, name: &str) -> bool {
        self.model_type().no_decay(name)
    }

    /// The number of parameters (every trainable tensor, head included).
    fn parameter_count(&self) -> usize;
}

/// The value an additive attention mask gives a masked position: the dtype's minimum (HF's
/// `torch.finfo(dtype).min`; f32's for the half-precision kinds autocast computes in).
pub(crate) fn masked_value(kind: Kind) -> f64 {
    if kind == Kind::Double { f64::MIN } else { f64::from(f32::MIN) }
}

/// `[batch, 1, 1, seq]` from an attention mask (`[batch, seq]`, 1 = token): 0 where attended,
/// [`masked_value`] where not; added to attention scores by every family's layers.
pub(crate) fn padding_bias(attention_mask: &Tensor, kind: Kind) -> Tensor {
    ((attention_mask.to_kind(kind).neg() + 1.0) * masked_value(kind)).unsqueeze(1).unsqueeze(1)
}

/// The number of parameters of a layout (`(name, shape)` of every tensor).
pub fn parameter_count(layout: &[(String, Vec<i64>)]) -> usize {
    layout.iter().map(|(_, shape)| shape.iter().product::<i64>() as usize).sum()
}

/// The families the suite implements, as HF's `model_type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ModelType {
    /// BERT (HF's `BertModel`), its encoder under `bert`.
    #[serde(rename = "bert")]
    Bert,
    /// RoBERTa (HF's `RobertaModel`): BERT's layers, position ids after the padding index.
    #[serde(rename = "roberta")]
    Roberta,
    /// XLM-R: RoBERTa's architecture (HF's `XLMRobertaModel`), its encoder also under `roberta`.
    #[serde(rename = "xlm-roberta")]
    XlmRoberta,
    /// ELECTRA's discriminator.
    #[serde(rename = "electra")]
    Electra,
    /// DistilBERT (HF's `DistilBertModel`), its config read under BERT's field names.
    #[serde(rename = "distilbert")]
    DistilBert,
    /// ALBERT (HF's `AlbertModel`): factorised embeddings and layers shared across depth.
    #[serde(rename = "albert")]
    Albert,
    /// BART: an encoder-decoder, classified from the decoder's last end-of-sequence state.
    #[serde(rename = "bart")]
    Bart,
    /// T5: an encoder-decoder, classified by HF's `T5ForSequenceClassification` head.
    #[serde(rename = "t5")]
    T5,
    /// XLNet (HF's `XLNetModel`): relative attention, content stream only, its summary head.
    #[serde(rename = "xlnet")]
    Xlnet,
}

impl ModelType {
    /// Every family, in the order of the enum.
    pub const ALL: [ModelType; 9] = [
        ModelType::Bert,
        ModelType::Roberta,
        ModelType::XlmRoberta,
        ModelType::Electra,
        ModelType::DistilBert,
        ModelType::Albert,
        ModelType::Bart,
        ModelType::T5,
        ModelType::Xlnet,
    ];

    /// The prefix of the encoder's tensors in HF's task models (`base_model_prefix`).
    pub fn prefix(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta | ModelType::XlmRoberta => "roberta",
            ModelType::Electra => "electra",
            ModelType::DistilBert => "distilbert",
            ModelType::Albert => "albert",
            ModelType::Bart => "model",
            ModelType::T5 | ModelType::Xlnet => "transformer",
        }
    }

    /// The family's name as HF spells `model_type`.
    pub fn name(self) -> &'static str {
        match self {
            ModelType::Bert => "bert",
            ModelType::Roberta => "roberta",
            ModelType::XlmRoberta => "xlm-roberta",
            ModelType::Electra => "electra",
            ModelType::DistilBert => "distilbert",
            ModelType::Albert => "albert",
            ModelType::Bart => "bart",
            ModelType::T5 => "t5",
            ModelType::Xlnet => "xlnet",
        }
    }

    /// Whether position ids start after the padding index (RoBERTa and XLM-R), so that the
    /// position table holds `pad_token_id + 1` fewer positions than it has rows.
    pub fn positions_after_padding(self) -> bool {
        matches!(self, ModelType::Roberta | ModelType::XlmRoberta)
    }

    /// The prefixes of the classification head's variables: what a fine-tuning run initialises
    /// from its seed rather than from the checkpoint.
    pub fn head_prefixes(self) -> &'static [&'static str] {
        match self {
            ModelType::DistilBert => &["pre_classifier", "classifier"],
            ModelType::Bart | ModelType::T5 => &["classification_head"],
            ModelType::Xlnet => &["sequence_summary", "logits_proj"],
            _ => &["classifier"],
        }
    }

    /// The layer group of a parameter of this family from its HF name alone; `None` for BART and
    /// T5, whose decoder layers are numbered after the encoder's, which a name does not say. The
    /// public lookup is [`Config::layer_group`] (before a model is built) or the built model's
    /// [`Classifier::layer_group`], which answer for every family.
    pub(crate) fn layer_group_from_name(self, name: &str) -> Option<LayerGroup> {
        match self {
            ModelType::Bert | ModelType::Roberta | ModelType::XlmRoberta | ModelType::Electra => {
                Some(bert::layer_group(self.prefix(), name))
            }
            ModelType::DistilBert => Some(distilbert::layer_group(name)),
            ModelType::Albert => Some(albert::layer_group(name)),
            ModelType::Xlnet => Some(xlnet::layer_group(name)),
            ModelType::Bart | ModelType::T5 => None,
        }
    }

    /// Whether the parameter named `name` is exempt from weight decay in this family (every
    /// family here names its norms `LayerNorm` or `*layer_norm`).
    pub fn no_decay(self, name: &str) -> bool {
        bert::no_decay(name)
    }
}

/// `(name, shape)` of every tensor of the sequence classifier of `config`'s family, in HF's
/// naming and parameter order, without building it.
pub fn classifier_layout(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    match config.model_type {
        ModelType::DistilBert => distilbert::classifier_layout(config, n_labels),
        ModelType::Albert => albert::classifier_layout(config, n_labels),
        ModelType::Bart => bart::classifier_layout(config, n_labels),
        ModelType::T5 => t5::classifier_layout(config, n_labels),
        ModelType::Xlnet => xlnet::classifier_layout(config, n_labels),
        _ => bert::classifier_layout(config, n_labels),
    }
}

/// A sequence classifier of any family, built from its config.
#[derive(Debug)]
pub enum SequenceClassifier {
    /// BERT, RoBERTa, XLM-R or ELECTRA.
    Bert(bert::SequenceClassifier),
    /// DistilBERT (`DistilBertForSequenceClassification`).
    DistilBert(distilbert::SequenceClassifier),
    /// ALBERT (`AlbertForSequenceClassification`).
    Albert(albert::SequenceClassifier),
    /// BART (`BartForSequenceClassification`).
    Bart(bart::SequenceClassifier),
    /// T5 (`T5ForSequenceClassification`).
    T5(t5::SequenceClassifier),
    /// XLNet (`XLNetForSequenceClassification`).
    Xlnet(xlnet::SequenceClassifier),
}

impl SequenceClassifier {
    /// Registers the model's variables at the root of `p`'s store, as HF names them: the encoder
    /// under the family's prefix, the head under `classifier` (and DistilBERT's
    /// `pre_classifier`).
    pub fn new(p: nn::Path, config: &Config, n_labels: i64) -> SequenceClassifier {
        match config.model_type {
            ModelType::DistilBert => {
                SequenceClassifier::DistilBert(distilbert::SequenceClassifier::new(p, config, n_labels))
            }
            ModelType::Albert => SequenceClassifier::Albert(albert::SequenceClassifier::new(p, config, n_labels)),
            ModelType::Bart => SequenceClassifier::Bart(bart::SequenceClassifier::new(p, config, n_labels)),
            ModelType::T5 => SequenceClassifier::T5(t5::SequenceClassifier::new(p, config, n_labels)),
            ModelType::Xlnet => SequenceClassifier::Xlnet(xlnet::SequenceClassifier::new(p, config, n_labels)),
            _ => SequenceClassifier::Bert(bert::SequenceClassifier::new(p, config, n_labels)),
        }
    }

    /// The family's classifier, for the trait's dispatch.
    fn inner(&self) -> &dyn Classifier {
        match self {
            SequenceClassifier::Bert(model) => model,
            SequenceClassifier::DistilBert(model) => model,
            SequenceClassifier::Albert(model) => model,
            SequenceClassifier::Bart(model) => model,
            SequenceClassifier::T5(model) => model,
            SequenceClassifier::Xlnet(model) => model,
        }
    }

    /// Logits `[batch, n_labels]` (see [`Classifier::forward_t`]).
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        self.inner().forward_t(input_ids, attention_mask, token_type_ids, train)
    }

    /// The encoder's last hidden state, `[batch, seq, hidden]`.
    pub fn last_hidden_state(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        match self {
            SequenceClassifier::Bert(model) => {
                model.encoder().forward_t(input_ids, attention_mask, token_type_ids, train).last_hidden_state
            }
            SequenceClassifier::DistilBert(model) => model.last_hidden_state(input_ids, attention_mask, train),
            SequenceClassifier::Albert(model) => {
                model.last_hidden_state(input_ids, attention_mask, token_type_ids, train)
            }
            // The decoder's, which BART's head reads.
            SequenceClassifier::Bart(model) => model.last_hidden_state(input_ids, attention_mask, train),
            SequenceClassifier::T5(model) => model.last_hidden_state(input_ids, attention_mask, train),
            SequenceClassifier::Xlnet(model) => {
                model.last_hidden_state(input_ids, attention_mask, token_type_ids, train)
            }
        }
    }

    /// The BERT-layer encoder (with BERT's pooler), for the families that have one.
    pub fn encoder(&self) -> Option<&Encoder> {
        match self {
            SequenceClassifier::Bert(model) => Some(model.encoder()),
            _ => None,
        }
    }
}

impl Classifier for SequenceClassifier {
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        self.inner().forward_t(input_ids, attention_mask, token_type_ids, train)
    }

    fn model_type(&self) -> ModelType {
        self.inner().model_type()
    }

    fn layer_group(&self, name: &str) -> LayerGroup {
        self.inner().layer_group(name)
    }

    fn parameter_count(&self) -> usize {
        self.inner().parameter_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayerGroup::{Embeddings, Head, Layer};

    /// Layer groups and weight-decay exemptions on HF tensor names, written by hand from the HF
    /// modules (transformers 5.24.0) rather than derived from the rules under test.
    #[test]
    fn layer_groups_and_no_decay_per_family_on_hf_names() {
        type Expected<'a> = &'a [(&'a str, LayerGroup, bool)];
        let cases: [(ModelType, Expected); 7] = [
            (
                ModelType::Bert,
                &[
                    ("bert.embeddings.word_embeddings.weight", Embeddings, false),
                    ("bert.embeddings.LayerNorm.weight", Embeddings, true),
                    ("bert.encoder.layer.0.attention.self.query.weight", Layer(0), false),
                    ("bert.encoder.layer.11.output.LayerNorm.bias", Layer(11), true),
                    ("bert.pooler.dense.weight", Head, false),
                    ("classifier.bias", Head, true),
                ],
            ),
            (
                ModelType::Roberta,
                &[
                    ("roberta.embeddings.position_embeddings.weight", Embeddings, false),
                    ("roberta.encoder.layer.5.intermediate.dense.weight", Layer(5), false),
                    ("classifier.out_proj.weight", Head, false),
                ],
            ),
            (
                ModelType::XlmRoberta,
                &[
                    ("roberta.embeddings.token_type_embeddings.weight", Embeddings, false),
                    ("roberta.encoder.layer.23.attention.output.LayerNorm.weight", Layer(23), true),
                    ("classifier.dense.bias", Head, true),
                ],
            ),
            (
                ModelType::Electra,
                &[
                    ("electra.embeddings.word_embeddings.weight", Embeddings, false),
                    ("electra.embeddings_project.weight", Embeddings, false),
                    ("electra.embeddings_project.bias", Embeddings, true),
                    ("electra.encoder.layer.3.attention.self.key.bias", Layer(3), true),
                    ("classifier.dense.weight", Head, false),
                ],
            ),
            (
                ModelType::DistilBert,
                &[
                    ("distilbert.embeddings.position_embeddings.weight", Embeddings, false),
                    ("distilbert.embeddings.LayerNorm.bias", Embeddings, true),
                    ("distilbert.transformer.layer.0.attention.q_lin.weight", Layer(0), false),
                    ("distilbert.transformer.layer.5.sa_layer_norm.weight", Layer(5), true),
                    ("distilbert.transformer.layer.5.output_layer_norm.weight", Layer(5), true),
                    ("distilbert.transformer.layer.2.ffn.lin1.weight", Layer(2), false),
                    ("pre_classifier.weight", Head, false),
                    ("classifier.weight", Head, false),
                ],
            ),
            (
                ModelType::Albert,
                &[
                    ("albert.embeddings.word_embeddings.weight", Embeddings, false),
                    ("albert.encoder.embedding_hidden_mapping_in.weight", Embeddings, false),
                    ("albert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight", Layer(0), false),
                    ("albert.encoder.albert_layer_groups.0.albert_layers.1.ffn_output.bias", Layer(0), true),
                    (
                        "albert.encoder.albert_layer_groups.1.albert_layers.0.full_layer_layer_norm.weight",
                        Layer(1),
                        true,
                    ),
                    ("albert.encoder.albert_layer_groups.0.albert_layers.0.attention.LayerNorm.weight", Layer(0), true),
                    ("albert.pooler.weight", Head, false),
                    ("classifier.weight", Head, false),
                ],
            ),
            (
                ModelType::Xlnet,
                &[
                    ("transformer.word_embedding.weight", Embeddings, false),
                    ("transformer.mask_emb", Embeddings, false),
                    ("transformer.layer.0.rel_attn.q", Layer(0), false),
                    ("transformer.layer.0.rel_attn.r_w_bias", Layer(0), true),
                    ("transformer.layer.11.rel_attn.seg_embed", Layer(11), false),
                    ("transformer.layer.3.ff.layer_norm.weight", Layer(3), true),
                    ("sequence_summary.summary.weight", Head, false),
                    ("logits_proj.bias", Head, true),
                ],
            ),
        ];
        for (name, group, exempt) in [
            ("model.shared.weight", Embeddings, false),
            ("model.encoder.embed_positions.weight", Embeddings, false),
            ("model.decoder.layernorm_embedding.weight", Embeddings, true),
            ("model.encoder.layers.0.self_attn.q_proj.weight", Layer(0), false),
            ("model.encoder.layers.11.final_layer_norm.bias", Layer(11), true),
            ("model.decoder.layers.0.encoder_attn.k_proj.weight", Layer(12), false),
            ("model.decoder.layers.11.encoder_attn_layer_norm.weight", Layer(23), true),
            ("classification_head.dense.weight", Head, false),
        ] {
            assert_eq!(bart::layer_group(name, 12), group, "BART {name}");
            assert_eq!(ModelType::Bart.no_decay(name), exempt, "BART {name}");
        }
        for (name, group, exempt) in [
            ("transformer.shared.weight", Embeddings, false),
            ("transformer.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", Layer(0), true),
            ("transformer.encoder.block.1.layer.1.DenseReluDense.wi_0.weight", Layer(1), false),
            ("transformer.encoder.final_layer_norm.weight", Layer(5), true),
            ("transformer.decoder.block.0.layer.1.EncDecAttention.q.weight", Layer(6), false),
            ("transformer.decoder.block.5.layer.2.layer_norm.weight", Layer(11), true),
            ("transformer.decoder.final_layer_norm.weight", Layer(11), true),
            ("classification_head.out_proj.bias", Head, true),
        ] {
            assert_eq!(t5::layer_group(name, 6, 6), group, "T5 {name}");
            assert_eq!(ModelType::T5.no_decay(name), exempt, "T5 {name}");
        }
        for (model_type, names) in cases {
            for &(name, group, exempt) in names {
                assert_eq!(model_type.layer_group_from_name(name), Some(group), "{model_type:?} {name}");
                assert_eq!(model_type.no_decay(name), exempt, "{model_type:?} {name}");
            }
        }
    }

    #[test]
    fn model_types_read_hf_spellings() {
        for (spelt, model_type) in [
            ("bert", ModelType::Bert),
            ("roberta", ModelType::Roberta),
            ("xlm-roberta", ModelType::XlmRoberta),
            ("electra", ModelType::Electra),
            ("distilbert", ModelType::DistilBert),
            ("albert", ModelType::Albert),
            ("bart", ModelType::Bart),
            ("t5", ModelType::T5),
            ("xlnet", ModelType::Xlnet),
        ] {
            let read: ModelType = serde_json::from_str(&format!("\"{spelt}\"")).unwrap();
            assert_eq!((read, read.name()), (model_type, spelt));
        }
    }
}
