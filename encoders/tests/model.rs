//! Encoders against HF `transformers` (golden files made by `tests/golden/make_encoder_golden.py`
//! and `make_family_golden.py`): small random classifiers of every family always, the real MiniLM
//! checkpoint when the shared mirror is present. Also checkpoint loading errors and seeded head
//! initialisation.

use std::collections::BTreeMap;

use encoders::Error;
use encoders::checkpoint;
use encoders::models::{Config, MaskedLm, ModelType, SequenceClassifier};
use tch::{Device, Kind, Tensor, nn};

use crate::support::{checkpoint_from_golden, golden, max_abs_diff, minilm, mirror, read};

fn check_tiny(kind: &str) {
    let config = Config::from_json(&std::fs::read_to_string(golden(&format!("tiny_{kind}.json"))).unwrap()).unwrap();
    let tensors = read(&golden(&format!("tiny_{kind}.safetensors")));
    let dir = std::env::temp_dir().join(format!("bench-suite-model-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint_path = checkpoint_from_golden(&tensors, &dir);

    let vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &config, 3);
    let report = checkpoint::load(
        &vs,
        &checkpoint_path,
        config.model_type.prefix(),
        checkpoint::Head::IfPresent(config.model_type.head_prefixes()),
        0,
        0.02,
    )
    .unwrap();
    assert!(report.initialised.is_empty(), "{kind}: the golden checkpoint has the head: {report:?}");
    assert_eq!(report.loaded, vs.variables().len(), "{kind}: {report:?}");
    assert_eq!(
        encoders::models::parameter_count(&encoders::shapes::sequence_classifier(&config, 3)),
        vs.variables().values().map(Tensor::numel).sum::<usize>(),
        "{kind}: the layout is the built model"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let (ids, mask, types) = (&tensors["input_ids"], &tensors["attention_mask"], &tensors["token_type_ids"]);
    let _guard = tch::no_grad_guard();
    let mut hidden = model.last_hidden_state(ids, mask, types, false);
    let mut expected_hidden = tensors["last_hidden_state"].shallow_clone();
    if kind == "xlnet" {
        // HF ran the left-padded rows; the file holds its states at the right-padded positions.
        let attended = mask.unsqueeze(-1).to_kind(hidden.kind());
        hidden *= &attended;
        expected_hidden *= attended;
    }
    let logits = model.forward_t(ids, mask, types, false);
    let hidden_error = max_abs_diff(&hidden, &expected_hidden);
    let logits_error = max_abs_diff(&logits, &tensors["logits"]);
    eprintln!("tiny {kind}: max abs error hidden {hidden_error:.2e}, logits {logits_error:.2e}");
    assert!(hidden_error < 1e-4 && logits_error < 1e-4, "{kind}: hidden {hidden_error}, logits {logits_error}");
    // Dropout is on in training mode (and the outputs then differ).
    let trained = model.forward_t(ids, mask, types, true);
    assert!(max_abs_diff(&trained, &logits) > 1e-6, "{kind}: train mode changed nothing");
}

#[test]
fn tiny_bert_classifier_matches_transformers() {
    check_tiny("bert");
}

#[test]
fn tiny_roberta_classifier_matches_transformers() {
    check_tiny("roberta");
}

#[test]
fn tiny_xlm_roberta_classifier_matches_transformers() {
    check_tiny("xlm-roberta");
}

/// With `embedding_size` 16 below `hidden_size` 32: `embeddings_project` and ELECTRA's gelu head.
#[test]
fn tiny_electra_classifier_matches_transformers() {
    check_tiny("electra");
}

/// No token types; `pre_classifier`, ReLU and `classifier`.
#[test]
fn tiny_distilbert_classifier_matches_transformers() {
    check_tiny("distilbert");
}

/// Relative attention and segment encoding; HF ran left-padded rows, the suite feeds them right-padded.
#[test]
fn tiny_xlnet_classifier_matches_transformers_on_left_padded_rows() {
    check_tiny("xlnet");
}

/// Relative position buckets, RMS norms, gated-gelu; HF's T5ForSequenceClassification head.
#[test]
fn tiny_t5_classifier_matches_transformers() {
    check_tiny("t5");
}

/// Encoder-decoder; the head reads the decoder's state at the last `</s>`; `scale_embedding` on.
#[test]
fn tiny_bart_classifier_matches_transformers() {
    check_tiny("bart");
}

/// `embedding_size` 16, four passes over two shared groups of two inner layers, `gelu_new`.
#[test]
fn tiny_albert_classifier_matches_transformers() {
    check_tiny("albert");
}

/// The real MiniLM checkpoint (no `bert.` prefix, no classification head), when the shared mirror
/// is there (`cargo xtask test` sets `INTRINSIC_BENCH_TEST_MIRROR`).
#[test]
fn minilm_matches_transformers() {
    let Some(mirror) = mirror("the MiniLM parity test") else {
        return;
    };
    let folder = minilm(&mirror);
    let config = Config::from_json(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.model_type, ModelType::Bert);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &config, 2);
    let report = checkpoint::load(
        &vs,
        &folder.join("model.safetensors"),
        "bert",
        checkpoint::Head::IfPresent(&["classifier"]),
        7,
        config.initializer_range,
    )
    .unwrap();
    assert_eq!(report.initialised, ["classifier.bias", "classifier.weight"]);
    assert_eq!(report.unused, ["embeddings.position_ids"]);
    assert_eq!(report.loaded, 103);

    let tensors = read(&golden("minilm.safetensors"));
    let _guard = tch::no_grad_guard();
    let output = model.encoder().expect("BERT's encoder").forward_t(
        &tensors["input_ids"],
        &tensors["attention_mask"],
        &tensors["token_type_ids"],
        false,
    );
    let hidden_error = max_abs_diff(&output.last_hidden_state, &tensors["last_hidden_state"]);
    let pooled_error = max_abs_diff(&output.pooled.unwrap(), &tensors["pooler_output"]);
    eprintln!("MiniLM: max abs error hidden {hidden_error:.2e}, pooled {pooled_error:.2e}");
    assert!(hidden_error < 1e-4 && pooled_error < 1e-4, "hidden {hidden_error}, pooled {pooled_error}");
}

#[test]
fn loading_names_missing_and_unexpected_tensors() {
    let config = Config::from_json(&std::fs::read_to_string(golden("tiny_bert.json")).unwrap()).unwrap();
    let mut tensors = read(&golden("tiny_bert.safetensors"));
    let moved = tensors.remove("weights.bert.encoder.layer.1.output.dense.weight").unwrap();
    tensors.insert("weights.bert.encoder.layer.1.output.dense.kernel".to_owned(), moved);
    let dir = std::env::temp_dir().join(format!("bench-suite-model-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = checkpoint_from_golden(&tensors, &dir);
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = SequenceClassifier::new(vs.root(), &config, 3);
    let err = checkpoint::load(&vs, &path, "bert", checkpoint::Head::IfPresent(&["classifier"]), 0, 0.02).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    match &err {
        Error::Mismatch { missing, unexpected, .. } => {
            assert_eq!(missing, &["bert.encoder.layer.1.output.dense.weight"]);
            assert_eq!(unexpected, &["bert.encoder.layer.1.output.dense.kernel"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("missing: bert.encoder.layer.1.output.dense.weight"), "{err}");
}

#[test]
fn fresh_heads_are_seeded_and_hf_scaled() {
    let config = Config::from_json(&std::fs::read_to_string(golden("tiny_roberta.json")).unwrap()).unwrap();
    let tensors = read(&golden("tiny_roberta.safetensors"));
    let encoder_only: BTreeMap<String, Tensor> =
        tensors.into_iter().filter(|(name, _)| !name.starts_with("weights.classifier.")).collect();
    let dir = std::env::temp_dir().join(format!("bench-suite-model-head-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = checkpoint_from_golden(&encoder_only, &dir);
    let head = |seed: u64| {
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = SequenceClassifier::new(vs.root(), &config, 3);
        let report =
            checkpoint::load(&vs, &path, "roberta", checkpoint::Head::IfPresent(&["classifier"]), seed, 0.02).unwrap();
        assert_eq!(report.initialised.len(), 4, "{report:?}");
        let variables = vs.variables();
        (variables["classifier.dense.weight"].copy(), variables["classifier.out_proj.bias"].copy())
    };
    let (weight_a, bias_a) = head(1);
    let (weight_b, _) = head(1);
    let (weight_c, _) = head(2);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(weight_a.equal(&weight_b) && !weight_a.equal(&weight_c));
    assert_eq!(bias_a.abs().sum(Kind::Float).double_value(&[]), 0.0);
    let std = weight_a.std(true).double_value(&[]);
    assert!((std - 0.02).abs() < 0.002, "head init std {std}");
}

/// The MLM heads (decoder tied to the word embeddings) against `BertForMaskedLM` and
/// `RobertaForMaskedLM`.
#[test]
fn tiny_masked_lms_match_transformers() {
    for kind in ["bert", "roberta"] {
        let config =
            Config::from_json(&std::fs::read_to_string(golden(&format!("tiny_{kind}.json"))).unwrap()).unwrap();
        let tensors = read(&golden(&format!("tiny_{kind}_mlm.safetensors")));
        let dir = std::env::temp_dir().join(format!("bench-suite-model-mlm-{kind}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = checkpoint_from_golden(&tensors, &dir);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = MaskedLm::new(vs.root(), &config);
        let report = checkpoint::load(&vs, &path, config.model_type.prefix(), checkpoint::Head::None, 0, 0.02).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(report.initialised.is_empty(), "{kind}: {report:?}");
        assert!(
            report.unused.iter().all(|name| name.contains("decoder")),
            "{kind}: only the tied decoder is unused: {report:?}"
        );
        let _guard = tch::no_grad_guard();
        let logits =
            model.forward_t(&tensors["input_ids"], &tensors["attention_mask"], &tensors["token_type_ids"], false);
        let error = max_abs_diff(&logits, &tensors["logits"]);
        eprintln!("tiny {kind} MLM: max abs error logits {error:.2e}");
        assert!(error < 1e-4, "{kind}: {error}");
    }
}

/// Real hub checkpoints of the encoder-decoders carry tensors HF ignores or ties: BART's token
/// embeddings saved once under `model.decoder.embed_tokens.weight` (safetensors with the tied
/// duplicates removed), fairseq's `version` buffers, and the original T5's cross-attention
/// position bias. They load as HF loads them, with HF's logits.
#[test]
fn encoder_decoder_checkpoints_load_as_hf_ties_and_ignores_their_extra_tensors() {
    for (kind, rename, extra) in [
        (
            "bart",
            Some(("weights.model.shared.weight", "weights.model.decoder.embed_tokens.weight")),
            vec![("weights.model.encoder.version", vec![1]), ("weights.model.decoder.version", vec![1])],
        ),
        (
            "t5",
            Some(("weights.transformer.shared.weight", "weights.transformer.encoder.embed_tokens.weight")),
            vec![(
                "weights.transformer.decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
                vec![8, 4],
            )],
        ),
    ] {
        let config =
            Config::from_json(&std::fs::read_to_string(golden(&format!("tiny_{kind}.json"))).unwrap()).unwrap();
        let mut tensors = read(&golden(&format!("tiny_{kind}.safetensors")));
        if let Some((from, to)) = rename {
            let shared = tensors.remove(from).unwrap();
            tensors.insert(to.to_owned(), shared);
        }
        for (name, shape) in extra {
            tensors.insert(name.to_owned(), Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_from_golden(&tensors, dir.path());
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SequenceClassifier::new(vs.root(), &config, 3);
        let head = checkpoint::Head::IfPresent(config.model_type.head_prefixes());
        let report = checkpoint::load(&vs, &path, config.model_type.prefix(), head, 0, 0.02).unwrap();
        assert!(report.initialised.is_empty(), "{kind}: {report:?}");
        assert_eq!(report.renamed.len(), 1, "{kind}: the tied embeddings: {report:?}");
        let _guard = tch::no_grad_guard();
        let logits =
            model.forward_t(&tensors["input_ids"], &tensors["attention_mask"], &tensors["token_type_ids"], false);
        let error = max_abs_diff(&logits, &tensors["logits"]);
        assert!(error < 1e-4, "{kind}: {error}");
    }
}
