//! MLM pre-training on a tiny corpus and tokenizer written here: packing keeps every token once,
//! a short run lowers the held-out loss, an HF checkpoint read back gives the same logits, a run
//! killed with SIGKILL and started again ends with bit-identical weights, and bad settings are
//! refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use encoders::checkpoint;
use encoders::models::bert::initialise_from_scratch;
use encoders::models::{Config, MaskedLm};
use results::PretrainingRecord;
use tch::{Device, Tensor, nn};
use trainer::interrupt::Interrupter;
use trainer::pretrain::data::{self, PretrainTokenizer};

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: [&str; 16] = [
    "good", "bad", "film", "plot", "the", "was", "very", "not", "actors", "music", "fine", "dull", "a", "and", "is",
    "story",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-suite-pretrain-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WordPiece `tokenizer.json` over [`SPECIAL`] and [`WORDS`]: the one HF builds from that
/// `vocab.txt` (written beside it).
fn write_tokenizer(path: &Path) {
    let vocab = path.with_file_name("vocab.txt");
    std::fs::write(&vocab, SPECIAL.iter().chain(WORDS.iter()).map(|token| format!("{token}\n")).collect::<String>())
        .unwrap();
    std::fs::write(path, trainer::tokenize::read_tokenizer(&vocab).unwrap().json).unwrap();
}

/// 400 short documents with learnable regularities ("the film was very good and the music is
/// fine"), separated by blank lines, of varying lengths.
fn write_corpus(path: &Path) {
    let mut text = String::new();
    for doc in 0..400usize {
        let sentences = 1 + doc % 4;
        for sentence in 0..sentences {
            let (noun, verdict) =
                [("film", "good"), ("plot", "dull"), ("music", "fine"), ("story", "bad")][(doc + sentence) % 4];
            let negated = if (doc * 7 + sentence) % 5 == 0 { "not " } else { "very " };
            let (first, second) = (WORDS[doc % 16], WORDS[(doc / 16 + sentence) % 16]);
            text.push_str(&format!("the {noun} was {negated}{verdict} and the actors is {first} {second}\n"));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn write_spec(dir: &Path, updates: usize, checkpoint_every: usize, extra: &str) -> PathBuf {
    write_tokenizer(&dir.join("tokenizer.json"));
    write_corpus(&dir.join("corpus.txt"));
    let spec = format!(
        "model: {{model_type: roberta, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64}}\n\
         tokenizer: tokenizer.json\ncorpus: corpus.txt\nupdates: {updates}\nmax_len: 24\nbatch_size: 8\n\
         micro_batch_size: 4\nlr: 3.0e-3\nwarmup_updates: 5\ncheckpoint_every: {checkpoint_every}\n\
         heldout_fraction: 0.1\nheldout_sequences: 16\n{extra}"
    );
    let path = dir.join("pretrain.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn binary(home: &Path, spec: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    command.env("INTRINSIC_BENCH_HOME", home).env("RUST_BACKTRACE", "0").args([
        "pretrain",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--offline",
    ]);
    command
}

fn record(out: &Path) -> PretrainingRecord {
    let dir = std::fs::read_dir(out.join("pretraining")).unwrap().next().unwrap().unwrap().path();
    results::read_record(&dir.join("record.json")).unwrap().unwrap()
}

#[test]
fn packing_keeps_every_token_once() {
    let dir = scratch("packing");
    write_tokenizer(&dir.join("tokenizer.json"));
    write_corpus(&dir.join("corpus.txt"));
    let tokenizer = PretrainTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert_eq!((tokenizer.start_id, tokenizer.end_id, tokenizer.pad_id, tokenizer.vocabulary.mask_id), (2, 3, 0, 4));
    assert_eq!(tokenizer.vocabulary.special, [0, 1, 2, 3, 4]);
    let corpus = dir.join("corpus.txt");
    let packing = data::Packing { corpus: "corpus.txt", corpus_identity: "test", max_len: 24, heldout_fraction: 0.1 };
    let packed = data::pack_or_open(
        &dir.join("cache"),
        packing,
        || Ok(datasets::corpus::local_documents(&corpus)?),
        &tokenizer,
        &Interrupter::default(),
        &mut |_| {},
    )
    .unwrap();
    let documents: Vec<String> =
        datasets::corpus::local_documents(&corpus).unwrap().map(|document| document.unwrap().text).collect();
    for (part, heldout) in [(&packed.train, false), (&packed.heldout, true)] {
        let expected: Vec<Vec<u32>> = tokenizer
            .encode_plain(documents.iter().filter(|text| data::is_heldout(text, 0.1) == heldout).cloned().collect())
            .unwrap();
        assert!(!expected.is_empty(), "heldout {heldout}: no documents");
        // Every sequence is `[CLS] body [SEP]`, full length but the last; the bodies in order,
        // split at the separators, are the documents.
        let mut stream = Vec::new();
        for index in 0..part.len() {
            let sequence = part.read(index).unwrap();
            let expected_len = if index + 1 < part.len() { 24 } else { part.counts.last_len };
            assert_eq!(sequence.len(), expected_len, "sequence {index}");
            assert_eq!((sequence[0], sequence[sequence.len() - 1]), (2, 3), "sequence {index}");
            stream.extend_from_slice(&sequence[1..sequence.len() - 1]);
        }
        let rebuilt: Vec<Vec<u32>> = stream.split(|&id| id == 3).map(<[u32]>::to_vec).collect();
        assert_eq!(rebuilt, expected, "heldout {heldout}");
        assert_eq!(part.counts.tokens, expected.iter().map(Vec::len).sum::<usize>() as u64);
    }
    // Packed once: a second open reads the same folder.
    let again = data::pack_or_open(
        &dir.join("cache"),
        packing,
        || unreachable!(),
        &tokenizer,
        &Interrupter::default(),
        &mut |_| {},
    );
    assert_eq!(again.unwrap().description, packed.description);

    // `../shared/cases3/31`: a stop asked for mid-packing ends it at the next document with
    // nothing half-packed kept, and a staging folder that a dead process left (a Ctrl-C) is
    // removed by the next packing; a live process's is not.
    let cache = dir.join("cache-interrupted");
    let other = data::Packing { max_len: 16, ..packing };
    let key = data::packed_key("test", &tokenizer.sha256, 16, 0.1);
    let host = results::run::host_name();
    std::fs::create_dir_all(cache.join(format!("{key}.partial-{host}-999999999"))).unwrap();
    std::fs::create_dir_all(cache.join(format!("{key}.partial-{host}-1"))).unwrap();
    // Another node's (sharing the cache), whatever its pid: left to it.
    std::fs::create_dir_all(cache.join(format!("{key}.partial-other-node-999999999"))).unwrap();
    let interrupter = Interrupter::default();
    let mut seen = 0;
    let stopped = data::pack_or_open(
        &cache,
        other,
        || Ok(datasets::corpus::local_documents(&corpus)?),
        &tokenizer,
        &interrupter,
        &mut |documents| {
            seen = documents;
            interrupter.request();
        },
    );
    let Err(err) = stopped else { panic!("packing went on after the stop") };
    assert!(err.terminated().is_some(), "{err}");
    assert!(err.to_string().contains("while packing corpus corpus.txt; nothing half-packed is kept"), "{err}");
    assert!(seen > 0, "the first batch was packed before the stop was seen");
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // pid 1 (init) is alive: its folder stays, as does the other node's; the dead pid's and
    // this process's are gone.
    let mut kept = [format!("{key}.partial-{host}-1"), format!("{key}.partial-other-node-999999999")];
    kept.sort();
    assert_eq!(left, kept);
}

#[test]
fn an_hf_checkpoint_read_back_gives_identical_logits() {
    let _draws = crate::support::draws();
    let dir = scratch("roundtrip");
    write_tokenizer(&dir.join("tokenizer.json"));
    let value = serde_json::json!({"model_type": "roberta", "vocab_size": 21, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 26, "pad_token_id": 0});
    let config = Config::from_json(&value.to_string()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = MaskedLm::new(vs.root(), &config);
    initialise_from_scratch(&vs, &config, 3);
    // Initialisation as HF's: padding rows zero, LayerNorm weights one, biases zero.
    let variables = vs.variables();
    assert_eq!(
        variables["roberta.embeddings.word_embeddings.weight"].get(0).abs().sum(tch::Kind::Float).double_value(&[]),
        0.0
    );
    assert_eq!(variables["lm_head.layer_norm.weight"].mean(tch::Kind::Float).double_value(&[]), 1.0);
    assert_eq!(variables["lm_head.bias"].abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
    let std = f64::try_from(variables["roberta.encoder.layer.0.attention.self.query.weight"].std(true)).unwrap();
    assert!((std - 0.02).abs() < 0.003, "initial std {std}");
    let named: Vec<(String, Tensor)> = variables.into_iter().collect();
    let folder = dir.join("checkpoint");
    std::fs::create_dir_all(&folder).unwrap();
    let tokenizer_json = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let hash = trainer::pretrain::write_hf_folder(&folder, &value, config.model_type, &named, &tokenizer_json).unwrap();
    assert_eq!(hash.len(), 16);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(written["architectures"], serde_json::json!(["RobertaForMaskedLM"]));
    let read_config = Config::from_json(&written.to_string()).unwrap();
    let read_vs = nn::VarStore::new(Device::Cpu);
    let read_model = MaskedLm::new(read_vs.root(), &read_config);
    let report =
        checkpoint::load(&read_vs, &folder.join("model.safetensors"), "roberta", checkpoint::Head::None, 0, 0.02)
            .unwrap();
    assert_eq!((report.initialised.len(), report.unused.len()), (0, 0), "{report:?}");
    let ids = Tensor::from_slice(&[2i64, 9, 10, 11, 4, 3, 2, 12, 13, 3, 0, 0]).reshape([2, 6]);
    let mask = ids.ne(0).to_kind(tch::Kind::Int64);
    let types = ids.zeros_like();
    let before = model.forward_t(&ids, &mask, &types, false);
    let after = read_model.forward_t(&ids, &mask, &types, false);
    assert!(before.equal(&after), "logits differ after the round trip");
    // HF `transformers` loads the same folder unchanged and computes the same logits
    // (golden/make_pretrain_golden.py, run on the folder this test writes when asked to).
    if let Ok(keep) = std::env::var("INTRINSIC_BENCH_WRITE_PRETRAIN_CHECKPOINT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(folder.join(file), keep.join(file)).unwrap();
        }
    }
    let golden: std::collections::BTreeMap<String, Tensor> = Tensor::read_safetensors(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pretrain_checkpoint_hf.safetensors"),
    )
    .unwrap()
    .into_iter()
    .collect();
    let hf_logits =
        read_model.forward_t(&golden["input_ids"], &golden["attention_mask"], &golden["input_ids"].zeros_like(), false);
    let difference = f64::try_from((hf_logits - &golden["logits"]).abs().max()).unwrap();
    assert!(difference < 1e-5, "HF's logits differ by {difference}");
    // The head on chosen positions gives the full forward's values there.
    let positions = Tensor::from_slice(&[1i64, 4, 8]);
    let at = model.forward_at(&ids, &mask, &types, &positions, false);
    let full = before.reshape([12, -1]).index_select(0, &positions);
    assert!(at.allclose(&full, 1e-6, 1e-6, false));
}

#[test]
fn a_short_run_lowers_the_heldout_loss_and_a_killed_run_resumes_bit_identically() {
    let dir = scratch("resume");
    let spec = write_spec(&dir, 120, 20, "");
    let home = dir.join("home");

    let uninterrupted = dir.join("uninterrupted");
    let output = binary(&home, &spec, &uninterrupted).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = record(&uninterrupted);
    let updates: Vec<usize> = expected.checkpoints.iter().map(|checkpoint| checkpoint.update).collect();
    assert_eq!(updates, [0, 20, 40, 60, 80, 100, 120]);
    let (first, last) = (expected.checkpoints[0].heldout_loss, expected.checkpoints[6].heldout_loss);
    assert!(last < first - 0.3, "held-out MLM loss {first:.3} -> {last:.3}");
    for checkpoint in &expected.checkpoints {
        let folder = expected_folder(&uninterrupted, &expected.key, &checkpoint.hash);
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(folder.join(file).is_file(), "{}", folder.join(file).display());
        }
    }
    // A rerun reuses the finished pre-training.
    let rerun = binary(&home, &spec, &uninterrupted).output().unwrap();
    assert!(rerun.status.success());
    assert_eq!(record(&uninterrupted), expected);

    // Killed with SIGKILL once its state has been committed past the first checkpoints, then the
    // same command: the same checkpoints, byte for byte (their names are their files' hashes).
    let killed = dir.join("killed");
    let mut child = binary(&home, &spec, &killed).stderr(std::process::Stdio::null()).spawn().unwrap();
    let state = killed.join("pretraining").join(&expected.key).join("work/state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let update = std::fs::read_to_string(&state)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["update"].as_u64());
        if update.is_some_and(|update| update >= 40) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "finished before it could be killed");
        assert!(std::time::Instant::now() < deadline, "no checkpoint after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("pretraining").join(&expected.key).join("record.json").exists());
    let resumed = binary(&home, &spec, &killed).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let after = record(&killed);
    assert_eq!(after.checkpoints, expected.checkpoints);
    assert!(after.wall_time_s > 0.0);

    // A stop after some updates in this process (the test knob) resumes the same way.
    let stopped = dir.join("stopped");
    let output = binary(&home, &spec, &stopped).args(["--max-updates-this-process", "50"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("stopped after update 50"));
    let output = binary(&home, &spec, &stopped).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(record(&stopped).checkpoints, expected.checkpoints);
}

fn expected_folder(out: &Path, key: &str, hash: &str) -> PathBuf {
    out.join("pretraining").join(key).join("checkpoints").join(hash)
}

#[test]
fn bad_settings_are_refused_before_anything_is_written() {
    let dir = scratch("refusals");
    let home = dir.join("home");
    for (extra, expected) in [
        ("micro_batch_size: 3\n", "micro_batch_size: 3 must divide batch_size 8"),
        ("mask_probability: 1.5\n", "mask_probability: must lie strictly between 0 and 1"),
        ("colour: blue\n", "unknown field `colour`"),
        ("adam_beta2: 1.0\n", "adam_beta2: must lie in [0, 1)"),
    ] {
        let spec = write_spec(&dir, 10, 5, extra);
        let text = std::fs::read_to_string(&spec).unwrap();
        // `micro_batch_size` given twice would be a YAML error: the extra line replaces it.
        let text = if extra.starts_with("micro_batch_size") { text.replace("micro_batch_size: 4\n", "") } else { text };
        std::fs::write(&spec, text).unwrap();
        let out = dir.join("out");
        let output = binary(&home, &spec, &out).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(expected), "{extra}: {stderr}");
        assert!(!out.exists(), "{extra}: wrote {}", out.display());
    }
    for (from, to, expected) in [
        ("corpus: corpus.txt", "corpus: wikipedia", "corpus: unknown corpus `wikipedia`"),
        ("corpus: corpus.txt", "corpus: missing.txt", "missing.txt"),
        ("tokenizer: tokenizer.json", "tokenizer: nothing.json", "tokenizer:"),
        ("model_type: roberta,", "model_type: roberta, max_position_embeddings: 10,", "model.max_position_embeddings"),
        (
            "model_type: roberta,",
            "model_type: roberta, vocab_size: 5,",
            "model.vocab_size: 5 is smaller than the tokenizer's 21 tokens",
        ),
        ("model_type: roberta,", "model_type: bert,", "model.model_type: bert: BERT's classifier reads a pooler"),
    ] {
        let spec = write_spec(&dir, 10, 5, "");
        let text = std::fs::read_to_string(&spec).unwrap().replace(from, to);
        std::fs::write(&spec, text).unwrap();
        let out = dir.join("out");
        let output = binary(&home, &spec, &out).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(expected), "{to}: {stderr}");
        assert!(!out.exists(), "{to}: wrote {}", out.display());
    }
}

/// A learnable review task ("good" reviews are positive) and one whose labels do not depend on
/// the text (three quarters `neg`), as CSV files.
fn write_tasks(dir: &Path) {
    let review = |i: usize| {
        let positive = i.is_multiple_of(2);
        let (word, other) = if positive { ("good", "fine") } else { ("bad", "dull") };
        (
            format!("the {} was very {word} {other}", ["film", "plot", "story"][i % 3]),
            if positive { "pos" } else { "neg" },
        )
    };
    let rows = |range: std::ops::Range<usize>| -> String {
        range.map(review).map(|(text, label)| format!("\"{text}\",{label}\n")).collect()
    };
    std::fs::write(dir.join("reviews-train.csv"), format!("review,label\n{}", rows(0..256))).unwrap();
    std::fs::write(dir.join("reviews-dev.csv"), format!("review,label\n{}", rows(256..300))).unwrap();
    let noise = |range: std::ops::Range<usize>| -> String {
        range
            .map(|i| {
                let label = if (i * 2_654_435_761usize) % 97 < 24 { "pos" } else { "neg" };
                format!("\"{}\",{label}\n", review(i).0)
            })
            .collect()
    };
    std::fs::write(dir.join("noise-train.csv"), format!("review,label\n{}", noise(0..256))).unwrap();
    std::fs::write(dir.join("noise-dev.csv"), format!("review,label\n{}", noise(256..300))).unwrap();
}

/// The `trajectory` and `size` kinds end to end: a spec pre-trains two tiny encoders from scratch,
/// fine-tunes every checkpoint of one (trajectory) and the last of both (size) with SAID d90
/// searches, records which pre-training and update each search used, reports `unable` where the
/// full checkpoint cannot beat the majority class, and reuses everything when run again.
#[test]
fn trajectory_and_size_experiments_run_end_to_end() {
    let dir = scratch("kinds");
    write_tokenizer(&dir.join("tokenizer.json"));
    write_corpus(&dir.join("corpus.txt"));
    write_tasks(&dir);
    let pretraining = |hidden: usize, every: usize| {
        format!(
            "{{model: {{model_type: roberta, hidden_size: {hidden}, num_hidden_layers: 2, num_attention_heads: 2, \
             intermediate_size: 64}}, tokenizer: tokenizer.json, corpus: corpus.txt, updates: 40, max_len: 24, \
             batch_size: 8, lr: 3.0e-3, checkpoint_every: {every}, heldout_fraction: 0.1, heldout_sequences: 16}}"
        )
    };
    let spec = format!(
        "description: trajectory and size in miniature
seeds: [0]
training: {{epochs: 2, batch_size: 8, max_len: 24}}
search: {{mode: grid, d_min: 1037, d_max: 1037, threshold: 0.9}}
methods:
  full: {{method: full, lr: [1.0e-3]}}
  said: {{method: said, lr: [2.0]}}
tasks:
  reviews: {{train: reviews-train.csv, dev: reviews-dev.csv, text: [review], label: label, labels: [neg, pos]}}
  noise: {{train: noise-train.csv, dev: noise-dev.csv, text: [review], label: label, labels: [neg, pos]}}
pretraining:
  tiny: {}
  tiny-wide: {}
experiments:
  - name: along
    kind: trajectory
    pretraining: tiny
    tasks: [reviews]
    methods: [said]
  - name: sizes
    kind: size
    models: [pretrained:tiny, pretrained:tiny-wide]
    tasks: [reviews, noise]
    methods: [said]
  - name: plain
    models: [synthetic/tiny-bert]
    tasks: [synthetic]
    methods: [said]
",
        pretraining(32, 20),
        pretraining(48, 40)
    );
    let spec_path = dir.join("kinds.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let home = dir.join("home");
    let out = dir.join("out");
    let reproduce = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
        command.env("INTRINSIC_BENCH_HOME", &home).env("RUST_BACKTRACE", "0");
        command.args(["reproduce", "--spec", spec_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--offline"]);
        command.args(extra).output().unwrap()
    };

    // Checked and keyed without running anything or writing results.
    let checked = reproduce(&["--check-only"]);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{stderr}");
    for line in [
        "along pretrained:tiny@0 reviews said",
        "along pretrained:tiny@40 reviews",
        "sizes pretrained:tiny-wide@40 noise",
    ] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    assert!(!out.exists(), "--check-only wrote {}", out.display());
    // Keyed, with what it needs of its corpus (a local file: nothing to fetch).
    let keyed = |name: &str| format!("  pre-training {name} (");
    for name in ["tiny", "tiny-wide"] {
        let line = stderr.lines().find(|line| line.starts_with(&keyed(name))).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.ends_with("; its corpus is a local file"), "{line}");
    }
    let key_of = |name: &str| {
        let start = stderr.find(&format!("pre-training {name} (")).unwrap() + format!("pre-training {name} (").len();
        stderr[start..].split(')').next().unwrap().to_owned()
    };
    let (tiny_key, wide_key) = (key_of("tiny"), key_of("tiny-wide"));

    // Another process (a shard) holds tiny's pre-training: this one pre-trains tiny-wide and runs
    // its searches, then the search that needs no pre-training, and waits for tiny only when
    // nothing else is left.
    let held = results::ResultsDir::new(&out).unwrap().lock(&format!("pretraining-{tiny_key}")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    command.env("INTRINSIC_BENCH_HOME", &home).env("RUST_BACKTRACE", "0");
    command.args(["reproduce", "--spec", spec_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--offline"]);
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    // A watchdog: if the child never announces its wait it would wait on the held lock forever;
    // killed, its stderr ends and the assertions below fail instead of hanging.
    let pid = child.id();
    let reaped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn({
        let reaped = reaped.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_secs(1200));
            // Not once the child is reaped: its pid may belong to another process by then.
            if !reaped.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    });
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut stderr = String::new();
    let mut held = Some(held);
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("pre-training tiny is running in another process: waiting for it") {
            assert!(stderr.contains("its searches come after other work"), "{stderr}");
            assert!(out.join("pretraining").join(&wide_key).join("record.json").is_file(), "{stderr}");
            let done = results::ResultsDir::new(&out).unwrap().searches().unwrap();
            let mut models: Vec<&str> = done.iter().map(|search| search.plan.model.as_str()).collect();
            models.sort_unstable();
            assert_eq!(models, ["pretrained:tiny-wide@40", "pretrained:tiny-wide@40", "synthetic/tiny-bert"]);
            drop(held.take());
        }
    }
    assert!(held.is_none(), "it never waited for tiny: {stderr}");
    let status = child.wait().unwrap();
    reaped.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("pre-training tiny (") && stderr.contains("pre-training tiny-wide ("), "{stderr}");
    let searches = results::ResultsDir::new(&out).unwrap().searches().unwrap();
    assert_eq!(searches.len(), 3 + 4 + 1, "{searches:#?}");
    let along: Vec<(usize, &results::SearchRecord)> = searches
        .iter()
        .filter(|search| search.plan.experiment == "along")
        .map(|search| (search.plan.pretraining.as_ref().unwrap().update, search))
        .collect();
    let mut updates: Vec<usize> = along.iter().map(|(update, _)| *update).collect();
    updates.sort_unstable();
    assert_eq!(updates, [0, 20, 40]);
    for (update, search) in &along {
        let revision = search.model_revision.as_deref().unwrap();
        assert!(revision.ends_with(&format!("@{update}")), "{revision}");
        assert_eq!(search.plan.model, format!("pretrained:tiny@{update}"));
        assert_eq!(search.architecture.as_ref().unwrap().hidden_size, 32);
    }
    for search in searches.iter().filter(|search| search.plan.task == "noise") {
        match &search.outcome {
            // The full checkpoint cannot beat a constant predictor: the paper's "unable to compute".
            results::Outcome::Unable { reason } => {
                assert!(reason.contains("majority") || reason.contains("predicted one class"), "{reason}")
            }
            other => panic!("{}: the label-noise task gave {other:?}", search.plan.model),
        }
    }
    let sizes: std::collections::BTreeSet<usize> = searches
        .iter()
        .filter(|search| search.plan.experiment == "sizes")
        .map(|search| search.architecture.as_ref().unwrap().hidden_size)
        .collect();
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [32, 48]);

    let again = reproduce(&[]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("(reused)") && !stderr.contains(" s)\n    =>"), "{stderr}");
    assert_eq!(results::ResultsDir::new(&out).unwrap().searches().unwrap().len(), 8);
}
