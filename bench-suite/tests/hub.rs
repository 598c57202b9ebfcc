//! The `paper` preset's size sweep and MultiBERTs trajectory and the `miniatures` preset end to end,
//! as a user types them, against a loopback hub that serves, under every repository and commit the
//! presets name (datasets/hub-revisions.tsv), a tiny checkpoint in the file kind that commit holds
//! (`golden/make_hub_fixtures.py`: `.bin` in fp16 storage, `.bin` with an int64 `position_ids`
//! buffer, the 2020 BERT config without `model_type`, `vocab.txt` alone, safetensors; bf16 `.bin`
//! from a local folder). The presets' models, commits, experiments and kinds are taken from the
//! shipped YAML; only the training settings, the grid and the task are made tiny (a local
//! sentence-pair task), so that every one of the 33 checkpoints trains in a test. Then
//! `--check-only --offline` of both presets lists every search with D and m from the cache, and a
//! SentencePiece-only commit is refused before any work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bench_suite::experiment::preset;
use datasets::pin::published;
use results::ResultsDir;

#[path = "../../datasets/tests/support/mod.rs"]
#[allow(dead_code)]
mod server;
use server::{Reply, Server};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hub")
}

/// The fixture folder of a listed repository: its family, in the kind its commit holds.
fn fixture_of(repo: &str, sources: &str) -> &'static str {
    match repo {
        "facebook/bart-base" => "bart_safetensors",
        "facebook/bart-large" => "bart_fp16_bin",
        _ if repo.contains("electra") => "electra_bin",
        _ if repo.contains("albert") => "albert_safetensors",
        _ if repo.contains("xlnet") => "xlnet_bin",
        _ if repo.contains("t5") => "t5_safetensors",
        _ if repo.contains("xlm-roberta") => "xlm_roberta_safetensors",
        _ if repo.contains("distilbert") => "distilbert_safetensors",
        _ if repo.contains("multiberts") => "multiberts_bin",
        _ if sources.contains("2020 config") => "miniature_2020_bin",
        // The miniatures' main heads carry a config.json with `model_type`.
        _ if repo.contains("bert_uncased") => "multiberts_bin",
        _ => panic!("no fixture for {repo}"),
    }
}

/// A file the hub serves: its name and bytes.
type Served = (String, Vec<u8>);

/// The loopback hub: the model API and `resolve/` for every listed commit, each holding the
/// files of its fixture that the list says the commit has (all of them where it does not say),
/// with the LFS sha256 of the weights as the hub gives it.
fn hub() -> Server {
    let mut repos: BTreeMap<(String, String), Vec<Served>> = BTreeMap::new();
    for entry in published() {
        let folder = fixtures().join(fixture_of(entry.repo, entry.sources));
        let mut files = Vec::new();
        for file in std::fs::read_dir(&folder).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            let listed = entry.files.as_ref().is_none_or(|files| files.contains(&name.as_str()));
            if name == "config.json" || listed {
                files.push((name.clone(), std::fs::read(folder.join(&name)).unwrap()));
            }
        }
        // A listed commit's own tokenizer file (XLM-R's sentencepiece.bpe.model) is served as
        // what it is: a file the suite does not read.
        for name in entry.files.iter().flatten().filter(|name| name.ends_with(".model")) {
            files.push(((*name).to_owned(), b"not read".to_vec()));
        }
        repos.insert((entry.repo.to_owned(), entry.commit.to_owned()), files);
    }
    Server::start_for(10_000, std::time::Duration::from_secs(1800), move |_, request| {
        for ((repo, commit), files) in &repos {
            if request.path == format!("api/models/{repo}/revision/{commit}?blobs=true") {
                let siblings: Vec<serde_json::Value> = files
                    .iter()
                    .map(|(name, body)| {
                        let mut sibling = serde_json::json!({"rfilename": name, "size": body.len()});
                        if name.ends_with(".bin") || name.ends_with(".safetensors") {
                            let digest = server::sha256(body);
                            sibling["lfs"] = serde_json::json!({"sha256": digest, "size": body.len()});
                        }
                        sibling
                    })
                    .collect();
                let info = serde_json::json!({"id": repo, "sha": commit, "siblings": siblings});
                return Reply::Ok(info.to_string().into_bytes());
            }
            if let Some(name) = request.path.strip_prefix(&format!("{repo}/resolve/{commit}/")) {
                return match files.iter().find(|(file, _)| file == name) {
                    Some((_, body)) => Reply::Ok(body.clone()),
                    None => Reply::Status(404),
                };
            }
        }
        Reply::Status(404)
    })
}

/// A local sentence-pair task (the presets' tasks made tiny): 32 pairs, a quarter held out.
fn pair_task(dir: &Path) {
    let mut csv = String::from("a,b,label\n");
    for i in 0..32 {
        let (word, label) = if i % 2 == 0 { ("good", 1) } else { ("bad", 0) };
        csv.push_str(&format!(
            "the film was {word},he said it was {word} and not {}.,{label}\n",
            ["plot", "the"][i % 2]
        ));
    }
    std::fs::write(dir.join("pairs.csv"), csv).unwrap();
}

/// The shipped preset `name` with its models, commits, experiments and kinds, and tiny training:
/// one seed, one epoch over 24 pairs, one learning rate a method, one grid value (d = 372), the
/// local pair task, on the CPU. `keep` names the experiments kept; models the manifest pins by
/// sha256 (the Table 1 four, which the loopback hub cannot serve) are dropped.
fn tiny_spec(name: &str, keep: &[&str]) -> String {
    tiny_spec_of(name, keep, |_| true)
}

/// [`tiny_spec`] with only the hub models `wanted` keeps.
fn tiny_spec_of(name: &str, keep: &[&str], wanted: impl Fn(&str) -> bool) -> String {
    let (_, text) = preset(name).unwrap();
    let mut spec: serde_norway::Value = serde_norway::from_str(text).unwrap();
    spec.apply_merge().unwrap();
    let map = spec.as_mapping_mut().unwrap();
    map.retain(|key, _| !key.as_str().unwrap().starts_with("x-") && key.as_str() != Some("pretraining"));
    let yaml = |text: &str| -> serde_norway::Value { serde_norway::from_str(text).unwrap() };
    map.insert("device".into(), "cpu".into());
    map.insert("seeds".into(), yaml("[0]"));
    map.insert(
        "training".into(),
        yaml("{epochs: 3, batch_size: 8, max_len: 24, max_train_examples: 24, checkpoint_every: 100}"),
    );
    map.insert("search".into(), yaml("{mode: grid, d_min: 372, d_max: 372, threshold: 0.9}"));
    map.insert(
        "tasks".into(),
        yaml("{pairs: {train: pairs.csv, dev_fraction: 0.25, split_seed: 0, text: [a, b], label: label}}"),
    );
    for (_, method) in map.get_mut("methods").unwrap().as_mapping_mut().unwrap() {
        let method = method.as_mapping_mut().unwrap();
        // One rate: the grid's first, and 3e-3 for full fine-tuning (a tiny model on 24 pairs
        // learns nothing in nine steps at the paper's 1e-5).
        let lr = match method["method"].as_str() {
            Some("full") => yaml("3.0e-3"),
            _ => method["lr"].as_sequence().unwrap()[0].clone(),
        };
        method.insert("lr".into(), serde_norway::Value::Sequence(vec![lr]));
        method.remove("epochs");
    }
    let experiments = map.get_mut("experiments").unwrap().as_sequence_mut().unwrap();
    experiments.retain(|experiment| keep.contains(&experiment["name"].as_str().unwrap()));
    for experiment in experiments.iter_mut() {
        let experiment = experiment.as_mapping_mut().unwrap();
        experiment.insert("tasks".into(), yaml("[pairs]"));
        experiment.remove("search");
        if let Some(models) = experiment.get_mut("models") {
            models.as_sequence_mut().unwrap().retain(|model| {
                let model = model.as_str().unwrap();
                model.contains('@') && wanted(model)
            });
        }
    }
    serde_norway::to_string(&spec).unwrap()
}

fn run(dir: &Path, home: &Path, hub: &str, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_bench-suite"))
        .current_dir(dir)
        .env("INTRINSIC_BENCH_HOME", home)
        .env("HF_ENDPOINT", hub)
        .env("INTRINSIC_BENCH_HASHES_LOCK", home.join("hashes.lock"))
        .env("RUST_BACKTRACE", "0")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn paper_size_and_multiberts_and_the_miniatures_run_from_the_hub_in_every_file_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (dir, home) = (dir.path(), dir.path().join("home"));
    pair_task(dir);
    let hub = hub();
    let listed = published();

    // paper: the size sweep (17 hub checkpoints of seven families) and the MultiBERTs trajectory.
    std::fs::write(dir.join("paper.yaml"), tiny_spec("paper", &["size", "multiberts"])).unwrap();
    run(dir, &home, &hub.base_url, &["reproduce", "--spec", "paper.yaml", "--out", "paper"]);
    // The reports crate's fixture of a published trajectory and a size sweep
    // (reports/tests/fixtures/hub) is this folder: `INTRINSIC_BENCH_KEEP_HUB_RESULTS=<folder>`
    // copies it there.
    if let Some(keep) = std::env::var_os("INTRINSIC_BENCH_KEEP_HUB_RESULTS") {
        copy_results(&dir.join("paper"), Path::new(&keep));
    }
    let searches = ResultsDir::new(dir.join("paper")).unwrap().searches().unwrap();
    let of = |experiment: &str| searches.iter().filter(|s| s.plan.experiment == experiment).collect::<Vec<_>>();
    assert_eq!(of("size").len(), 17);
    for search in of("size") {
        // The search's model identity is a listed commit (its first 7 hex digits).
        let revision = search.model_revision.as_deref().unwrap();
        let pinned =
            |entry: &&datasets::pin::Published| entry.repo == search.plan.model && entry.commit.starts_with(revision);
        assert!(listed.iter().any(|entry| pinned(&entry)), "{} at {revision}", search.plan.model);
        // Each loaded and trained: its baseline ran (whether a tiny model on 24 pairs learns, or
        // diverges at 3e-3, is not the question here).
        assert!(search.total_parameters > 372 && !search.baseline.runs.is_empty(), "{}", search.plan.model);
    }
    // XLM-R base runs at the commit with tokenizer.json, not at the SentencePiece-only one.
    assert!(of("size").iter().any(|s| s.model_revision.as_deref() == Some("42f548f")));
    let mut trajectory: Vec<(usize, String)> =
        of("multiberts").iter().map(|s| (s.plan.pretraining.as_ref().unwrap().update, s.plan.model.clone())).collect();
    trajectory.sort();
    assert_eq!(
        trajectory,
        [0, 60, 80, 100, 120].map(|k| (k * 1000, format!("google/multiberts-seed_0-step_{k}k"))).to_vec()
    );
    assert!(of("multiberts").iter().all(|s| s.plan.pretraining.as_ref().unwrap().name == "multiberts"));

    // miniatures: every series, the 11 pinned miniatures, SAID and DID.
    std::fs::write(
        dir.join("miniatures.yaml"),
        tiny_spec(
            "miniatures",
            &[
                "width_L4_said",
                "width_L4_did",
                "width_L2_said",
                "width_L2_did",
                "depth_H256_said",
                "depth_H256_did",
                "depth_H128_said",
                "depth_H128_did",
            ],
        ),
    )
    .unwrap();
    run(dir, &home, &hub.base_url, &["reproduce", "--spec", "miniatures.yaml", "--out", "miniatures"]);
    let folder = ResultsDir::new(dir.join("miniatures")).unwrap();
    let searches = folder.searches().unwrap();
    assert_eq!(searches.len(), 2 * (4 + 3 + 5 + 3));
    let models: std::collections::BTreeSet<&str> = searches.iter().map(|s| s.plan.model.as_str()).collect();
    assert_eq!(models.len(), 11);
    // A model in two series trains once: its runs are keyed without the experiment.
    let runs = folder.runs().unwrap();
    let baselines = runs.iter().filter(|run| run.spec.train.mode == results::Mode::Full).count();
    assert_eq!(baselines, 11, "one baseline a model, shared by the series that list it");
    for search in &searches {
        assert_eq!(search.plan.kind, results::ExperimentKind::Size);
        assert!(!search.baseline.runs.is_empty(), "{}", search.plan.model);
    }

    // Offline, both presets as shipped are listed with D and m of every cached checkpoint and
    // its commit (the tasks' data is not cached here: it is named as still to fetch).
    let expected = [
        (
            "miniatures",
            "width_L4_did google/bert_uncased_L-4_H-768_A-12@31df0d654072be4f6e7b400993e3a247894224a8 sst2 did: D = ",
        ),
        (
            "paper",
            "multiberts google/multiberts-seed_0-step_60k@9ab74d84068694cf164abb169c44cb647421caf4 mrpc said_per_tensor: D = ",
        ),
        ("paper", "size facebook/bart-large@cb48c1365bd826bd521f650dc2e0940aee54720c mrpc said_per_tensor: D = "),
    ];
    for name in ["paper", "miniatures"] {
        let output =
            run(dir, &home, "http://127.0.0.1:9", &["reproduce", "--preset", name, "--check-only", "--offline"]);
        let listed = String::from_utf8_lossy(&output.stderr);
        for (_, line) in expected.iter().filter(|(preset, _)| *preset == name) {
            assert!(listed.contains(line), "{name}: {line}\n{listed}");
        }
        // Every search is listed, each once: with D and m, or with what must be fetched first.
        let (_, text) = preset(name).unwrap();
        let planned = bench_suite::experiment::spec::parse(text, Path::new(name)).unwrap().searches.len();
        let searches: Vec<&str> = listed
            .lines()
            .filter(|line| line.starts_with("  ") && !line.starts_with("  pre-training") && !line.contains(" / "))
            .collect();
        assert_eq!(searches.len(), planned, "{name}: {listed}");
        assert!(searches.iter().all(|line| line.contains(": D = ") || line.contains(": D and m once ")), "{listed}");
        assert!(listed.contains("to fetch before these searches can run: "), "{name}: {listed}");
        // The corpus paper's own pre-training streams is named too (never fetched by a check).
        if name == "paper" {
            // Not keyed (its tokenizer, roberta-base at the manifest's commit, is not cached here),
            // with its 64 C4 shards to fetch.
            let line = "\n  pre-training roberta-base-c4: keyed once its tokenizer is here; up to 64 corpus files to fetch \
                        (none if its corpus is packed in the cache or it has finished)\n";
            assert!(listed.contains(line), "{listed}");
            let shard = "  c4-en / c4-train.00063-of-01024.json.gz (size learned on download): https://huggingface.co/";
            assert!(listed.contains(shard), "{listed}");
        }
    }
    assert!(!dir.join("runs").exists(), "--check-only wrote results");
}

/// Copies the JSON files of a results folder (records and plans; not locks or logs).
fn copy_results(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        if path.is_dir() {
            copy_results(&path, &target);
        } else if path.extension().is_some_and(|extension| extension == "json") {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Weights in bf16 storage (no listed commit has them; some fine-tuned checkpoints do) load as
/// fp16 and fp32 ones do: converted to f32, here from a local folder.
#[test]
fn a_bf16_pytorch_model_bin_fine_tunes() {
    let dir = tempfile::tempdir().unwrap();
    let (dir, home) = (dir.path(), dir.path().join("home"));
    pair_task(dir);
    let folder = dir.join("bert_bf16_bin");
    std::fs::create_dir_all(&folder).unwrap();
    for file in std::fs::read_dir(fixtures().join("bert_bf16_bin")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), folder.join(file.file_name())).unwrap();
    }
    let spec = "\
description: bf16 weights
device: cpu
seeds: [0]
training: {epochs: 3, batch_size: 8, max_len: 24, max_train_examples: 24}
search: {mode: grid, d_min: 372, d_max: 372}
methods:
  full: {method: full, lr: [3.0e-3]}
  said: {method: said, lr: [0.1]}
tasks:
  pairs: {train: pairs.csv, dev_fraction: 0.25, split_seed: 0, text: [a, b], label: label}
experiments:
  - name: bf16
    models: [./bert_bf16_bin]
    tasks: [pairs]
    methods: [said]
";
    std::fs::write(dir.join("bf16.yaml"), spec).unwrap();
    run(dir, &home, "http://127.0.0.1:9", &["reproduce", "--spec", "bf16.yaml", "--out", "bf16", "--offline"]);
    let folder = ResultsDir::new(dir.join("bf16")).unwrap();
    let searches = folder.searches().unwrap();
    assert_eq!(searches.len(), 1);
    assert!(searches[0].total_parameters > 372);
    // The baseline loaded, trained and was evaluated (whether it learns 24 pairs is not the
    // question).
    let runs = folder.runs().unwrap();
    assert!(!runs.is_empty() && runs.iter().all(|run| run.best_score.is_some() && !run.diverged));
}

/// A SentencePiece-only commit (XLM-R base at e73636d, which most public code pins) is refused
/// before anything is fetched, naming the listed commit that has tokenizer.json.
#[test]
fn a_sentencepiece_only_commit_is_refused_naming_the_one_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let (dir, home) = (dir.path(), dir.path().join("home"));
    pair_task(dir);
    // DistilBERT comes first in the size list: a refusal after fetching it would come too late
    // (and, online against a dead endpoint, would be a connection error instead).
    let kept = |model: &str| model.starts_with("FacebookAI/xlm-roberta-") || model.starts_with("distilbert/");
    let spec = tiny_spec_of("paper", &["size"], kept).replace(
        "FacebookAI/xlm-roberta-base@42f548f32366559214515ec137cdd16002968bf6",
        "FacebookAI/xlm-roberta-base@e73636d4f797dec63c3081bb6ed5c7b0bb3f2089",
    );
    std::fs::write(dir.join("old.yaml"), spec).unwrap();
    for offline in [true, false] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
        command.current_dir(dir).env("INTRINSIC_BENCH_HOME", &home).env("HF_ENDPOINT", "http://127.0.0.1:9");
        command.env("INTRINSIC_BENCH_HASHES_LOCK", home.join("hashes.lock"));
        command.args(["reproduce", "--spec", "old.yaml", "--check-only", "--out", "runs"]);
        if offline {
            command.arg("--offline");
        }
        let output = command.output().unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{err}");
        assert!(
            err.contains("experiments[0].models[1]")
                && err.contains("it has sentencepiece.bpe.model")
                && err.contains("`FacebookAI/xlm-roberta-base@42f548f32366559214515ec137cdd16002968bf6`"),
            "{err}"
        );
    }
    assert!(!home.join("assets").exists() && !home.join("hashes.lock").exists(), "nothing fetched");
}
