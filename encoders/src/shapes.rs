//! Parameter shapes of reference models, with HF tensor names, for benchmarks and tests that need
//! real sizes without real weights.

use crate::models::{self, Config, bert};

/// `(name, shape)` of every trainable tensor of HF `RobertaForSequenceClassification` for
/// `roberta-base` with two labels (no pooler: the classification head reads the first token):
/// 5 embedding tensors, 16 per layer x 12 layers, 4 head tensors = 201 tensors, 124,647,170
/// parameters.
pub fn roberta_base_classifier() -> Vec<(String, Vec<i64>)> {
    bert::encoder_classifier_layout("roberta", 50265, 514, 1, 768, 3072, 12, 2)
}

/// `(name, shape)` of every tensor of the sequence classifier of `config`'s family, in the
/// model's own naming, without building it (validation needs `D` and `m` of models it has not
/// loaded).
pub fn sequence_classifier(config: &Config, n_labels: i64) -> Vec<(String, Vec<i64>)> {
    models::classifier_layout(config, n_labels)
}

/// `(D, m)` of a sequence classifier under a subspace method: its parameter count with the task
/// head, and the scales SAID learns (0 for DID), without building the model.
pub fn subspace_dimensions(
    config: &Config,
    n_labels: i64,
    method: subspace::Method,
    grouping: subspace::LambdaGrouping,
    compat: subspace::Compat,
) -> (usize, usize) {
    let layout = sequence_classifier(config, n_labels);
    let total = models::parameter_count(&layout);
    let layers: Vec<subspace::LayerGroup> = layout.iter().map(|(name, _)| config.layer_group(name)).collect();
    (total, subspace::scale_groups(&layers, method, grouping, compat).1)
}

/// `(name, numel)` pairs, the form the Fastfood projector takes.
pub fn numels(shapes: &[(String, Vec<i64>)]) -> Vec<(String, usize)> {
    shapes.iter().map(|(name, shape)| (name.clone(), shape.iter().product::<i64>() as usize)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roberta_base_has_201_tensors_and_its_published_size() {
        let shapes = numels(&roberta_base_classifier());
        assert_eq!(shapes.len(), 201);
        assert_eq!(shapes.iter().map(|(_, numel)| numel).sum::<usize>(), 124_647_170);
    }

    /// The layout computed from a config is the layout the model registers, for both families.
    #[test]
    fn sequence_classifier_layout_matches_the_built_model() {
        for model_type in ["bert", "roberta"] {
            let config = Config::from_json(&format!(
                r#"{{"model_type": "{model_type}", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 3,
                    "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 40,
                    "type_vocab_size": 1}}"#
            ))
            .unwrap();
            let vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let _model = crate::models::SequenceClassifier::new(vs.root(), &config, 3);
            let mut built: Vec<(String, Vec<i64>)> =
                vs.variables().into_iter().map(|(name, tensor)| (name, tensor.size())).collect();
            let mut computed = sequence_classifier(&config, 3);
            built.sort();
            computed.sort();
            assert_eq!(computed, built, "{model_type}");
        }
    }

    /// The facts about the authors' per-tensor scheme on RoBERTa-base that our docs quote.
    #[test]
    fn per_tensor_padding_and_cropping_on_roberta_base() {
        use subspace::fastfood::{Crop, FactorStorage, Projector, ProjectorSpec, Scope};
        let shapes = numels(&roberta_base_classifier());
        let projector = |d| {
            Projector::new(
                &shapes,
                ProjectorSpec {
                    d,
                    scope: Scope::PerTensor,
                    seed: 0,
                    crop: Crop::ToBlock,
                    storage: FactorStorage::Regenerate,
                    device: tch::Device::Cpu,
                },
            )
            .unwrap()
        };
        // Each tensor padded to its own power of two: 1.76 x the parameters.
        let summary = projector(1).summary();
        let ratio = summary.total_padded_len as f64 / summary.total_params as f64;
        assert!((ratio - 1.7637).abs() < 1e-3, "padding ratio {ratio}");
        // At d = 4096, 114 tensors have L_t < d and are cropped by the authors' code (the 12
        // intermediate biases have L_t = 4096 = d exactly and are not).
        assert_eq!(projector(4096).summary().n_groups_cropped_by_authors_code, 114);
    }
}
