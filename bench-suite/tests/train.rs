//! The trainer on a tiny random model and a synthetic task: it learns in all three modes, a run
//! stopped and resumed from its checkpoint ends with exactly the numbers of an uninterrupted one,
//! and a NaN loss ends the run as diverged.

use bench_suite::synthetic;
use encoders::models::SequenceClassifier;
use results::{DivergenceCause, Mode, Precision, RunResult, Status, TrainConfig};
use tch::{Device, nn};
use trainer::interrupt::Interrupter;
use trainer::train::{LabelledExample, TrainData, train};

use crate::support::serial;

fn model() -> (nn::VarStore, SequenceClassifier) {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &synthetic::tiny_config("bert"), 2);
    synthetic::init_weights(&vs, 0);
    (vs, model)
}

fn synthetic(count: usize, seed: u64) -> Vec<LabelledExample> {
    synthetic::examples(count, seed, "train")
}

fn run(
    mode: Mode,
    d: usize,
    lr: f64,
    epochs: usize,
    run_dir: Option<&std::path::Path>,
    stop_after: Option<usize>,
) -> RunResult {
    run_with(mode, d, lr, epochs, run_dir, stop_after, &|_| {})
}

fn run_with(
    mode: Mode,
    d: usize,
    lr: f64,
    epochs: usize,
    run_dir: Option<&std::path::Path>,
    stop_after: Option<usize>,
    change: &dyn Fn(&mut TrainConfig),
) -> RunResult {
    let (vs, model) = model();
    let train_set = synthetic(384, 1);
    let dev_set = synthetic(128, 2);
    let data = TrainData { train: &train_set, dev: vec![("dev".to_owned(), &dev_set)], with_f1: true, pad_id: 0 };
    let mut config = TrainConfig::new(mode, d, lr);
    config.epochs = epochs;
    config.batch_size = 16;
    config.checkpoint_every = run_dir.map(|_| 6);
    config.max_steps_this_process = stop_after;
    change(&mut config);
    train(&vs, &model, &data, &config, run_dir, &Interrupter::default(), &mut |_| {}).unwrap()
}

#[test]
fn learns_in_all_three_modes() {
    let _serial = serial();
    for (mode, d, lr) in [(Mode::Full, 0, 1e-3), (Mode::Did, 300, 0.2), (Mode::Said, 300, 0.05)] {
        let result = run(mode, d, lr, 6, None, None);
        let first = &result.evaluations[0];
        let last = result.evaluations.last().unwrap();
        let best = result.best.as_ref().unwrap();
        eprintln!(
            "{mode:?}: train loss {:.3} -> {:.3}, dev accuracy {:.3} -> best {:.3} (f1 {:.3}), {} trainable",
            first.train_loss,
            last.train_loss,
            first.score,
            best.score,
            best.splits["dev"].f1.unwrap(),
            result.trainable_parameters
        );
        assert_eq!(result.status, Status::Completed);
        assert!(last.train_loss < 0.1, "{mode:?}: final train loss {}", last.train_loss);
        assert!(best.score > 0.95, "{mode:?}: best dev accuracy {}", best.score);
        assert_eq!(result.trainable_parameters, if mode == Mode::Full { 20_642 } else { d });
    }
}

/// Every evaluation keeps each dev example's predicted label in the split's order, and the run its
/// gold labels and the hash of its examples: they give back the recorded accuracy and counts.
#[test]
fn every_evaluation_keeps_each_dev_examples_prediction() {
    let _serial = serial();
    let result = run(Mode::Said, 300, 0.05, 2, None, None);
    let dev = result.dev_examples.as_ref().expect("the run keeps its dev examples");
    let gold = results::labels::decode(&dev.labels).unwrap();
    let expected: Vec<usize> = synthetic(128, 2).iter().map(|example| example.label).collect();
    assert_eq!((dev.split.as_str(), &gold), ("dev", &expected));
    assert_eq!(dev.ids_sha256.len(), 16);
    assert_eq!(result.evaluations.len(), 2);
    for evaluation in &result.evaluations {
        let metrics = &evaluation.splits["dev"];
        let predicted = results::labels::decode(metrics.predicted.as_deref().unwrap()).unwrap();
        assert_eq!(predicted.len(), 128);
        let right = predicted.iter().zip(&gold).filter(|(p, g)| p == g).count();
        assert_eq!(right as f64 / 128.0, metrics.accuracy);
        let counts: Vec<usize> = (0..2).map(|label| predicted.iter().filter(|&&p| p == label).count()).collect();
        assert_eq!(counts, metrics.predictions);
    }
    // Another run on the same examples has the same hash.
    let other = run(Mode::Full, 0, 1e-3, 1, None, None);
    assert_eq!(other.dev_examples.unwrap().ids_sha256, dev.ids_sha256);
}

/// bf16 autocast (CPU autocast here: the same PyTorch machinery as on CUDA) still learns: the
/// forward runs its matrix products in bf16, the loss, the weights and the projection stay f32.
#[test]
fn learns_with_bf16_autocast() {
    let _serial = serial();
    for (mode, d, lr) in [(Mode::Full, 0, 1e-3), (Mode::Said, 300, 0.05)] {
        let result = run_with(mode, d, lr, 6, None, None, &|config| config.precision = Precision::Bf16);
        let last = result.evaluations.last().unwrap();
        let best = result.best.as_ref().unwrap();
        eprintln!("{mode:?} bf16: final train loss {:.3}, best dev accuracy {:.3}", last.train_loss, best.score);
        assert_eq!(result.status, Status::Completed);
        assert!(last.train_loss < 0.2, "{mode:?} bf16: final train loss {}", last.train_loss);
        assert!(best.score > 0.9, "{mode:?} bf16: best dev accuracy {}", best.score);
        // Not the f32 run: autocast really changed the arithmetic.
        let f32_run = run(mode, d, lr, 6, None, None);
        assert_ne!(f32_run.evaluations[0].train_loss, result.evaluations[0].train_loss, "{mode:?}");
    }
}

/// The head-only control moves the head's tensors (BERT's pooler and classifier) and nothing
/// else: every encoder tensor ends bit for bit at theta_0, the run counts the head's parameters
/// as trainable, and the head alone still lowers the training loss.
#[test]
fn head_only_trains_the_head_and_leaves_the_encoder_at_theta_0() {
    let _serial = serial();
    let (theta_0, _) = model();
    let (vs, model) = model();
    let train_set = synthetic(384, 1);
    let dev_set = synthetic(128, 2);
    let data = TrainData { train: &train_set, dev: vec![("dev".to_owned(), &dev_set)], with_f1: false, pad_id: 0 };
    let mut config = TrainConfig::new(Mode::HeadOnly, 0, 1e-2);
    config.epochs = 4;
    config.batch_size = 16;
    let result = train(&vs, &model, &data, &config, None, &Interrupter::default(), &mut |_| {}).unwrap();
    assert_eq!(result.status, Status::Completed);
    let before = theta_0.variables();
    let (mut head, mut moved) = (0, Vec::new());
    for (name, tensor) in vs.variables() {
        let is_head = name.starts_with("bert.pooler.") || name.starts_with("classifier.");
        let same = tensor.equal(&before[&name]);
        if is_head {
            head += tensor.numel();
            assert!(!same, "head tensor {name} did not move");
        } else {
            // Frozen: the backward never reached it (the control costs a forward, not a backward).
            assert!(!tensor.requires_grad() && !tensor.grad().defined(), "encoder tensor {name} has a gradient");
            if !same {
                moved.push(name);
            }
        }
    }
    assert!(moved.is_empty(), "encoder tensors moved in a head-only run: {moved:?}");
    assert_eq!(result.trainable_parameters, head);
    assert!(result.subspace.is_none());
    let (first, last) = (&result.evaluations[0], result.evaluations.last().unwrap());
    eprintln!("head only: train loss {:.3} -> {:.3}, {head} trainable", first.train_loss, last.train_loss);
    assert!(last.train_loss < first.train_loss, "{} -> {}", first.train_loss, last.train_loss);
}

#[test]
fn a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one() {
    let _serial = serial();
    let modes = [(Mode::Full, 0, 1e-3), (Mode::Said, 120, 0.05), (Mode::Did, 120, 0.2), (Mode::HeadOnly, 0, 1e-2)];
    for (mode, d, lr) in modes {
        let uninterrupted = run(mode, d, lr, 2, None, None);
        let dir = std::env::temp_dir().join(format!("bench-suite-train-resume-{mode:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Stopped after 13 steps (the process limit saves the state at step 13, between the
        // periodic saves at 12 and 18), then a new process resumes.
        let stopped = run(mode, d, lr, 2, Some(&dir), Some(13));
        assert_eq!(stopped.steps, 13);
        let resumed = run(mode, d, lr, 2, Some(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(resumed.steps_this_process, uninterrupted.steps - 13, "{mode:?}: resumed from step 13");
        assert_eq!(resumed.evaluations, uninterrupted.evaluations, "{mode:?}: resumed run differs");
    }
    // A kill between writing a run state's tensors and committing its state (the window in which
    // CI once lost a run): the folder holds the state of step 13 beside the tensors of step 19.
    // The resumed run must read step 13's tensors, not the newer file.
    for (mode, d, lr) in [(Mode::Full, 0, 1e-3), (Mode::Said, 120, 0.05)] {
        let uninterrupted = run(mode, d, lr, 2, None, None);
        let base = std::env::temp_dir().join(format!("bench-suite-train-window-{mode:?}-{}", std::process::id()));
        let (dir, later) = (base.join("at-13"), base.join("at-19"));
        let _ = std::fs::remove_dir_all(&base);
        run(mode, d, lr, 2, Some(&dir), Some(13));
        run(mode, d, lr, 2, Some(&later), Some(19));
        let newer: Vec<_> = std::fs::read_dir(&later)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "safetensors"))
            .collect();
        assert_eq!(newer.len(), 1, "one tensor file per saved state: {newer:?}");
        std::fs::copy(&newer[0], dir.join(newer[0].file_name().unwrap())).unwrap();
        let resumed = run(mode, d, lr, 2, Some(&dir), None);
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(resumed.steps_this_process, uninterrupted.steps - 13, "{mode:?}: resumed from step 13");
        assert_eq!(resumed.evaluations, uninterrupted.evaluations, "{mode:?}: resumed from a torn save");
    }
    // A run folder resumes only the run it holds.
    let dir = std::env::temp_dir().join(format!("bench-suite-train-other-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(Mode::Said, 120, 0.05, 1, Some(&dir), Some(7));
    let (vs, model) = model();
    let train_set = synthetic(384, 1);
    let data = TrainData { train: &train_set, dev: vec![("dev".to_owned(), &train_set)], with_f1: false, pad_id: 0 };
    let mut other = TrainConfig::new(Mode::Said, 120, 0.1);
    other.epochs = 1;
    other.batch_size = 16;
    other.checkpoint_every = Some(6);
    let err = train(&vs, &model, &data, &other, Some(&dir), &Interrupter::default(), &mut |_| {}).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(err.to_string().contains("another run"), "{err}");
}

/// Length-bucketed batches pad less, still learn, and a run with them (and with SAID's own scale
/// learning rate) resumes exactly: the batches are a function of (data seed, epoch).
#[test]
fn length_buckets_pad_less_and_resume_exactly() {
    let _serial = serial();
    let buckets = |config: &mut TrainConfig| {
        config.length_buckets = Some(4);
        config.lambda_lr = Some(0.01);
    };
    let plain = run_with(Mode::Said, 120, 0.05, 2, None, None, &|config| {
        config.length_buckets = None;
        config.lambda_lr = Some(0.01);
    });
    let bucketed = run_with(Mode::Said, 120, 0.05, 2, None, None, &buckets);
    let (plain_padding, bucketed_padding) = (plain.padding_fraction.unwrap(), bucketed.padding_fraction.unwrap());
    eprintln!("padding: plain {plain_padding:.3}, bucketed {bucketed_padding:.3}");
    assert!(bucketed_padding < plain_padding / 2.0, "{plain_padding} -> {bucketed_padding}");
    assert_eq!(bucketed.steps, plain.steps, "the same number of batches");
    assert_ne!(bucketed.evaluations, plain.evaluations, "other batches, other numbers");
    let dir = std::env::temp_dir().join(format!("bench-suite-train-buckets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run_with(Mode::Said, 120, 0.05, 2, Some(&dir), Some(13), &buckets);
    let resumed = run_with(Mode::Said, 120, 0.05, 2, Some(&dir), None, &buckets);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(resumed.evaluations, bucketed.evaluations, "a resumed bucketed run differs");
}

#[test]
fn same_seeds_give_identical_runs_and_a_nan_ends_as_diverged() {
    let _serial = serial();
    let a = run(Mode::Did, 200, 0.05, 1, None, None);
    let b = run(Mode::Did, 200, 0.05, 1, None, None);
    assert_eq!(a.evaluations, b.evaluations);

    let (vs, model) = model();
    let _ = tch::no_grad(|| vs.variables()["classifier.weight"].shallow_clone().fill_(f64::NAN));
    let train_set = synthetic(64, 1);
    let data = TrainData { train: &train_set, dev: vec![("dev".to_owned(), &train_set)], with_f1: false, pad_id: 0 };
    let result =
        train(&vs, &model, &data, &TrainConfig::new(Mode::Full, 0, 1e-3), None, &Interrupter::default(), &mut |_| {})
            .unwrap();
    assert!(
        matches!(result.status, Status::Diverged { step: 0, loss, cause: DivergenceCause::Loss } if loss.is_nan()),
        "{:?}",
        result.status
    );
    assert!(result.evaluations.is_empty() && result.best.is_none());
}

/// Divergence is found wherever it shows, and a diverged run gets no score: weights broken by the
/// last step (its loss was finite) show in the evaluation's logits; a non-finite weight that no
/// logit reads (a position past every example) in the final weights.
#[test]
fn non_finite_logits_or_final_weights_are_divergence() {
    let _serial = serial();
    let train_set = synthetic(64, 1);
    let data = TrainData { train: &train_set, dev: vec![("dev".to_owned(), &train_set)], with_f1: false, pad_id: 0 };

    let (vs, said_model) = model();
    let mut config = TrainConfig::new(Mode::Said, 120, 1e39);
    config.epochs = 1;
    config.batch_size = 64;
    let result = train(&vs, &said_model, &data, &config, None, &Interrupter::default(), &mut |_| {}).unwrap();
    assert!(
        matches!(result.status, Status::Diverged { step: 1, loss, cause: DivergenceCause::Logits } if loss.is_finite()),
        "{:?}",
        result.status
    );
    assert!(result.best.is_none() && result.evaluations.is_empty(), "{result:?}");

    let (vs, model) = model();
    let _ = tch::no_grad(|| vs.variables()["bert.embeddings.position_embeddings.weight"].get(31).fill_(f64::INFINITY));
    let mut config = TrainConfig::new(Mode::Full, 0, 1e-3);
    config.epochs = 1;
    config.batch_size = 16;
    let result = train(&vs, &model, &data, &config, None, &Interrupter::default(), &mut |_| {}).unwrap();
    assert!(
        matches!(result.status, Status::Diverged { step: 4, cause: DivergenceCause::Weights, .. }),
        "{:?}",
        result.status
    );
    assert_eq!(result.evaluations.len(), 1, "the evaluation is kept for the record");
    assert!(result.best.is_none(), "but the run has no score");
}

/// Every family fine-tunes through the suite's trainer with SAID (per-layer scales): its golden
/// weights loaded, a fresh two-label head, the synthetic task (with the family's end-of-sequence
/// token appended where its head reads one). The scale count the run uses is the one a spec is
/// checked with before any model is built (`shapes::subspace_dimensions`), and the run completes
/// with a finite loss.
#[test]
fn every_family_fine_tunes_with_said() {
    let _draws = crate::support::draws();
    use crate::support::{checkpoint_from_golden, golden, read};
    use encoders::checkpoint;
    use encoders::models::{Config, ModelType};
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
        let train_set = with_eos(synthetic::examples(64, 1, "train"));
        let dev_set = with_eos(synthetic::examples(32, 2, "dev"));
        let data = TrainData {
            train: &train_set,
            dev: vec![("dev".to_owned(), &dev_set)],
            with_f1: false,
            pad_id: config.pad_token_id as u32,
        };
        let mut train_config = TrainConfig::new(Mode::Said, 300, 0.05);
        train_config.epochs = 1;
        train_config.batch_size = 16;
        let result = train(&vs, &model, &data, &train_config, None, &Interrupter::default(), &mut |_| {}).unwrap();
        assert_eq!(result.status, Status::Completed, "{kind}");
        let loss = result.evaluations.last().unwrap().train_loss;
        assert!(loss.is_finite(), "{kind}: train loss {loss}");
        let subspace = result.subspace.as_ref().unwrap();
        let (total, m) = encoders::shapes::subspace_dimensions(
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
            let full = train(
                &vs,
                &model,
                &data,
                &TrainConfig::new(Mode::Full, 0, 1e-3),
                None,
                &Interrupter::default(),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(full.status, Status::Completed, "xlnet full");
            assert!(vs.variables()["transformer.mask_emb"].equal(&before), "xlnet: mask_emb moved");
        }
    }
}

fn model_parameter_count(model: &SequenceClassifier) -> usize {
    use encoders::models::Classifier;
    model.parameter_count()
}
