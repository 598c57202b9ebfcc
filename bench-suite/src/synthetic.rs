//! A tiny random-weights encoder and a synthetic task, for the `smoke` preset and the tests: the
//! whole pipeline (training, search, results, report) in seconds on a CPU, with no files.
//!
//! The task: label 1 when the content tokens come from the upper half of the vocabulary, 0 from
//! the lower. A tiny random encoder separates this bag-of-words signal, in full fine-tuning and in
//! a subspace. Weights and examples come from the keyed RNG (never from torch's global
//! generator, which parallel tests share), so both are the same on every machine.

use tch::{Tensor, nn};

use encoders::models::Config;
use subspace::random;
use trainer::tokenize::Encoded;
use trainer::train::LabelledExample;

/// The vocabulary of the synthetic task: 0 padding, 2/3 the sentence markers, 8.. content.
pub const VOCAB: u32 = 40;

/// The names under which the runner knows the synthetic models.
pub const MODELS: [&str; 2] = ["synthetic/tiny-bert", "synthetic/tiny-roberta"];

/// The synthetic task's name in experiment specs.
pub const TASK: &str = "synthetic";

/// A 2-layer, hidden-32 encoder config of either family (`model_type` "bert" or "roberta").
pub fn tiny_config(model_type: &str) -> Config {
    Config::from_json(&format!(
        r#"{{"model_type": "{model_type}", "vocab_size": {VOCAB}, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32, "type_vocab_size": 2,
            "pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}}"#
    ))
    .expect("a valid config")
}

/// The config of a synthetic model by name (one of [`MODELS`]).
pub fn model_config(name: &str) -> Option<Config> {
    match name {
        "synthetic/tiny-bert" => Some(tiny_config("bert")),
        "synthetic/tiny-roberta" => Some(tiny_config("roberta")),
        _ => None,
    }
}

/// Overwrites every variable of `vs` from the keyed RNG: biases 0, LayerNorm weights 1, the rest
/// normal with standard deviation 0.05. The same `seed` gives the same model everywhere.
pub fn init_weights(vs: &nn::VarStore, seed: u64) {
    let _guard = tch::no_grad_guard();
    for (name, mut tensor) in vs.variables() {
        let values = if name.ends_with("bias") {
            vec![0.0; tensor.numel()]
        } else if name.contains("LayerNorm") {
            vec![1.0; tensor.numel()]
        } else {
            random::normals(&mut random::keyed_rng("synthetic model", seed, &name, 0), tensor.numel())
                .iter()
                .map(|v| v * 0.05)
                .collect()
        };
        tensor.copy_(&Tensor::from_slice(&values).reshape(tensor.size()).to_kind(tensor.kind()));
    }
}

/// `count` labelled examples of 6 to 13 tokens, drawn from `(seed, split)`.
pub fn examples(count: usize, seed: u64, split: &str) -> Vec<LabelledExample> {
    let mut rng = random::keyed_rng("synthetic data", seed, split, 0);
    let half = (VOCAB - 8) / 2;
    (0..count)
        .map(|_| {
            let len = 4 + random::bounded(&mut rng, 8) as usize;
            let label = random::bounded(&mut rng, 2) as usize;
            let base = 8 + label as u32 * half;
            let mut ids: Vec<u32> =
                (0..len).map(|_| base + random::bounded(&mut rng, u64::from(half)) as u32).collect();
            ids.insert(0, 2);
            ids.push(3);
            LabelledExample { encoded: Encoded { type_ids: vec![0; ids.len()], ids }, label }
        })
        .collect()
}
