//! Inputs shaped like faults that people who fine-tune these models have reported in public, each
//! with its right behaviour: the cases of `../shared/cases` (copied into `tests/cases/`: tiny
//! random-weight models whose expected logits HF `transformers` 5.24.0 gave), and more of each
//! kind: legacy tensor names, tensors the model does not use, config fields that change the
//! computation, keys defined twice in a spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bench_suite::experiment::spec;
use encoders::Error;
use encoders::checkpoint::{self, LoadReport};
use encoders::models::{Config, HiddenAct, SequenceClassifier};
use tch::{Device, Tensor, nn};

use crate::support::{cases3, draws, max_abs_diff, read, serial};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases").join(name)
}

fn config(folder: &Path) -> Config {
    Config::from_json(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap()
}

/// Builds the case's 3-label classifier and loads its checkpoint (`model.safetensors`, or `weights`
/// when given).
fn load(folder: &Path, weights: Option<&Path>) -> (nn::VarStore, SequenceClassifier, Result<LoadReport, Error>) {
    let config = config(folder);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &config, 3);
    let path = weights.map_or_else(|| folder.join("model.safetensors"), Path::to_path_buf);
    let report =
        checkpoint::load(&vs, &path, config.model_type.prefix(), checkpoint::Head::IfPresent(&["classifier"]), 0, 0.02);
    (vs, model, report)
}

/// Eval-mode logits against the case's `expected_io.safetensors` (HF's), to 1e-4.
fn check_logits(folder: &Path, model: &SequenceClassifier) {
    let io = read(&folder.join("expected_io.safetensors"));
    let _guard = tch::no_grad_guard();
    let logits = model.forward_t(&io["input_ids"], &io["attention_mask"], &io["token_type_ids"], false);
    let error = max_abs_diff(&logits, &io["logits"]);
    eprintln!("{}: max abs error of the logits {error:.2e}", folder.display());
    assert!(error < 1e-4, "{}: {error}", folder.display());
}

/// Writes `tensors` as a checkpoint in a fresh temporary folder.
fn write_checkpoint(tensors: &BTreeMap<String, Tensor>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let named: Vec<(String, Tensor)> =
        tensors.iter().map(|(name, tensor)| (name.clone(), tensor.shallow_clone())).collect();
    Tensor::write_safetensors(&named, &path).unwrap();
    (dir, path)
}

#[test]
fn legacy_layernorm_names_load_as_weight_and_bias() {
    let _draws = draws();
    let folder = case("legacy-layernorm-names");
    let (_vs, model, report) = load(&folder, None);
    let report = report.unwrap();
    // Embeddings and two layers with two LayerNorms each: 5 LayerNorms, gamma and beta each.
    assert_eq!(report.renamed.len(), 10, "{report:?}");
    assert!(
        report
            .renamed
            .contains(&("bert.embeddings.LayerNorm.gamma".to_owned(), "bert.embeddings.LayerNorm.weight".to_owned()))
    );
    assert!(report.initialised.is_empty(), "{report:?}");
    check_logits(&folder, &model);
}

/// More of the kind: legacy names in a RoBERTa checkpoint without the encoder prefix (as the
/// MiniLM checkpoint is stored), and the same variable under both names refused.
#[test]
fn legacy_names_without_prefix_and_conflicting_names() {
    let _draws = draws();
    let folder = case("unused-pooler-tensors");
    let mut tensors = read(&folder.join("model.safetensors"));
    let renamed: BTreeMap<String, Tensor> = std::mem::take(&mut tensors)
        .into_iter()
        .map(|(name, tensor)| {
            let name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
            (name.strip_prefix("roberta.").map_or(name.clone(), str::to_owned), tensor)
        })
        .collect();
    let (_dir, path) = write_checkpoint(&renamed);
    let (_vs, model, report) = load(&folder, Some(&path));
    let report = report.unwrap();
    assert_eq!(report.renamed.len(), 10, "{report:?}");
    assert!(report.renamed.contains(&(
        "encoder.layer.1.output.LayerNorm.beta".to_owned(),
        "roberta.encoder.layer.1.output.LayerNorm.bias".to_owned()
    )));
    check_logits(&folder, &model);

    let mut both = renamed;
    let gamma = both["embeddings.LayerNorm.gamma"].shallow_clone();
    both.insert("roberta.embeddings.LayerNorm.weight".to_owned(), gamma);
    let (_dir, path) = write_checkpoint(&both);
    let err = load(&folder, Some(&path)).2.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { variable, .. } if variable == "roberta.embeddings.LayerNorm.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("embeddings.LayerNorm.gamma"), "{err}");
}

#[test]
fn a_roberta_checkpoint_with_a_pooler_loads_and_reports_it_unused() {
    let _draws = draws();
    let folder = case("unused-pooler-tensors");
    let (_vs, model, report) = load(&folder, None);
    let report = report.unwrap();
    assert_eq!(report.unused, ["roberta.pooler.dense.bias", "roberta.pooler.dense.weight"], "{report:?}");
    assert!(report.initialised.is_empty() && report.renamed.is_empty(), "{report:?}");
    check_logits(&folder, &model);
}

/// More of the kind: tensors the model needs are never dropped. A BERT classifier reads the
/// pooler, so a checkpoint without it is refused, not loaded with a random pooler; a tensor of no
/// known kind is an error too, not an unused one.
#[test]
fn tensors_the_model_needs_are_never_skipped() {
    let _draws = draws();
    let folder = case("legacy-layernorm-names");
    let mut tensors = read(&folder.join("model.safetensors"));
    tensors.retain(|name, _| !name.contains("pooler"));
    let (_dir, path) = write_checkpoint(&tensors);
    match load(&folder, Some(&path)).2.unwrap_err() {
        Error::Mismatch { missing, unexpected, .. } => {
            assert_eq!(missing, ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]);
            assert!(unexpected.is_empty());
        }
        other => panic!("{other}"),
    }
    let mut extra = read(&folder.join("model.safetensors"));
    extra.insert("bert.encoder.layer.2.output.dense.weight".to_owned(), Tensor::zeros([32, 64], tch::kind::FLOAT_CPU));
    let (_dir, path) = write_checkpoint(&extra);
    match load(&folder, Some(&path)).2.unwrap_err() {
        Error::Mismatch { missing, unexpected, .. } => {
            assert!(missing.is_empty());
            assert_eq!(unexpected, ["bert.encoder.layer.2.output.dense.weight"]);
        }
        other => panic!("{other}"),
    }
}

/// `classifier_dropout: 0.5` with every other dropout 0: in training the head drops half of the
/// pooled output (exactly `dropout(0.5)` of it, the same random stream), in evaluation nothing,
/// and the eval logits are HF's. `null` falls back to `hidden_dropout_prob` (0 here).
#[test]
fn classifier_dropout_is_the_heads_dropout() {
    let _serial = serial();
    let folder = case("classifier-dropout");
    assert_eq!(config(&folder).head_dropout(), 0.5);
    let (vs, model, report) = load(&folder, None);
    report.unwrap();
    let io = read(&folder.join("io.safetensors"));
    let (ids, mask, types) = (&io["input_ids"], &io["attention_mask"], &io["token_type_ids"]);
    let _guard = tch::no_grad_guard();
    let eval = model.forward_t(ids, mask, types, false);
    assert!(max_abs_diff(&eval, &io["logits"]) < 1e-4);
    tch::manual_seed(11);
    let train = model.forward_t(ids, mask, types, true);
    assert!(max_abs_diff(&train, &eval) > 1e-3, "train mode applied no dropout");
    tch::manual_seed(11);
    let pooled = model.encoder().expect("BERT").forward_t(ids, mask, types, true).pooled.unwrap();
    let variables = vs.variables();
    let by_hand =
        pooled.dropout(0.5, true).linear(&variables["classifier.weight"], Some(&variables["classifier.bias"]));
    assert!(max_abs_diff(&train, &by_hand) < 1e-6, "the head's dropout is not 0.5 of the pooled output");

    let text = std::fs::read_to_string(folder.join("config.json")).unwrap();
    let null = Config::from_json(&text.replace("\"classifier_dropout\": 0.5", "\"classifier_dropout\": null")).unwrap();
    assert_eq!(null.head_dropout(), 0.0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &null, 3);
    checkpoint::load(
        &vs,
        &folder.join("model.safetensors"),
        "bert",
        checkpoint::Head::IfPresent(&["classifier"]),
        0,
        0.02,
    )
    .unwrap();
    let train = model.forward_t(ids, mask, types, true);
    assert!(max_abs_diff(&train, &eval) < 1e-6, "null must fall back to hidden_dropout_prob = 0");
    let fallback = Config::from_json(
        &text
            .replace("\"classifier_dropout\": 0.5", "\"classifier_dropout\": null")
            .replace("\"hidden_dropout_prob\": 0.0", "\"hidden_dropout_prob\": 0.3"),
    )
    .unwrap();
    assert_eq!(fallback.head_dropout(), 0.3);
}

/// More of the kind: config fields that change what the model computes are honoured or refused
/// with the field's name; none is ignored.
#[test]
fn config_fields_that_change_the_computation_are_honoured_or_refused() {
    let text = std::fs::read_to_string(case("legacy-layernorm-names").join("config.json")).unwrap();
    let with = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        Config::from_json(&text.replacen(from, to, 1))
    };
    let refused = |from: &str, to: &str, field: &str| {
        let err = with(from, to).unwrap_err().to_string();
        assert!(err.contains(field), "{to}: {err}");
    };
    refused("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_10\"", "hidden_act `gelu_10` is not supported");
    refused("\"is_decoder\": false", "\"is_decoder\": true", "is_decoder");
    refused("\"add_cross_attention\": false", "\"add_cross_attention\": true", "add_cross_attention");
    refused("\"model_type\"", "\"problem_type\": \"regression\", \"model_type\"", "problem_type");
    refused("\"model_type\"", "\"pruned_heads\": {\"0\": [1]}, \"model_type\"", "pruned_heads");
    refused("\"model_type\"", "\"embedding_size\": 16, \"model_type\"", "embedding_size");
    refused(
        "\"model_type\"",
        "\"position_embedding_type\": \"relative_key\", \"model_type\"",
        "position_embedding_type",
    );
    refused("\"hidden_dropout_prob\": 0.1", "\"hidden_dropout_prob\": 1.5", "hidden_dropout_prob");
    refused("\"classifier_dropout\": null", "\"classifier_dropout\": -0.1", "classifier_dropout");
    for (name, act) in [
        ("gelu_new", HiddenAct::GeluTanh),
        ("gelu_pytorch_tanh", HiddenAct::GeluTanh),
        ("gelu_python", HiddenAct::Gelu),
        ("quick_gelu", HiddenAct::QuickGelu),
        ("swish", HiddenAct::Silu),
    ] {
        let config = with("\"hidden_act\": \"gelu\"", &format!("\"hidden_act\": \"{name}\"")).unwrap();
        assert_eq!(config.hidden_act, act, "{name}");
    }
    let accepted = with(
        "\"model_type\"",
        "\"problem_type\": \"single_label_classification\", \"embedding_size\": 32, \"model_type\"",
    );
    assert!(accepted.is_ok(), "{accepted:?}");
    // The activations compute HF's formulas.
    let x = Tensor::from_slice(&[-3.0f32, -0.5, 0.0, 0.7, 4.0]);
    let close = |a: &Tensor, b: &Tensor| max_abs_diff(a, b) < 1e-6;
    assert!(close(&HiddenAct::QuickGelu.forward(&x), &(&x * (&x * 1.702).sigmoid())));
    let tanh_gelu = &x
        * 0.5
        * ((&x + x.pow_tensor_scalar(3) * 0.044715) * (2.0f64 / std::f64::consts::PI).sqrt()).tanh().g_add_scalar(1.0);
    assert!(close(&HiddenAct::GeluTanh.forward(&x), &tanh_gelu));
    assert!(close(&HiddenAct::Relu6.forward(&(&x * 2.0)), &(&x * 2.0).clamp(0.0, 6.0)));
    // RoBERTa's position table: 514 positions hold 512 tokens after the padding offset.
    let roberta = config(&case("unused-pooler-tensors"));
    assert_eq!(roberta.max_sequence_length(), 40 - 1 - 1);
}

#[test]
fn a_spec_key_defined_twice_is_refused_at_its_second_line() {
    let path = case("duplicate-yaml-key/spec.yaml");
    let err = spec::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (Some(8), "methods.said"), "{err}");
    assert!(err.message.contains("`said` is defined twice"), "{err}");
    assert!(err.to_string().starts_with(&format!("{}:8: methods.said:", path.display())), "{err}");
}

/// `../shared/cases3/21`: YAML merge keys (`<<: *common`) work as YAML 1.1 defines them (the
/// mapping's own keys win), `x-` keys hold anchors, and an error inside a merged document still
/// names its line.
#[test]
fn yaml_merge_keys_and_anchor_holders_read_as_yaml_defines_them() {
    let Some(cases) = cases3("the YAML merge-key case") else { return };
    let folder = cases.join("21-spec-yaml-anchors-merge-keys");
    let text = |name: &str| std::fs::read_to_string(folder.join(name)).unwrap();
    let plan = |name: &str| spec::parse(&text(name), &folder.join(name)).unwrap_or_else(|err| panic!("{err}"));
    for name in ["anchor-holder-key.yaml", "merge-training.yaml"] {
        let training = &plan(name).searches[0].plan.training;
        assert_eq!((training.epochs, training.batch_size, training.max_len), (2, 8, 32), "{name}");
    }
    let anchors = plan("anchors.yaml");
    assert_eq!(anchors.searches[0].plan.seeds, [0, 1]);
    assert_eq!(anchors.searches[0].plan.baseline.lrs, [1.0e-3, 2.0e-3]);
    let merge = plan("merge.yaml");
    let methods: Vec<(&str, &[f64], Option<usize>)> = merge
        .searches
        .iter()
        .map(|search| (search.plan.method.name.as_str(), search.plan.method.lrs.as_slice(), search.plan.method.lr_d0))
        .collect();
    assert_eq!(methods, [("said", &[0.1, 0.3][..], Some(1000)), ("said_fast", &[1.0][..], Some(1000))]);
    let bad = text("merge.yaml").replace("    lr: [1.0]", "    lr: [1.0]\n    bogus: 1");
    let err = spec::parse(&bad, &folder.join("merge.yaml")).unwrap_err();
    assert!(err.message.contains("unknown field `bogus`"), "{err}");
    assert_eq!((err.field.as_str(), err.line), ("methods.said_fast", Some(10)), "{err}");
}
