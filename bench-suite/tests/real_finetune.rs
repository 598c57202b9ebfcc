//! Real data (run by `cargo xtask test` when `../shared/mirror` is present): MiniLM fine-tuned on
//! a 4000-example SST-2 subset for one epoch reaches a dev accuracy clearly above the majority
//! class (50.9%), fully and through a SAID subspace of d = 1000.

use crate::support::mirror;

use bench_suite::finetune::{FinetuneRequest, finetune};
use results::{DivergenceCause, Mode, Status};
use trainer::interrupt::Interrupter;

#[test]
fn minilm_learns_sst2_fully_and_in_a_said_subspace() {
    let _draws = crate::support::draws();
    let Some(mirror) = mirror("the real fine-tuning test") else {
        return;
    };
    for (mode, d, lr) in [(Mode::Full, 0, 5e-5), (Mode::Said, 1000, 0.3)] {
        let mut request = FinetuneRequest::new("sentence-transformers/all-MiniLM-L6-v2", "sst2", mode, d);
        request.lr = Some(lr);
        request.training.epochs = Some(1);
        request.training.max_len = Some(64);
        request.training.max_train_examples = Some(4000);
        request.mirrors = vec![mirror.clone()];
        request.offline = true;
        let output = finetune(&request, &Interrupter::default(), &mut |_| {}, &mut |_| {}).unwrap();
        let accuracy = output.result.best.as_ref().unwrap().score;
        eprintln!(
            "MiniLM SST-2 {mode:?} d={d} lr={lr}: dev accuracy {accuracy:.4} in {:.0} s, {} trainable parameters",
            output.result.wall_time_s, output.result.trainable_parameters
        );
        assert_eq!(output.result.status, Status::Completed);
        assert_eq!(output.train_examples, 4000);
        assert!(accuracy > 0.65, "{mode:?}: dev accuracy {accuracy} is not clearly above the majority class (0.509)");
    }
}

fn mrpc_request(mirror: &std::path::Path, mode: Mode, d: usize) -> FinetuneRequest {
    let mut request = FinetuneRequest::new("sentence-transformers/all-MiniLM-L6-v2", "mrpc", mode, d);
    request.training.epochs = Some(1);
    request.training.max_len = Some(64);
    request.training.max_train_examples = Some(32);
    request.mirrors = vec![mirror.to_path_buf()];
    request.offline = true;
    request
}

/// The case of `../shared/cases/README.md`: one SAID step at lr 1e39 leaves the weights
/// non-finite although that step's loss was finite. The run is `diverged` and gets no score (it
/// used to be `completed` with the 0.316 of a model predicting one class); with two steps the
/// loss itself gives it away.
#[test]
fn a_run_whose_last_step_breaks_the_weights_is_diverged() {
    let _draws = crate::support::draws();
    let Some(mirror) = mirror("the divergence case") else { return };
    for (examples, cause) in [(32, DivergenceCause::Logits), (64, DivergenceCause::Loss)] {
        let mut request = mrpc_request(&mirror, Mode::Said, 1000);
        request.lr = Some(1e39);
        request.training.max_train_examples = Some(examples);
        let output = finetune(&request, &Interrupter::default(), &mut |_| {}, &mut |_| {}).unwrap();
        let status = &output.result.status;
        assert!(matches!(status, Status::Diverged { cause: found, .. } if *found == cause), "{examples}: {status:?}");
        assert!(output.result.best.is_none(), "{examples}: a diverged run has no score");
    }
}

/// Values that leave no room to work are refused before any work, naming the setting (the
/// binary spells it as its flag: `local.rs`) and the range that works for MiniLM on MRPC
/// (BERT's pair template: 3 special tokens; 512 positions).
#[test]
fn values_without_room_are_refused_before_any_work() {
    let Some(mirror) = mirror("the value checks") else { return };
    let refused = |change: &dyn Fn(&mut FinetuneRequest), expected: &str| {
        let mut request = mrpc_request(&mirror, Mode::Said, 1000);
        change(&mut request);
        let err = finetune(&request, &Interrupter::default(), &mut |_| panic!("loaded a checkpoint"), &mut |_| {
            panic!("trained")
        })
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    };
    refused(&|request| request.training.batch_size = Some(0), "batch_size 0: a batch holds at least 1 example");
    refused(&|request| request.training.epochs = Some(0), "epochs 0");
    refused(&|request| request.lr = Some(-1.0), "lr -1");
    refused(&|request| request.training.max_len = Some(0), "max_len 0: an example keeps at least 1 token");
    refused(&|request| request.training.max_len = Some(4), "max_len 4: leaves no room for a sentence pair");
    refused(&|request| request.training.max_len = Some(4), "need at least 5; use 5 to 512");
    refused(&|request| request.training.max_len = Some(513), "max_len 513: exceeds the model's 512 positions");
    refused(&|request| request.d = 30_000_000, "d 30000000: exceeds D = 22713986");
    refused(&|request| request.d = 8, "use 9 to 22713986");
}

/// A spec whose `max_len` leaves no room for a sentence pair fails `--check-only`, at its line.
#[test]
fn check_only_refuses_a_max_len_without_room() {
    let Some(mirror) = mirror("the spec max_len check") else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("short.yaml");
    let text = "\
description: max_len too short for MRPC pairs
training: {epochs: 1, max_len: 2}
search: {d_min: 100, d_max: 1000}
methods:
  full: {method: full, lr: [5.0e-5]}
  said: {method: said, lr: [0.3]}
experiments:
  - name: short
    models: [sentence-transformers/all-MiniLM-L6-v2]
    tasks: [mrpc]
    methods: [said]
";
    std::fs::write(&spec, text).unwrap();
    let run = |spec: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bench-suite"))
            .env("INTRINSIC_BENCH_HOME", dir.path().join("home"))
            .args(["reproduce", "--check-only", "--offline", "--mirror"])
            .arg(&mirror)
            .arg("--spec")
            .arg(spec)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let output = run(&spec);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "short.yaml:2: training.max_len: 2 for sentence-transformers/all-MiniLM-L6-v2 on mrpc: leaves no room"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("use 5 to 512"), "{stderr}");
    std::fs::write(&spec, text.replace("max_len: 2", "max_len: 5")).unwrap();
    let output = run(&spec);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!dir.path().join("out").exists(), "--check-only wrote into the results folder");
}

/// `--check-only` says what each pre-training needs of its corpus without fetching it: the task
/// text (`task-text`: SST-2, MRPC, ANLI) is in the mirror, so nothing is to fetch; once the
/// pre-training's record is in the results folder, no corpus is needed at all. Without the mirror
/// the tokenizer is not here either: the pre-training is not keyed, and the corpus files are named
/// as at most what it will fetch.
#[test]
fn check_only_says_what_a_pretraining_needs_of_its_corpus() {
    let Some(mirror) = mirror("the pre-training corpus check") else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("corpus.yaml");
    std::fs::write(
        &spec,
        "\
description: a pre-training on the task text
training: {epochs: 1, max_len: 32, max_train_examples: 64}
search: {d_min: 100, d_max: 1000}
methods:
  full: {method: full, lr: [1.0e-3]}
  said: {method: said, lr: [0.3]}
pretraining:
  tiny:
    model: {model_type: roberta, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64}
    tokenizer: sentence-transformers/all-MiniLM-L6-v2
    corpus: task-text
    updates: 10
    checkpoint_every: 10
    max_len: 32
    batch_size: 8
    lr: 1.0e-3
experiments:
  - name: along
    kind: trajectory
    pretraining: tiny
    tasks: [sst2]
    methods: [said]
",
    )
    .unwrap();
    let check = |mirrors: &[&std::path::Path]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bench-suite"));
        command.env("INTRINSIC_BENCH_HOME", dir.path().join("home")).args(["reproduce", "--check-only", "--offline"]);
        for mirror in mirrors {
            command.arg("--mirror").arg(mirror);
        }
        let output = command.arg("--spec").arg(&spec).arg("--out").arg(dir.path().join("out")).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        stderr
    };
    let pretraining_line = |stderr: &str| {
        stderr
            .lines()
            .find(|line| line.starts_with("  pre-training tiny"))
            .unwrap_or_else(|| panic!("{stderr}"))
            .to_owned()
    };

    // Nothing cached and no mirror: not keyed; the task text's three assets at most.
    let stderr = check(&[]);
    let line = pretraining_line(&stderr);
    assert!(line.starts_with("  pre-training tiny: keyed once its tokenizer is here; up to "), "{line}");
    assert!(line.ends_with(" to fetch (none if its corpus is packed in the cache or it has finished)"), "{line}");
    for asset in ["  glue-sst2 / ", "  glue-mrpc / ", "  anli-v1 / "] {
        assert!(stderr.lines().any(|line| line.starts_with(asset)), "{asset}: {stderr}");
    }

    // With the mirror: keyed, and the corpus is there to read.
    let stderr = check(&[&mirror]);
    let line = pretraining_line(&stderr);
    assert!(line.starts_with("  pre-training tiny ("), "{line}");
    assert!(line.ends_with("; its corpus files are in the cache or a mirror"), "{line}");
    assert!(!stderr.contains("to fetch before these searches can run"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "--check-only wrote into the results folder");

    // Finished (its record is where the pre-training writes it): no corpus needed.
    let key = line["  pre-training tiny (".len()..].split(')').next().unwrap();
    let folder = dir.path().join("out").join("pretraining").join(key);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("record.json"), "{}").unwrap();
    let line = pretraining_line(&check(&[&mirror]));
    assert!(line.ends_with("; no corpus file needed (it has finished)"), "{line}");
}
