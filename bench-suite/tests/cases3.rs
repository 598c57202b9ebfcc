//! The third set of inputs shaped like public fault reports (`../shared/cases3`, named by
//! `INTRINSIC_BENCH_TEST_CASES`, which `cargo xtask test` sets): task files, model folders and
//! corpora through the command line as a user types them, with the right behaviour of each
//! case's README row. (The task files' every case is also read line by line in `datasets`'
//! tests; the YAML case is in `cases.rs`.)

use std::path::Path;
use std::process::{Command, Output};

use crate::support::cases3;

/// `bench-suite` with its own cache in `home`, run from `dir`.
fn binary(home: &Path, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    command.env("INTRINSIC_BENCH_HOME", home).env("RUST_BACKTRACE", "0").current_dir(dir);
    command
}

/// The README's `FT` flags: one short SAID run on the shared tiny BERT.
const FT: [&str; 14] = [
    "--mode",
    "said",
    "--d",
    "200",
    "--lr",
    "0.3",
    "--epochs",
    "1",
    "--max-train-examples",
    "32",
    "--max-len",
    "32",
    "--batch-size",
    "8",
];

fn finetune(cases: &Path, home: &Path, case: &str, model: &str, task: &str) -> Output {
    binary(home, &cases.join(case)).args(["finetune", "--model", model, "--task", task]).args(FT).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn task_files_and_model_folders_are_read_or_refused_before_any_work() {
    let Some(cases) = cases3("the task-file and model-folder cases") else { return };
    let home = tempfile::tempdir().unwrap();
    let tiny = "../00-shared/tiny-bert";
    // 01: a UTF-16 task file trains.
    let output = finetune(&cases, home.path(), "01-task-utf16-bom", tiny, "task.yaml");
    assert!(output.status.success(), "{}", stderr(&output));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["train_examples"], 30);
    // 03, 05-07: refused at the physical line, naming the file; labels spelled two ways train
    // as one class.
    for (case, task, says) in [
        ("03-task-line-endings", "task-cr-csv.yaml", "cr.csv:10: label: `neutral` is not one of the labels"),
        ("04-task-quoted-newlines-blank-lines", "task.yaml", "train.csv:13: label: `maybe`"),
        ("06-task-nan-empty-labels", "task.yaml", "train.csv:9: label: the label is empty"),
        ("07-task-header-repeated", "task.yaml", "train.csv:32: row: repeats the header row"),
    ] {
        let output = finetune(&cases, home.path(), case, tiny, task);
        assert!(!output.status.success() && stderr(&output).contains(says), "{case}: {}", stderr(&output));
    }
    let output = finetune(&cases, home.path(), "05-task-label-spellings", tiny, "task-mixed-int-float.yaml");
    assert!(output.status.success(), "{}", stderr(&output));
    // 14: a Git LFS pointer instead of the weights, either file name.
    for folder in ["./tiny-bert-pointer", "./tiny-bert-pointer-bin"] {
        let output = finetune(&cases, home.path(), "14-model-git-lfs-pointer", folder, "../00-shared/sst2-200.yaml");
        let err = stderr(&output);
        assert!(!output.status.success() && err.contains("this is a Git LFS pointer"), "{folder}: {err}");
        assert!(err.contains("97728 bytes") && err.contains("git lfs pull"), "{err}");
    }
    // 15: what HF loads loads (tied tensors at one offset, a number in `__metadata__`, an unused
    // U16 buffer): the check and the load read the header with one parser.
    for folder in ["./tied-offsets", "./metadata-number", "./unused-u16-buffer"] {
        let case = "15-model-safetensors-header-quirks";
        let output = finetune(&cases, home.path(), case, folder, "../00-shared/sst2-200.yaml");
        assert!(output.status.success(), "{folder}: {}", stderr(&output));
    }
}

/// 17: an added token beyond `vocab_size` is refused when the spec is checked, naming the token,
/// its id and the vocabulary size (it used to pass the check and panic in training). The case's
/// folder needs MiniLM's weights from the mirror.
#[test]
fn an_added_token_beyond_the_vocabulary_is_refused_at_the_check() {
    let Some(cases) = cases3("the added-token case") else { return };
    let Some(mirror) = crate::support::mirror("the added-token case") else { return };
    let dir = tempfile::tempdir().unwrap();
    let case = cases.join("17-model-added-tokens-beyond-vocab");
    let model = dir.path().join("minilm-added-token");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(case.join("minilm-added-token").join(file), model.join(file)).unwrap();
    }
    std::fs::copy(crate::support::minilm(&mirror).join("model.safetensors"), model.join("model.safetensors")).unwrap();
    for file in ["spec.yaml", "task.yaml", "train.csv"] {
        std::fs::copy(case.join(file), dir.path().join(file)).unwrap();
    }
    let output = binary(&dir.path().join("home"), dir.path())
        .args(["reproduce", "--spec", "spec.yaml", "--check-only", "--out", "runs"])
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("`<product>` has id 30522, beyond the model's 30522 embeddings"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// 35: a Latin-1 corpus is refused naming the file and the line, with what to do; the other
/// corpora of the case are read.
#[test]
fn a_corpus_that_is_not_utf8_is_refused_by_its_line() {
    let Some(cases) = cases3("the corpus cases") else { return };
    let dir = tempfile::tempdir().unwrap();
    let case = cases.join("35-pretrain-corpora");
    let output = binary(&dir.path().join("home"), &case)
        .args(["pretrain", "--spec", "pretrain-latin1.yaml", "--offline", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("latin1.txt:") && err.contains("not UTF-8: byte 0x"), "{err}");
    assert!(err.contains("Latin-1") && err.contains("iconv"), "{err}");
    let output = binary(&dir.path().join("home"), &case)
        .args(["pretrain", "--spec", "pretrain-docs.yaml", "--offline", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

/// 27 and 28: a run whose record is deleted or truncated is trained again by the next
/// `reproduce` (its search re-derived, the other runs reused); an edited record and a record of
/// a newer schema (a run's or a pre-training's) are refused naming the file, the newer one with
/// "upgrade the suite" and left as it is.
#[test]
fn run_records_missing_unreadable_edited_or_newer() {
    let Some(cases) = cases3("the results-folder cases") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, out) = (dir.path().join("home"), dir.path().join("runs"));
    let reproduce = |case: &str, spec: &str| {
        binary(&home, &cases.join(case))
            .args(["reproduce", "--spec", spec, "--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let output = reproduce("27-results-truncated-record", "spec.yaml");
    assert!(output.status.success(), "{}", stderr(&output));
    let folder = results::ResultsDir::at(&out);
    let runs = folder.runs().unwrap();
    assert!(runs.len() >= 3, "{} runs", runs.len());
    let (deleted, truncated, edited) = (&runs[0], &runs[1], &runs[2]);
    std::fs::remove_file(folder.run_path(&deleted.key)).unwrap();
    let text = std::fs::read_to_string(folder.run_path(&truncated.key)).unwrap();
    std::fs::write(folder.run_path(&truncated.key), &text[..text.len() / 3]).unwrap();
    let output = reproduce("27-results-truncated-record", "spec.yaml");
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("have no record") && err.contains("running the search again"), "{err}");
    assert!(err.contains(&format!("{}.json.unreadable", truncated.key)), "{err}");
    let again = folder.runs().unwrap();
    assert_eq!(again.len(), runs.len());
    for (before, after) in runs.iter().zip(&again) {
        assert_eq!((&before.key, before.best_score), (&after.key, after.best_score));
    }
    // A wait on a lock another process holds (one stopped with Ctrl-Z, say) says what it waits
    // for and ends within a second of SIGTERM, exit 143.
    std::fs::remove_file(folder.run_path(&deleted.key)).unwrap();
    let search = folder.searches().unwrap().remove(0);
    let held = folder.lock(&search.key).unwrap();
    let mut child = binary(&home, &cases.join("27-results-truncated-record"))
        .args(["reproduce", "--spec", "spec.yaml", "--out", out.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let waiting = lines.by_ref().map(Result::unwrap).find(|line| line.contains("waiting 0 s for search")).unwrap();
    assert!(waiting.contains(&format!("which process {} is working on", std::process::id())), "{waiting}");
    let signalled = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(signalled.elapsed() < std::time::Duration::from_secs(2), "{:?}", signalled.elapsed());
    assert_eq!(status.code(), Some(143), "{rest:?}");
    assert!(rest.iter().any(|line| line.contains("terminated (SIGTERM) while waiting for search")), "{rest:?}");
    drop(held);
    // Edited by hand: refused, naming it.
    let path = folder.run_path(&edited.key);
    let original = std::fs::read_to_string(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&original).unwrap();
    value["best_score"] = serde_json::json!(0.99);
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let output = reproduce("27-results-truncated-record", "spec.yaml");
    let err = stderr(&output);
    assert!(
        !output.status.success() && err.contains(&format!("{}: its content does not match", path.display())),
        "{err}"
    );
    // Written by a newer version: refused with "upgrade the suite", never advice to delete.
    let mut newer: serde_json::Value = serde_json::from_str(&original).unwrap();
    newer["schema"] = serde_json::json!(7);
    newer["field_of_schema_7"] = serde_json::json!(true);
    let newer = serde_json::to_string_pretty(&newer).unwrap();
    std::fs::write(&path, &newer).unwrap();
    let output = reproduce("27-results-truncated-record", "spec.yaml");
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("(record schema 7") && err.contains("upgrade the suite"), "{err}");
    assert!(!err.contains("remove it") && std::fs::read_to_string(&path).unwrap() == newer, "{err}");
    // A pre-training's record of a newer version blocks nothing silently: the same refusal.
    let output = reproduce("28-results-newer-schema", "spec-pretrain.yaml");
    assert!(output.status.success(), "{}", stderr(&output));
    let pretraining = std::fs::read_dir(out.join("pretraining")).unwrap().next().unwrap().unwrap().path();
    let record = pretraining.join("record.json");
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    value["schema"] = serde_json::json!(3);
    value["tokens_seen_by_layer"] = serde_json::json!([1, 2]);
    std::fs::write(&record, serde_json::to_string(&value).unwrap()).unwrap();
    let output = reproduce("28-results-newer-schema", "spec-pretrain.yaml");
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("(record schema 3") && err.contains("upgrade the suite"), "{err}");
}

/// A sharded checkpoint (`model.safetensors.index.json` and its shards, as `save_pretrained`
/// writes above its shard size) trains as the single file does; a missing shard is refused
/// before any work, named.
#[test]
fn a_sharded_checkpoint_trains_as_one_file_does() {
    let Some(cases) = cases3("the sharded-checkpoint kind") else { return };
    let dir = tempfile::tempdir().unwrap();
    let tiny = cases.join("00-shared/tiny-bert");
    let sharded = dir.path().join("tiny-bert-sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    for entry in std::fs::read_dir(&tiny).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "model.safetensors" {
            std::fs::copy(&path, sharded.join(path.file_name().unwrap())).unwrap();
        }
    }
    let tensors = encoders::checkpoint::read_tensors(&tiny.join("model.safetensors")).unwrap();
    let names: Vec<&String> = tensors.keys().collect();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [("model-00001-of-00002.safetensors", first), ("model-00002-of-00002.safetensors", second)] {
        let shard: Vec<(&str, &tch::Tensor)> = part.iter().map(|name| (name.as_str(), &tensors[*name])).collect();
        tch::Tensor::write_safetensors(&shard, sharded.join(file)).unwrap();
        for name in part {
            weight_map.insert((*name).clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(sharded.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let home = dir.path().join("home");
    let task = cases.join("00-shared/sst2-200.yaml");
    let score = |model: &Path| {
        let output = binary(&home, dir.path())
            .args(["finetune", "--model", model.to_str().unwrap(), "--task", task.to_str().unwrap()])
            .args(FT)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        // Every evaluation (accuracy, predictions, training loss) is the unsharded folder's.
        assert!(result["evaluations"].as_array().is_some_and(|evaluations| !evaluations.is_empty()), "{result}");
        result["evaluations"].clone()
    };
    assert_eq!(score(&sharded), score(&tiny));
    std::fs::remove_file(sharded.join("model-00002-of-00002.safetensors")).unwrap();
    let output = binary(&home, dir.path())
        .args(["finetune", "--model", sharded.to_str().unwrap(), "--task", task.to_str().unwrap()])
        .args(FT)
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(!output.status.success() && err.contains("model-00002-of-00002.safetensors, which is missing"), "{err}");
}
