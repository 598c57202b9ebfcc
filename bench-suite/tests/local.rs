//! Your own checkpoint and your own task, as a user types them: a local HF-format folder (a tiny
//! random-weight BERT written here: config.json, model.safetensors, tokenizer.json) and a task
//! over local CSV, TSV and JSONL files, through `bench-suite reproduce --spec` and
//! `bench-suite finetune`. The runs' signatures and provenance carry both identities, a changed
//! file changes the keys, and every bad input is refused before any work, naming itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bench_suite::synthetic;
use encoders::models::SequenceClassifier;
use results::ResultsDir;
use tch::{Device, Tensor, nn};

const SPECIAL: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
const WORDS: [&str; 12] =
    ["good", "bad", "film", "plot", "the", "was", "very", "not", "actors", "music", "fine", "dull"];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-suite-local-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn binary(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    command.env("INTRINSIC_BENCH_HOME", home).env("RUST_BACKTRACE", "0");
    command
}

/// Writes a tiny BERT checkpoint folder: the synthetic tiny config (vocab 40), random weights
/// from the keyed RNG under HF's names (no task head), and a WordPiece tokenizer.json over
/// [`vocabulary`].
fn tiny_model(dir: &Path) {
    let _draws = crate::support::draws();
    std::fs::create_dir_all(dir).unwrap();
    let config = r#"{"model_type": "bert", "vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32, "type_vocab_size": 2,
        "pad_token_id": 0, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _model = SequenceClassifier::new(vs.root(), &synthetic::tiny_config("bert"), 2);
    synthetic::init_weights(&vs, 7);
    let tensors: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(name, _)| !name.starts_with("classifier.")).collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    // The tokenizer.json HF builds from that vocab.txt, which stays beside it (a folder with
    // both reads tokenizer.json).
    std::fs::write(dir.join("vocab.txt"), vocabulary().join("\n") + "\n").unwrap();
    let json = trainer::tokenize::read_tokenizer(&dir.join("vocab.txt")).unwrap().json;
    std::fs::write(dir.join("tokenizer.json"), json).unwrap();
}

/// The tiny model's vocabulary: the special tokens, [`WORDS`], unused fillers and `[MASK]` (40).
fn vocabulary() -> Vec<String> {
    SPECIAL
        .iter()
        .chain(WORDS.iter())
        .map(|token| (*token).to_owned())
        .chain((SPECIAL.len() + WORDS.len()..39).map(|id| format!("[unused{id}]")))
        .chain(["[MASK]".to_owned()])
        .collect()
}

/// A learnable review task: "good" reviews are positive.
fn reviews(n: usize, offset: usize) -> Vec<(String, &'static str)> {
    (0..n)
        .map(|i| {
            let i = i + offset;
            let positive = i.is_multiple_of(2);
            let (word, other) = if positive { ("good", "fine") } else { ("bad", "dull") };
            (format!("the {} was very {word} {other}", WORDS[2 + i % 2]), if positive { "pos" } else { "neg" })
        })
        .collect()
}

/// The task in three files: train as CSV, dev as JSONL (and a TSV copy of train).
fn task_files(dir: &Path) {
    let csv: String = reviews(48, 0).iter().map(|(text, label)| format!("\"{text}\",{label}\n")).collect();
    std::fs::write(dir.join("train.csv"), format!("review,label\n{csv}")).unwrap();
    let tsv: String = reviews(48, 0).iter().map(|(text, label)| format!("{text}\t{label}\n")).collect();
    std::fs::write(dir.join("train.tsv"), format!("review\tlabel\n{tsv}")).unwrap();
    let jsonl: String = reviews(16, 48)
        .iter()
        .map(|(text, label)| format!("{}\n", serde_json::json!({"review": text, "label": label})))
        .collect();
    std::fs::write(dir.join("dev.jsonl"), jsonl).unwrap();
}

fn spec(train: &str) -> String {
    format!(
        "description: my model on my task
seeds: [0]
training: {{epochs: 2, batch_size: 8, max_len: 16}}
search: {{mode: grid, d_min: 100, d_max: 100, threshold: 0.9}}
methods:
  full: {{method: full, lr: [1.0e-3]}}
  said: {{method: said, lr: [0.5]}}
tasks:
  reviews: {{train: {train}, dev: dev.jsonl, text: [review], label: label, labels: [neg, pos]}}
experiments:
  - name: mine
    models: [./tiny-model]
    tasks: [reviews]
    methods: [said]
"
    )
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn fails(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "should fail:\n{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_local_folder_and_a_local_task_run_with_their_hashes_in_every_record() {
    let dir = scratch("spec");
    tiny_model(&dir.join("tiny-model"));
    task_files(&dir);
    let spec_path = dir.join("mine.yaml");
    std::fs::write(&spec_path, spec("train.csv")).unwrap();
    let out = dir.join("runs");
    let home = dir.join("home");
    run(binary(&home).arg("reproduce").arg("--spec").arg(&spec_path).arg("--out").arg(&out));
    let results = ResultsDir::at(&out);
    let runs = results.runs().unwrap();
    let searches = results.searches().unwrap();
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0].plan.model, "tiny-model", "a local folder is named by its own name");
    let architecture = searches[0].architecture.clone().unwrap();
    assert_eq!((architecture.model_type.as_str(), architecture.num_hidden_layers), ("bert", 2));
    assert!(!runs.is_empty());
    let revision = runs[0].spec.model_revision.clone();
    let data = runs[0].spec.data.clone();
    assert_eq!((revision.len(), data.len()), (12, 12));
    for record in &runs {
        assert!(record.signature.contains(&format!("model:tiny-model@{revision}")), "{}", record.signature);
        assert!(record.signature.contains("task:reviews|"), "{}", record.signature);
        assert!(record.signature.contains(&format!("data:{data}")), "{}", record.signature);
        let inputs: Vec<&str> = record.provenance.inputs.keys().map(String::as_str).collect();
        assert_eq!(
            inputs,
            ["model/config.json", "model/model.safetensors", "model/tokenizer.json", "task/dev", "task/train"]
        );
        assert_eq!(record.train_examples, 48);
    }
    assert!(searches[0].provenance.inputs.contains_key("task/train"));

    // The same command again reuses everything; the same files elsewhere are the same runs.
    run(binary(&home).arg("reproduce").arg("--spec").arg(&spec_path).arg("--out").arg(&out));
    assert_eq!(results.runs().unwrap().len(), runs.len());

    // The same task from TSV reads the same examples but is another file: other keys.
    let keys = |dir: &Path| results_keys(&ResultsDir::at(dir));
    let before = keys(&out);
    std::fs::write(&spec_path, spec("train.tsv")).unwrap();
    run(binary(&home).arg("reproduce").arg("--spec").arg(&spec_path).arg("--out").arg(&out));
    let with_tsv = keys(&out);
    assert!(with_tsv.len() > before.len(), "a changed data file never reuses an old result");

    // A changed weight file: other model revision, other keys.
    std::fs::write(&spec_path, spec("train.csv")).unwrap();
    let weights = dir.join("tiny-model/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    run(binary(&home).arg("reproduce").arg("--spec").arg(&spec_path).arg("--out").arg(&out));
    let with_changed_model = keys(&out);
    assert!(with_changed_model.len() > with_tsv.len(), "a changed model file never reuses an old result");
    let revisions: std::collections::BTreeSet<String> =
        results.runs().unwrap().iter().map(|record| record.spec.model_revision.clone()).collect();
    assert_eq!(revisions.len(), 2);
}

fn results_keys(results: &ResultsDir) -> Vec<String> {
    results.runs().unwrap().into_iter().map(|record| record.key).collect()
}

#[test]
fn finetune_takes_a_folder_and_a_task_file() {
    let dir = scratch("finetune");
    tiny_model(&dir.join("tiny-model"));
    task_files(&dir);
    std::fs::write(
        dir.join("reviews.yaml"),
        "train: train.csv\ndev: dev.jsonl\ntext: [review]\nlabel: label\nlabels: [neg, pos]\n",
    )
    .unwrap();
    let finetune = |model: &str| -> serde_json::Value {
        let output = run(binary(&dir.join("home"))
            .current_dir(&dir)
            .args(["finetune", "--model", model, "--task", "reviews.yaml", "--mode", "said", "--d", "100"])
            .args(["--epochs", "1", "--batch-size", "8", "--max-len", "16", "--lr", "0.5"]));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let result = finetune("./tiny-model");
    assert_eq!(result["model"], "tiny-model");
    assert_eq!(result["task"], "reviews");
    assert_eq!(result["train_examples"], 48);

    // The same model published with BERT's vocab.txt instead of tokenizer.json (as the
    // MultiBERTs and the BERT miniatures are): the tokenizer built from it gives the same ids,
    // so the same run.
    let vocab_model = dir.join("vocab-model");
    std::fs::create_dir_all(&vocab_model).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(dir.join("tiny-model").join(file), vocab_model.join(file)).unwrap();
    }
    std::fs::copy(dir.join("tiny-model/vocab.txt"), vocab_model.join("vocab.txt")).unwrap();
    let from_vocab = finetune("./vocab-model");
    assert_eq!(from_vocab["model"], "vocab-model");
    for field in ["steps", "evaluations", "best", "padding_fraction"] {
        assert_eq!(from_vocab[field], result[field], "{field}");
    }
}

#[test]
fn bad_local_inputs_are_refused_before_any_work() {
    let dir = scratch("bad");
    tiny_model(&dir.join("tiny-model"));
    task_files(&dir);
    let home = dir.join("home");
    let check = |text: String| -> String {
        let path = dir.join("bad.yaml");
        std::fs::write(&path, text).unwrap();
        fails(binary(&home).arg("reproduce").arg("--spec").arg(&path).arg("--out").arg(dir.join("runs")))
    };
    // A folder that does not exist, and one without its tokenizer.
    let err = check(spec("train.csv").replace("./tiny-model", "./no-such-model"));
    assert!(err.contains("experiments[0].models[0]") && err.contains("no-such-model: no such folder"), "{err}");
    std::fs::create_dir_all(dir.join("half-model")).unwrap();
    std::fs::copy(dir.join("tiny-model/config.json"), dir.join("half-model/config.json")).unwrap();
    std::fs::copy(dir.join("tiny-model/model.safetensors"), dir.join("half-model/model.safetensors")).unwrap();
    let err = check(spec("train.csv").replace("./tiny-model", "./half-model"));
    assert!(err.contains("half-model: no tokenizer.json"), "{err}");
    // A missing column, an unknown label, a task named like one of the suite's.
    let err = check(spec("train.csv").replace("text: [review]", "text: [sentence]"));
    assert!(err.contains("tasks.reviews") && err.contains("train.csv:1: sentence: no such column"), "{err}");
    let err = check(spec("train.csv").replace("labels: [neg, pos]", "labels: [neg, positive]"));
    assert!(err.contains("train.csv:2: label: `pos` is not one of the labels (neg, positive)"), "{err}");
    let err =
        check(spec("train.csv").replace("  reviews: {", "  sst2: {").replace("tasks: [reviews]", "tasks: [sst2]"));
    assert!(err.contains("`sst2` is a task of the suite"), "{err}");
    // Nothing was written.
    assert!(!dir.join("runs").exists(), "refused before any work");
    // On the command line: a folder that is not a model, a task file that is not there.
    std::fs::create_dir_all(dir.join("not-a-model")).unwrap();
    let finetune = |model: &str, task: &str| {
        fails(binary(&home).current_dir(&dir).args(["finetune", "--model", model, "--task", task, "--mode", "full"]))
    };
    let err = finetune("./not-a-model", "sst2");
    assert!(err.contains("--model") && err.contains("no config.json"), "{err}");
    let err = finetune("./tiny-model", "nope");
    assert!(err.contains("--task nope: `nope` is not a task (known: mrpc, qqp, sst2"), "{err}");
    let err = finetune("./tiny-model", "gone.yaml");
    assert!(err.contains("--task") && err.contains("gone.yaml"), "{err}");
    // A training setting is named by its flag, as the spec names it by its field.
    let err = fails(binary(&home).current_dir(&dir).args([
        "finetune",
        "--model",
        "./tiny-model",
        "--task",
        "sst2",
        "--mode",
        "full",
        "--batch-size",
        "0",
    ]));
    assert!(err.contains("--batch-size 0: a batch holds at least 1 example; use 1 or more"), "{err}");
}

/// A hub checkpoint the manifest does not list is named `org/name@<commit>`: offline and not
/// cached, `--check-only` lists it with the files still to fetch and succeeds, a run fails naming
/// them and where they come from; a branch is refused.
#[test]
fn a_hub_checkpoint_is_pinned_by_commit_and_fetched_like_the_manifest() {
    let dir = scratch("hub");
    task_files(&dir);
    let home = dir.join("home");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let path = dir.join("hub.yaml");
    std::fs::write(&path, spec("train.csv").replace("./tiny-model", &format!("someone/their-bert@{commit}"))).unwrap();
    let checked = run(binary(&home)
        .arg("reproduce")
        .arg("--spec")
        .arg(&path)
        .args(["--check-only", "--offline"])
        .arg("--out")
        .arg(dir.join("runs")));
    let listed = String::from_utf8_lossy(&checked.stderr);
    assert!(
        listed.contains(&format!(
            "someone/their-bert@{commit} reviews said: D and m once someone/their-bert@{commit} is fetched"
        )) && listed.contains("to fetch before these searches can run: 3 files")
            && listed.contains(&format!("someone/their-bert@{commit} / model.safetensors (size from the hub)")),
        "{listed}"
    );
    let err = fails(
        binary(&home).arg("reproduce").arg("--spec").arg(&path).arg("--offline").arg("--out").arg(dir.join("runs")),
    );
    assert!(err.contains("experiments[0].models[0]"), "{err}");
    assert!(
        err.contains(&format!("https://huggingface.co/someone/their-bert/resolve/{commit}/model.safetensors")),
        "{err}"
    );
    std::fs::write(&path, spec("train.csv").replace("./tiny-model", "someone/their-bert@main")).unwrap();
    let err = fails(
        binary(&home).arg("reproduce").arg("--spec").arg(&path).arg("--check-only").arg("--out").arg(dir.join("runs")),
    );
    assert!(err.contains("pin a commit"), "{err}");
}

/// A folder saved from a `*ForSequenceClassification` carries its own head (here for three
/// labels, where the task has two): a run's head is always fresh from its seed, so the folder
/// works; a folder whose weights miss an encoder tensor is refused at the check, before any run.
#[test]
fn a_checkpoints_own_head_is_replaced_and_missing_weights_are_refused_up_front() {
    let dir = scratch("heads");
    task_files(&dir);
    let home = dir.join("home");
    tiny_model(&dir.join("tiny-model"));
    let weights = dir.join("tiny-model/model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&weights).unwrap();
    tensors.push(("classifier.weight".to_owned(), Tensor::zeros([3, 32], (tch::Kind::Float, Device::Cpu))));
    tensors.push(("classifier.bias".to_owned(), Tensor::zeros([3], (tch::Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&tensors, &weights).unwrap();
    let path = dir.join("heads.yaml");
    std::fs::write(&path, spec("train.csv")).unwrap();
    run(binary(&home).arg("reproduce").arg("--spec").arg(&path).arg("--check-only").arg("--out").arg(dir.join("runs")));
    std::fs::write(dir.join("reviews.yaml"), "train: train.csv\ndev: dev.jsonl\ntext: [review]\nlabel: label\n")
        .unwrap();
    run(binary(&home)
        .current_dir(&dir)
        .args(["finetune", "--model", "./tiny-model", "--task", "reviews.yaml", "--mode", "full"])
        .args(["--epochs", "1", "--batch-size", "8", "--max-len", "16"]));
    tensors.retain(|(name, _)| name != "bert.encoder.layer.1.output.dense.weight");
    Tensor::write_safetensors(&tensors, &weights).unwrap();
    let err = fails(
        binary(&home).arg("reproduce").arg("--spec").arg(&path).arg("--check-only").arg("--out").arg(dir.join("runs")),
    );
    assert!(
        err.contains("experiments[0].models[0]") && err.contains("missing: bert.encoder.layer.1.output.dense.weight"),
        "{err}"
    );
}

/// A folder edited after it was read (during a long reproduction) is refused when a run loads it,
/// instead of training on bytes its key does not name.
#[test]
fn a_folder_edited_after_it_was_read_is_refused() {
    let dir = scratch("edited");
    tiny_model(&dir.join("tiny-model"));
    let local = bench_suite::reference::LocalModel::open(&dir.join("tiny-model")).unwrap();
    assert_eq!(local.name, "tiny-model");
    local.verify().unwrap();
    std::fs::write(dir.join("tiny-model/tokenizer.json"), "{}").unwrap();
    let err = local.verify().unwrap_err().to_string();
    assert!(err.contains("tokenizer.json: changed since the spec was read"), "{err}");
}

/// A local folder with `pytorch_model.bin` and no `model.safetensors` opens with the .bin as its
/// weights; with both, safetensors is read (HF's order); with neither, the error names both.
#[test]
fn a_local_folder_takes_pytorch_model_bin_when_it_has_no_safetensors() {
    use bench_suite::reference::LocalModel;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("tiny");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("config.json"), "{}").unwrap();
    std::fs::write(folder.join("tokenizer.json"), "{}").unwrap();
    let err = LocalModel::open(&folder).unwrap_err().to_string();
    assert!(err.contains("no model.safetensors and no pytorch_model.bin"), "{err}");
    std::fs::copy(crate::support::golden("pytorch_bin/tiny_bert/pytorch_model.bin"), folder.join("pytorch_model.bin"))
        .unwrap();
    let model = LocalModel::open(&folder).unwrap();
    assert_eq!(model.files.weights, folder.join("pytorch_model.bin"));
    std::fs::copy(crate::support::golden("pytorch_bin/state_dict.safetensors"), folder.join("model.safetensors"))
        .unwrap();
    let model = LocalModel::open(&folder).unwrap();
    assert_eq!(model.files.weights, folder.join("model.safetensors"));
}
