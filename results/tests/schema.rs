//! The schema, pinned. Run keys: a key names a result on disk, so a change to what it hashes (a new
//! field, a renamed one, another default) must be a deliberate one, made here, and not a silent
//! re-keying of every committed result; test knobs are not part of keys. Records: every committed
//! result file (and the reports' fixtures) reads and writes back unchanged.

use std::path::Path;

use results::{Mode, ResultsDir, RunSpec, TrainConfig};

/// The torch version of the workspace (`subspace::TORCH_VERSION`; this crate links no torch).
const TORCH_VERSION: &str = "2.11.0";
use expect_test::expect;

fn fixed() -> RunSpec {
    let mut train = TrainConfig::new(Mode::Said, 1861, 0.3);
    train.epochs = 1;
    train.length_buckets = Some(16);
    train.train_eval_examples = Some(0);
    RunSpec {
        model: "sentence-transformers/all-MiniLM-L6-v2".to_owned(),
        model_revision: "c9745ed1d9f207416be6d2e6f8de32d1f16199bf".to_owned(),
        task: "sst2".to_owned(),
        data: "0123abcd".to_owned(),
        max_len: 64,
        max_train_examples: Some(2000),
        subset_seed: 0,
        device: "cpu".to_owned(),
        torch: TORCH_VERSION.to_owned(),
        train,
    }
}

#[test]
fn a_fixed_run_has_a_pinned_key_and_signature() {
    let spec = fixed();
    expect!["ed6062e835289a0f"].assert_eq(&spec.key());
    expect!["said|group:per_layer|scope:global|compat:none|task:sst2|metric:acc|model:all-MiniLM-L6-v2@c9745ed1d9f207416be6d2e6f8de32d1f16199bf|data:0123abcd|train:2000@0|d:1861|lr:3e-1|seed:0|epochs:1|torch:2.11.0|device:cpu|code:0123456789ab"].assert_eq(&spec.signature("0123456789ab"));
}

#[test]
fn test_knobs_are_not_part_of_the_key_and_everything_else_is() {
    let spec = fixed();
    let mut stopped = spec.clone();
    stopped.train.max_steps_this_process = Some(5);
    assert_eq!(stopped.key(), spec.key(), "a process stopped early works on the same run");
    type Change = (&'static str, fn(&mut RunSpec));
    let changes: [Change; 8] = [
        ("lr", |spec| spec.train.lr = 0.1),
        ("d", |spec| spec.train.d = 1862),
        ("seed", |spec| spec.train.seeds.dropout = 1),
        ("epochs", |spec| spec.train.epochs = 2),
        ("data", |spec| spec.data = "0123abce".to_owned()),
        ("model revision", |spec| spec.model_revision = "main".to_owned()),
        ("device", |spec| spec.device = "cuda".to_owned()),
        ("training accuracy", |spec| spec.train.train_eval_examples = None),
    ];
    for (what, change) in changes {
        let mut changed = spec.clone();
        change(&mut changed);
        assert_ne!(changed.key(), spec.key(), "{what} changes the run");
    }
}

/// Every committed results folder, `runs/<name>` (the presets' and the specs', as git tracks
/// them), relative to `root`; the four committed before must be among them (a folder deleted by
/// mistake fails here).
fn committed_results(root: &Path) -> Vec<String> {
    let dirs: Vec<String> =
        results::committed_results(root).unwrap().into_iter().map(|name| format!("runs/{name}")).collect();
    for dir in ["runs/quick", "runs/quick-seeds-3-5", "runs/quick-constant-lr", "runs/miniature"] {
        assert!(dirs.iter().any(|found| found == dir), "{dir} is missing: {dirs:?}");
    }
    dirs
}

/// Every committed result is stored under the key its spec hashes to today.
#[test]
fn committed_runs_are_stored_under_their_keys() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for dir in committed_results(root) {
        let runs = ResultsDir::at(root.join(&dir)).runs().unwrap();
        assert!(!runs.is_empty(), "{dir}: no runs");
        for run in runs {
            assert_eq!(run.spec.key(), run.key, "{dir}: {}", run.signature);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} runs");
}

/// The schema reads every committed result whole: each file parses, and writing the record back
/// gives the same JSON (a field this schema dropped or renamed would be lost on the way).
#[test]
fn committed_results_round_trip_through_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    for dir in committed_results(root).into_iter().chain(["reports/tests/fixtures/results".to_owned()]) {
        let dir = dir.as_str();
        // The pre-trainings' records, where the results have them.
        let pretraining = root.join(dir).join("pretraining");
        for entry in std::fs::read_dir(&pretraining).into_iter().flatten() {
            let path = entry.unwrap().path().join("record.json");
            let text = std::fs::read_to_string(&path).unwrap();
            let file = content(&text);
            let written =
                serde_json::to_value(results::read_record::<results::PretrainingRecord>(&path).unwrap().unwrap())
                    .unwrap();
            let mut differences = Vec::new();
            differ("", &file, &written, &mut differences);
            assert!(differences.is_empty(), "{}: file vs schema: {}", path.display(), differences.join("; "));
            checked += 1;
        }
        for sub in ["runs", "searches"] {
            for entry in std::fs::read_dir(root.join(dir).join(sub)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                let file = content(&text);
                let written = if sub == "runs" {
                    serde_json::to_value(results::read_record::<results::RunRecord>(&path).unwrap().unwrap()).unwrap()
                } else {
                    serde_json::to_value(results::read_record::<results::SearchRecord>(&path).unwrap().unwrap())
                        .unwrap()
                };
                let mut differences = Vec::new();
                differ("", &file, &written, &mut differences);
                assert!(differences.is_empty(), "{}: file vs schema: {}", path.display(), differences.join("; "));
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked} files");
}

/// A record file's JSON without the schema and checksum that the writer adds around the record.
fn content(text: &str) -> serde_json::Value {
    let mut file: serde_json::Value = serde_json::from_str(text).unwrap();
    let object = file.as_object_mut().unwrap();
    object.remove("schema");
    object.remove("checksum");
    file
}

/// The JSON paths where `file` and `written` differ, with both values.
fn differ(path: &str, file: &serde_json::Value, written: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (file, written) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|key| !a.contains_key(*key))) {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                if a.contains_key(key) != b.contains_key(key) {
                    out.push(format!(
                        "{path}.{key}: {} in the file, {} written",
                        a.contains_key(key),
                        b.contains_key(key)
                    ));
                } else {
                    differ(&format!("{path}.{key}"), x, y, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                differ(&format!("{path}[{index}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} in the file, {b} written")),
        _ => {}
    }
}

/// A coarse grid counts from `d_min`: where `every` divides d_min's grid index (100, 322 and
/// 1,037 are indices 0, 8 and 16, with `every: 4` or `8` as the specs before this change had) it
/// keeps the indices `i mod every = 0`, and from any other value it starts there.
#[test]
fn a_coarse_grid_counts_from_its_first_value() {
    use results::search::{d_grid, d_grid_every};
    assert_eq!(d_grid_every(322, 3340, 8), vec![322, 1037, 3340]);
    assert_eq!(d_grid_every(100, 1037, 8), vec![100, 322, 1037]);
    assert_eq!(d_grid_every(1037, 10_757, 8), vec![1037, 3340]);
    assert_eq!(d_grid_every(577, 5994, 8), vec![577, 1861, 5994]);
    assert_eq!(d_grid_every(500, 2000, 8), vec![577, 1861]);
    assert_eq!(d_grid_every(100, 200, 1), d_grid(100, 200));
    assert_eq!(d_grid(100, 200), vec![100, 115, 133, 155, 179]);
}

/// A sync tool's or an editor's copy of a record beside it (`<key> (conflicted copy).json`,
/// Syncthing's `<key>.sync-conflict-<date>.json`) is not a second run: only `<key>.json` counts.
#[test]
fn copies_beside_a_record_are_not_records() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runs/quick/runs");
    let source = std::fs::read_dir(&committed).unwrap().next().unwrap().unwrap().path();
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    for name in [
        format!("{stem}.json"),
        format!("{stem} (conflicted copy 2026-12-07).json"),
        format!("{stem}.sync-conflict-20261207-101010-ABCDEFG.json"),
        format!("{stem}.json~"),
        format!(".{stem}.json.tmp"),
    ] {
        std::fs::copy(&source, runs.join(name)).unwrap();
    }
    let records = ResultsDir::at(dir.path()).runs().unwrap();
    assert_eq!(records.iter().map(|record| record.key.as_str()).collect::<Vec<_>>(), [stem.as_str()]);
}

/// Records carry their schema and a checksum of their content: a record of a newer schema is
/// refused with "upgrade the suite" (and left as it is), an edited one is refused naming it, a
/// truncated one is set aside and counts as missing, and records of schema 1 (none of either)
/// are read as they are.
#[test]
fn records_are_versioned_checked_and_set_aside_when_unreadable() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runs/quick/runs");
    let source = std::fs::read_dir(&committed).unwrap().next().unwrap().unwrap().path();
    let legacy: results::RunRecord = results::read_record(&source).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = ResultsDir::new(dir.path()).unwrap();
    folder.save_run(&legacy).unwrap();
    let path = folder.run_path(&legacy.key);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema"], results::SCHEMA);
    assert!(value["checksum"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(folder.load_run(&legacy.key).unwrap().unwrap(), legacy);
    // Edited: the learning rate and the score changed by hand.
    let mut edited = value.clone();
    edited["spec"]["train"]["lr"] = serde_json::json!(0.5);
    edited["best_score"] = serde_json::json!(0.99);
    std::fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let message = folder.load_run(&legacy.key).unwrap_err().to_string();
    assert!(message.contains(&format!("{}: its content does not match the checksum", path.display())), "{message}");
    assert!(folder.runs().is_err(), "a report refuses it too");
    // Newer: refused before its fields are read, never with advice to delete; nothing rewrites it.
    value["schema"] = serde_json::json!(99);
    value["a_field_of_the_future"] = serde_json::json!([1, 2]);
    let newer = serde_json::to_string_pretty(&value).unwrap();
    std::fs::write(&path, &newer).unwrap();
    let message = folder.load_run(&legacy.key).unwrap_err().to_string();
    assert!(message.contains("written by a newer version of intrinsic-bench (record schema 99"), "{message}");
    assert!(message.contains("upgrade the suite") && !message.contains("delete"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
    // Truncated: set aside (not a record name), counted as missing.
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert!(folder.runs().unwrap().is_empty());
    assert_eq!(folder.load_run(&legacy.key).unwrap(), None);
    assert!(!path.exists());
    assert!(dir.path().join("runs").join(format!("{}.json.unreadable", legacy.key)).exists());
}

/// A wait on a held lock can be stopped, and the holder's pid is in the lock file for the
/// waiter's message.
#[test]
fn a_lock_wait_ends_when_asked_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = ResultsDir::new(dir.path()).unwrap();
    let held = folder.lock("k").unwrap();
    let pid = std::fs::read_to_string(dir.path().join("locks/k.lock")).unwrap();
    assert_eq!(pid, std::process::id().to_string());
    let asked = std::cell::Cell::new(0);
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 2
    };
    let every = std::time::Duration::from_secs(30);
    assert!(folder.lock_or_stop("k", "run x", every, &stop).unwrap().is_none());
    assert_eq!(asked.get(), 3);
    drop(held);
    assert!(folder.lock_or_stop("k", "run x", every, &|| true).unwrap().is_some());
}
