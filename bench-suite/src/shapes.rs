//! Parameter shapes of reference models, with HF tensor names, for benchmarks and tests that need
//! real sizes without real weights.

/// `(name, shape)` of every trainable tensor of HF `RobertaForSequenceClassification` for
/// `roberta-base` with two labels (no pooler: the classification head reads the first token):
/// 5 embedding tensors, 16 per layer x 12 layers, 4 head tensors = 201 tensors, 124,647,170
/// parameters.
pub fn roberta_base_classifier() -> Vec<(String, Vec<i64>)> {
    encoder_classifier("roberta", 50265, 514, 1, 768, 3072, 12, 2)
}

/// A BERT/RoBERTa-style encoder with a RoBERTa classification head (dense, out_proj).
#[allow(clippy::too_many_arguments)]
pub fn encoder_classifier(
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

    /// The facts about the authors' per-tensor scheme on RoBERTa-base that our docs quote.
    #[test]
    fn per_tensor_padding_and_cropping_on_roberta_base() {
        use crate::fastfood::{FactorStorage, Projector, Scope};
        let shapes = numels(&roberta_base_classifier());
        let projector = |d| {
            Projector::new(&shapes, d, Scope::PerTensor, 0, true, FactorStorage::Regenerate, tch::Device::Cpu).unwrap()
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
