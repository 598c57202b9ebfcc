//! Encoders against HF `transformers` (golden files made by `tests/golden/make_encoder_golden.py`
//! and `make_family_golden.py`): small random classifiers of every family always, the real MiniLM
//! checkpoint when the shared mirror is present. Also checkpoint loading errors and seeded head
//! initialisation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bench_suite::checkpoint::{self, CheckpointError};
use bench_suite::models::{Config, MaskedLm, ModelType, SequenceClassifier};
use tch::{Device, Kind, Tensor, nn};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

fn read(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Writes the `weights.*` tensors of a golden file as a checkpoint of its own.
fn checkpoint_from_golden(tensors: &BTreeMap<String, Tensor>, dir: &Path) -> PathBuf {
    let weights: Vec<(String, Tensor)> = tensors
        .iter()
        .filter_map(|(name, tensor)| {
            name.strip_prefix("weights.").map(|name| (name.to_owned(), tensor.shallow_clone()))
        })
        .collect();
    let path = dir.join("model.safetensors");
    Tensor::write_safetensors(&weights, &path).unwrap();
    path
}

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
        bench_suite::models::parameter_count(&bench_suite::shapes::sequence_classifier(&config, 3)),
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
    let Some(mirror) = std::env::var_os("INTRINSIC_BENCH_TEST_MIRROR").map(PathBuf::from) else {
        eprintln!("INTRINSIC_BENCH_TEST_MIRROR not set: skipping the MiniLM parity test");
        return;
    };
    let folder = mirror.join("hf/sentence-transformers/all-MiniLM-L6-v2/1110a243fdf4706b3f48f1d95db1a4f5529b4d41");
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
        CheckpointError::Mismatch { missing, unexpected, .. } => {
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

/// Every family fine-tunes through the suite's trainer with SAID (per-layer scales): its golden
/// weights loaded, a fresh two-label head, the synthetic task (with the family's end-of-sequence
/// token appended where its head reads one). The scale count the run uses is the one a spec is
/// checked with before any model is built (`shapes::subspace_dimensions`), and the run completes
/// with a finite loss.
#[test]
fn every_family_fine_tunes_with_said() {
    use bench_suite::train::{LabelledExample, TrainData, train};
    use results::{Mode, Status, TrainConfig};
    for kind in ["bert", "roberta", "xlm-roberta", "electra", "distilbert", "albert", "bart", "t5", "xlnet"] {
        let config =
            Config::from_json(&std::fs::read_to_string(golden(&format!("tiny_{kind}.json"))).unwrap()).unwrap();
        let tensors = read(&golden(&format!("tiny_{kind}.safetensors")));
        let dir = tempfile::tempdir().unwrap();
        let path = checkpoint_from_golden(&tensors, dir.path());
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SequenceClassifier::new(vs.root(), &config, 2);
        let head = checkpoint::Head::Fresh(config.model_type.head_prefixes());
        let report =
            checkpoint::load(&vs, &path, config.model_type.prefix(), head, 3, config.initializer_range).unwrap();
        assert!(!report.initialised.is_empty(), "{kind}: a fresh head: {report:?}");
        let with_eos = |examples: Vec<LabelledExample>| -> Vec<LabelledExample> {
            let eos = match config.model_type {
                ModelType::Bart | ModelType::T5 => config.eos_token_id,
                _ => None,
            };
            examples
                .into_iter()
                .map(|mut example| {
                    if let Some(eos) = eos {
                        example.encoded.ids.push(eos as u32);
                        example.encoded.type_ids.push(0);
                    }
                    example
                })
                .collect()
        };
        let train_set = with_eos(bench_suite::synthetic::examples(64, 1, "train"));
        let dev_set = with_eos(bench_suite::synthetic::examples(32, 2, "dev"));
        let data = TrainData {
            train: &train_set,
            dev: vec![("dev".to_owned(), &dev_set)],
            with_f1: false,
            pad_id: config.pad_token_id as u32,
        };
        let mut train_config = TrainConfig::new(Mode::Said, 300, 0.05);
        train_config.epochs = 1;
        train_config.batch_size = 16;
        let result = train(&vs, &model, &data, &train_config, None, &mut |_| {}).unwrap();
        assert_eq!(result.status, Status::Completed, "{kind}");
        let loss = result.evaluations.last().unwrap().train_loss;
        assert!(loss.is_finite(), "{kind}: train loss {loss}");
        let subspace = result.subspace.as_ref().unwrap();
        let (total, m) = bench_suite::shapes::subspace_dimensions(
            &config,
            2,
            subspace::Method::Said,
            train_config.grouping,
            train_config.compat,
        );
        assert_eq!(subspace.n_lambda, m, "{kind}: the scales a spec is checked with");
        assert_eq!(model_parameter_count(&model), total, "{kind}: D");
        eprintln!("{kind}: D = {total}, m = {m}, train loss {loss:.3}");
        if kind == "xlnet" {
            // Full fine-tuning leaves the unreached `mask_emb` as it is, as torch's AdamW does.
            let before = vs.variables()["transformer.mask_emb"].copy();
            let full = train(&vs, &model, &data, &TrainConfig::new(Mode::Full, 0, 1e-3), None, &mut |_| {}).unwrap();
            assert_eq!(full.status, Status::Completed, "xlnet full");
            assert!(vs.variables()["transformer.mask_emb"].equal(&before), "xlnet: mask_emb moved");
        }
    }
}

fn model_parameter_count(model: &SequenceClassifier) -> usize {
    use bench_suite::models::Classifier;
    model.parameter_count()
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
