//! One trainer for full, head-only, DID and SAID fine-tuning of a sequence classifier.
//!
//! The modes differ only in what the optimiser sees: in `full`, every model tensor; in
//! `head_only` (the control of a d90), the task head's tensors, the rest frozen; in `did` and
//! `said`, the subspace's `theta` (and `lambda`), whose gradients come from one ordinary
//! backward through the model followed by the transpose of the projection (`subspace`). The same
//! AdamW (decoupled weight decay as `torch.optim.AdamW`, none on biases and LayerNorm weights and
//! on subspace parameters), linear warmup then linear decay (as HF's
//! `get_linear_schedule_with_warmup`), and global-norm gradient clipping serve all modes.
//!
//! Determinism: the data order of epoch `e` is a permutation drawn from `(seeds.data, e)`, and the
//! dropout RNG (torch's process-wide generator, so runs in one process take turns) is reseeded from
//! `(seeds.dropout, step)` before every step, so a run is a function of its seeds (bit-identical on
//! CPU with the same thread count) and a resumed run needs no RNG
//! state: the saved run state holds the trainable tensors, the optimiser moments, the step and
//! the evaluations so far ([`crate::session`]). A run killed and restarted from its run folder ends with exactly the
//! numbers of an uninterrupted run.
//!
//! A run is `diverged` whenever its loss is not finite (or above `divergence_loss`), the logits it
//! is evaluated on are not finite, or its final weights are not finite, at whatever step that
//! happens: it ends there, keeps the evaluations made until then for the record, and gets no
//! score (`best` is `None`), so a model that predicts one class from NaN logits is never scored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::Error;
use crate::interrupt::{Interrupter, Terminated};
use crate::optim::{AdamConfig, AdamW, clip_grad_norm, linear_schedule};
use crate::precision::Autocast;
use crate::session::{Next, SavedState, Session};
use crate::tokenize::{Encoded, collate};
use encoders::models::Classifier;
use results::{DivergenceCause, Evaluation, Mode, Precision, RunResult, SplitMetrics, Status, TrainConfig};
use subspace::fastfood::FactorStorage;
use subspace::random;
use subspace::{LayerGroup, Subspace, SubspaceConfig};

/// One labelled, tokenised example.
#[derive(Debug, Clone)]
pub struct LabelledExample {
    /// The text (or sentence pair) as the model's tokenizer reads it.
    pub encoded: Encoded,
    /// The gold class, from 0 (below the classifier's label count).
    pub label: usize,
}

/// What a run trains and evaluates on.
pub struct TrainData<'a> {
    /// The training split, in its stored order (each epoch draws its own permutation).
    pub train: &'a [LabelledExample],
    /// Named dev splits (MNLI has two).
    pub dev: Vec<(String, &'a [LabelledExample])>,
    /// Report F1 of label 1 as well as accuracy (MRPC, QQP).
    pub with_f1: bool,
    /// The tokenizer's padding token id, which [`collate`] pads batches with.
    pub pad_id: u32,
}

/// What the trainer reports after each step (for progress bars).
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Steps done so far, this one included (from 1, over every process of a resumed run).
    pub step: usize,
    /// Steps of the whole run: steps per epoch times epochs.
    pub total_steps: usize,
    /// This step's mean cross-entropy over its batch.
    pub loss: f64,
    /// The learning rate this step used, from the linear schedule (before SAID's `lambda_lr` factor
    /// on the scales).
    pub lr: f64,
}

/// Trains `model` (whose variables live in `vs`) and evaluates it on the dev splits. With a run
/// folder, the run state is saved there (every `checkpoint_every` steps, at a process limit and
/// when interrupted) and a run found there is resumed. `on_step` sees every
/// step.
pub fn train(
    vs: &nn::VarStore,
    model: &dyn Classifier,
    data: &TrainData,
    config: &TrainConfig,
    run_dir: Option<&Path>,
    interrupter: &Interrupter,
    on_step: &mut dyn FnMut(StepReport),
) -> Result<RunResult, Error> {
    if data.train.is_empty() {
        return Err(Error::NoData);
    }
    let mut session = Session::begin(run_dir, "trainable", config.max_steps_this_process, interrupter);
    let device = vs.device();
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));

    let mut trainable = Trainable::new(&named, model, config)?;
    let mut optimiser = trainable.optimiser(&named, model, config);
    let trainable_parameters = optimiser.tensors.iter().map(Tensor::numel).sum();
    let plan = EpochPlan::new(config, data.train);
    let fresh = || RunState {
        config: config.clone(),
        step: 0,
        evaluations: Vec::new(),
        loss_sum: 0.0,
        loss_count: 0,
        elapsed_s: 0.0,
        tensors_file: String::new(),
    };
    let (mut state, resumed) = session.resume(&mut optimiser, |saved: &RunState| same_run(saved, config), fresh)?;
    if resumed {
        trainable.write(&optimiser)?;
    }
    let mut status = Status::Completed;
    let mut last_loss = f64::NAN;

    let mut unreached_reported = false;
    let steps_per_epoch = plan.steps_per_epoch;
    'epochs: for (epoch, batches) in plan.batches.iter().enumerate().skip(state.step / steps_per_epoch) {
        for (batch_idx, indices) in batches.iter().enumerate().skip(state.step % steps_per_epoch) {
            if session.limit_reached(state.step) {
                session.save(&optimiser, &state)?;
                status = Status::Stopped;
                break 'epochs;
            }
            let loss_value = match forward_backward(model, data, indices, config, device, state.step, &named) {
                StepOutcome::Loss(loss) => loss,
                StepOutcome::Diverged(loss) => {
                    status = Status::Diverged { step: state.step, loss, cause: DivergenceCause::Loss };
                    break 'epochs;
                }
            };
            if !unreached_reported {
                unreached_reported = true;
                report_unreached(&named);
            }
            let mut grads = trainable.gradients(&named)?;
            clip_grad_norm(&mut grads, config.max_grad_norm);
            state.step += 1;
            let lr = linear_schedule(config.lr, state.step - 1, plan.total_steps, plan.warmup_steps);
            optimiser.step(&grads, lr, trainable.weight_decay(config), state.step);
            trainable.write(&optimiser)?;
            state.loss_sum += loss_value;
            state.loss_count += 1;
            last_loss = loss_value;
            on_step(StepReport { step: state.step, total_steps: plan.total_steps, loss: loss_value, lr });

            let end_of_epoch = batch_idx + 1 == steps_per_epoch;
            if end_of_epoch || config.eval_every.is_some_and(|every| state.step.is_multiple_of(every)) {
                match evaluate(model, data, config, device, &mut state, epoch) {
                    Some(evaluation) => state.evaluations.push(evaluation),
                    None => {
                        status =
                            Status::Diverged { step: state.step, loss: loss_value, cause: DivergenceCause::Logits };
                        break 'epochs;
                    }
                }
            }
            let due = config
                .checkpoint_every
                .is_some_and(|every| state.step.is_multiple_of(every) || state.step == plan.total_steps);
            if session.end_step(&optimiser, &state, due)? == Next::Interrupted {
                let saved = session.saves();
                return Err(Error::Terminated(Terminated::Run { step: state.step, saved }));
            }
        }
    }

    // The loss and logits of the last step were checked; its weights were not yet.
    if status == Status::Completed && !all_finite(&named) {
        status = Status::Diverged { step: state.step, loss: last_loss, cause: DivergenceCause::Weights };
    }
    let best = match status {
        Status::Diverged { .. } => None,
        _ => state.evaluations.iter().max_by(|a, b| a.score.total_cmp(&b.score)).cloned(),
    };
    Ok(RunResult {
        config: config.clone(),
        status,
        steps: state.step,
        steps_this_process: session.steps_this_process(state.step),
        best,
        evaluations: state.evaluations,
        subspace: trainable.description(),
        trainable_parameters,
        wall_time_s: session.elapsed_s(),
        padding_fraction: plan.padding_fraction,
        dev_examples: dev_examples(data),
    })
}

/// The first dev split's examples as every evaluation's `predicted` labels follow them. An
/// example's id is its token ids (its text as the model's tokenizer reads it at `max_len`), so
/// every run of a search and its baseline share the hash, and a changed split or order shows.
fn dev_examples(data: &TrainData) -> Option<results::DevExamples> {
    let (split, examples) = data.dev.first()?;
    let ids: Vec<String> = examples
        .iter()
        .map(|example| example.encoded.ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    Some(results::DevExamples {
        split: split.clone(),
        ids_sha256: results::labels::ids_sha256(ids.iter().map(String::as_str)),
        labels: results::labels::encode(examples.iter().map(|example| example.label))?,
    })
}

/// What the optimiser trains: every tensor of the model (full fine-tuning), the head's tensors
/// alone (the head-only control), or the subspace's `theta` and `lambda`, whose weights the
/// subspace writes into the model after every step.
enum Trainable {
    Full,
    /// The positions in `named` of the head's tensors; every other tensor is frozen (no
    /// gradient, so the backward stops at the head).
    HeadOnly(Vec<usize>),
    Subspace(Subspace),
}

impl Trainable {
    /// The trainable of `config`'s mode over the model's sorted `named` tensors.
    fn new(named: &[(String, Tensor)], model: &dyn Classifier, config: &TrainConfig) -> Result<Trainable, Error> {
        let Some(method) = config.mode.subspace_method() else {
            // A full or head-only run needs no projector: release the one kept for the next
            // subspace run.
            subspace::release_shared_projector();
            if config.mode != Mode::HeadOnly {
                return Ok(Trainable::Full);
            }
            let mut head = Vec::new();
            for (index, (name, tensor)) in named.iter().enumerate() {
                if model.layer_group(name) == LayerGroup::Head {
                    head.push(index);
                } else {
                    // Frozen: the backward never reaches these (the model is built for this run).
                    let _ = tensor.set_requires_grad(false);
                }
            }
            if head.is_empty() {
                return Err(Error::NoHead);
            }
            return Ok(Trainable::HeadOnly(head));
        };
        let layers: Vec<_> = named.iter().map(|(name, _)| model.layer_group(name)).collect();
        let subspace_config = SubspaceConfig {
            method,
            d: config.d,
            scope: config.scope,
            grouping: config.grouping,
            compat: config.compat,
            seed: config.seeds.projection,
            factor_storage: FactorStorage::Cached,
        };
        Ok(Trainable::Subspace(Subspace::new(named, &layers, subspace_config)?))
    }

    /// AdamW over what is trained: the model's tensors with weight decay where the family allows
    /// it, or `theta` and `lambda` (SAID's `lambda_lr` as a factor on the scales' rate).
    fn optimiser(&self, named: &[(String, Tensor)], model: &dyn Classifier, config: &TrainConfig) -> AdamW {
        match self {
            Trainable::Full => AdamW::new(
                named.iter().map(|(_, tensor)| tensor.shallow_clone()).collect(),
                named.iter().map(|(name, _)| !model.no_decay(name)).collect(),
                vec![1.0; named.len()],
                AdamConfig::TORCH,
            ),
            Trainable::HeadOnly(head) => AdamW::new(
                head.iter().map(|&index| named[index].1.shallow_clone()).collect(),
                head.iter().map(|&index| !model.no_decay(&named[index].0)).collect(),
                vec![1.0; head.len()],
                AdamConfig::TORCH,
            ),
            Trainable::Subspace(subspace) => {
                let lambda_factor =
                    config.lambda_lr.filter(|_| config.mode == Mode::Said).map_or(1.0, |rate| rate / config.lr);
                AdamW::new(
                    vec![subspace.theta().copy(), subspace.lambda().copy()],
                    vec![false, false],
                    vec![1.0, lambda_factor],
                    AdamConfig::TORCH,
                )
            }
        }
    }

    /// The gradients of what is trained, after an ordinary backward through the model: the
    /// model's own, or their projection onto `theta` and `lambda` (`P^T`).
    fn gradients(&self, named: &[(String, Tensor)]) -> Result<Vec<Tensor>, Error> {
        match self {
            Trainable::Full => Ok(named.iter().map(|(_, tensor)| tensor.grad()).collect()),
            Trainable::HeadOnly(head) => Ok(head.iter().map(|&index| named[index].1.grad()).collect()),
            Trainable::Subspace(subspace) => {
                let (grad_theta, grad_lambda) = subspace.gradients()?;
                Ok(vec![grad_theta, grad_lambda])
            }
        }
    }

    /// Weight decay applies to a full or head-only run's weights, never to subspace parameters.
    fn weight_decay(&self, config: &TrainConfig) -> f64 {
        match self {
            Trainable::Full | Trainable::HeadOnly(_) => config.weight_decay,
            Trainable::Subspace(_) => 0.0,
        }
    }

    /// After an optimiser step (or a resume): the subspace writes `theta_0 + P(theta)` into the
    /// model; a full run's optimiser already updated the model's tensors in place.
    fn write(&mut self, optimiser: &AdamW) -> Result<(), Error> {
        if let Trainable::Subspace(subspace) = self {
            subspace.set(&optimiser.tensors[0], &optimiser.tensors[1])?;
        }
        Ok(())
    }

    /// The subspace's description for the run's record.
    fn description(&self) -> Option<results::SubspaceDescription> {
        match self {
            Trainable::Full | Trainable::HeadOnly(_) => None,
            Trainable::Subspace(subspace) => Some(subspace.description()),
        }
    }
}

/// Every epoch's batches, drawn once from the data seed, with the step counts and the padding
/// fraction counted over them.
struct EpochPlan {
    batches: Vec<Vec<Vec<usize>>>,
    steps_per_epoch: usize,
    total_steps: usize,
    warmup_steps: usize,
    padding_fraction: Option<f64>,
}

impl EpochPlan {
    fn new(config: &TrainConfig, train: &[LabelledExample]) -> EpochPlan {
        let steps_per_epoch = train.len().div_ceil(config.batch_size);
        let lengths: Vec<usize> = train.iter().map(|example| example.encoded.ids.len()).collect();
        let batches: Vec<Vec<Vec<usize>>> =
            (0..config.epochs).map(|epoch| epoch_batches(config, epoch, &lengths)).collect();
        let (mut padded, mut tokens) = (0usize, 0usize);
        for batch in batches.iter().flatten() {
            let longest = batch.iter().map(|&idx| lengths[idx]).max().unwrap_or(0);
            padded += longest * batch.len();
            tokens += batch.iter().map(|&idx| lengths[idx]).sum::<usize>();
        }
        let padding_fraction = (padded > 0).then(|| (padded - tokens) as f64 / padded as f64);
        let total_steps = steps_per_epoch * config.epochs;
        let warmup_steps = (config.warmup_ratio * total_steps as f64).round() as usize;
        EpochPlan { batches, steps_per_epoch, total_steps, warmup_steps, padding_fraction }
    }
}

/// What one forward and backward gave.
enum StepOutcome {
    /// The batch's mean loss (f32 whatever the forward's precision); gradients are in place.
    Loss(f64),
    /// A loss that is not finite or above `divergence_loss`; no backward was run.
    Diverged(f64),
}

/// One batch forward (dropout reseeded from the step, in the configured precision), its loss,
/// and the backward through the model.
fn forward_backward(
    model: &dyn Classifier,
    data: &TrainData,
    indices: &[usize],
    config: &TrainConfig,
    device: Device,
    step: usize,
    named: &[(String, Tensor)],
) -> StepOutcome {
    let examples: Vec<&Encoded> = indices.iter().map(|&idx| &data.train[idx].encoded).collect();
    let labels: Vec<i64> = indices.iter().map(|&idx| data.train[idx].label as i64).collect();
    let batch = collate(&examples, data.pad_id, device);
    let labels = Tensor::from_slice(&labels).to_device(device);
    tch::manual_seed(derived_seed(config.seeds.dropout, "dropout", step as u64));
    zero_grads(named);
    let logits = config
        .precision
        .run(device, || model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, true));
    let loss = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float).nll_loss(&labels);
    let loss_value = loss.double_value(&[]);
    if !loss_value.is_finite() || loss_value > config.divergence_loss {
        return StepOutcome::Diverged(loss_value);
    }
    loss.backward();
    StepOutcome::Loss(loss_value)
}

/// Tensors the loss does not reach (XLNet's query-stream `mask_emb`) get no gradient: zero in the
/// subspace, not updated by AdamW (as torch). Said once per run, by name, so that a tensor cut
/// off by mistake is seen.
fn report_unreached(named: &[(String, Tensor)]) {
    let unreached: Vec<&str> = named
        .iter()
        .filter(|(_, tensor)| tensor.requires_grad() && !tensor.grad().defined())
        .map(|(name, _)| name.as_str())
        .collect();
    if !unreached.is_empty() {
        tracing::info!("the loss does not reach {} (no gradient; not trained)", unreached.join(", "));
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    /// The configuration the run was started with: a run folder resumes only the same run.
    config: TrainConfig,
    step: usize,
    evaluations: Vec<Evaluation>,
    /// Training loss since the last evaluation.
    loss_sum: f64,
    loss_count: usize,
    /// Seconds spent on the run up to this saved state, over every process.
    #[serde(default)]
    elapsed_s: f64,
    /// The file in the run folder that holds this state's tensors (see `optim::save_run_state`).
    #[serde(default = "legacy_tensors_file")]
    tensors_file: String,
}

impl SavedState for RunState {
    fn step(&self) -> usize {
        self.step
    }
    fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }
    fn tensors_file(&self) -> &str {
        &self.tensors_file
    }
    fn saved(&self, elapsed_s: f64, tensors_file: String) -> RunState {
        RunState { elapsed_s, tensors_file, ..self.clone() }
    }
}

/// Run states saved before the tensor file was named by its step.
fn legacy_tensors_file() -> String {
    "trainable.safetensors".to_owned()
}

fn derived_seed(seed: u64, purpose: &str, index: u64) -> i64 {
    use rand_core::RngCore;
    (random::keyed_rng("train v1", seed, purpose, index).next_u64() >> 1) as i64
}

/// The batches of one epoch (example indices), a function of (data seed, epoch): a shuffled
/// order cut into batches; with `length_buckets`, chunks of that many batches are sorted by
/// length (stable, so ties keep the shuffled order) and the batches then shuffled. Either way
/// every epoch has `ceil(n / batch_size)` batches and only the last chunk's last batch is short.
fn epoch_batches(config: &TrainConfig, epoch: usize, lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut rng = random::keyed_rng("train v1", config.seeds.data, "data order", epoch as u64);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    random::shuffle(&mut rng, &mut order);
    let Some(buckets) = config.length_buckets else {
        return order.chunks(config.batch_size).map(<[usize]>::to_vec).collect();
    };
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(lengths.len().div_ceil(config.batch_size));
    for chunk in order.chunks_mut(config.batch_size * buckets.max(1)) {
        chunk.sort_by_key(|&idx| lengths[idx]);
        batches.extend(chunk.chunks(config.batch_size).map(<[usize]>::to_vec));
    }
    let mut rng = random::keyed_rng("train v1", config.seeds.data, "batch order", epoch as u64);
    random::shuffle(&mut rng, &mut batches);
    batches
}

/// Whether every tensor of `named` is finite (one reduction per tensor).
fn all_finite(named: &[(String, Tensor)]) -> bool {
    let _guard = tch::no_grad_guard();
    named.iter().all(|(_, tensor)| tensor.isfinite().all().int64_value(&[]) != 0)
}

fn zero_grads(named: &[(String, Tensor)]) {
    for (_, tensor) in named {
        let mut grad = tensor.grad();
        if grad.defined() {
            let _ = grad.zero_();
        }
    }
}

fn evaluate(
    model: &dyn Classifier,
    data: &TrainData,
    config: &TrainConfig,
    device: Device,
    state: &mut RunState,
    epoch: usize,
) -> Option<Evaluation> {
    let _guard = tch::no_grad_guard();
    let mut splits = BTreeMap::new();
    let mut score = None;
    for (name, examples) in &data.dev {
        let metrics = split_metrics(model, examples, data, device, config.precision)?;
        score.get_or_insert((metrics.accuracy, metrics.predicts_one_class()));
        splits.insert(name.clone(), metrics);
    }
    let (score, predicts_one_class) = score.unwrap_or((f64::NAN, false));
    let train_examples = &data.train[..config.train_eval_examples.unwrap_or(usize::MAX).min(data.train.len())];
    let train_accuracy = if train_examples.is_empty() {
        None
    } else {
        Some(split_metrics(model, train_examples, data, device, config.precision)?.accuracy)
    };
    let train_loss = if state.loss_count == 0 { f64::NAN } else { state.loss_sum / state.loss_count as f64 };
    state.loss_sum = 0.0;
    state.loss_count = 0;
    Some(Evaluation { step: state.step, epoch, train_loss, splits, score, predicts_one_class, train_accuracy })
}

/// Accuracy (and F1 of label 1 when the task reports it) of `model` on `examples`; `None` when a
/// logit is not finite (an argmax over NaN would score a constant prediction).
fn split_metrics(
    model: &dyn Classifier,
    examples: &[LabelledExample],
    data: &TrainData,
    device: Device,
    precision: Precision,
) -> Option<SplitMetrics> {
    let mut correct = 0usize;
    let (mut true_positive, mut false_positive, mut false_negative) = (0usize, 0usize, 0usize);
    let mut counts: Vec<usize> = Vec::new();
    let mut predicted = vec![0usize; examples.len()];
    // Metrics do not depend on the order: batches of similar lengths pad less.
    let mut by_length: Vec<usize> = (0..examples.len()).collect();
    by_length.sort_by_key(|&idx| examples[idx].encoded.ids.len());
    for chunk in by_length.chunks(64) {
        let encoded: Vec<&Encoded> = chunk.iter().map(|&idx| &examples[idx].encoded).collect();
        let batch = collate(&encoded, data.pad_id, device);
        let logits = precision
            .run(device, || model.forward_t(&batch.input_ids, &batch.attention_mask, &batch.token_type_ids, false));
        if logits.isfinite().all().int64_value(&[]) == 0 {
            return None;
        }
        let predictions =
            Vec::<i64>::try_from(logits.argmax(-1, false).to_device(Device::Cpu)).expect("i64 predictions");
        counts.resize(logits.size()[1] as usize, 0);
        for (&idx, &prediction) in chunk.iter().zip(&predictions) {
            let (label, prediction) = (examples[idx].label, prediction as usize);
            predicted[idx] = prediction;
            counts[prediction] += 1;
            correct += usize::from(label == prediction);
            true_positive += usize::from(label == 1 && prediction == 1);
            false_positive += usize::from(label != 1 && prediction == 1);
            false_negative += usize::from(label == 1 && prediction != 1);
        }
    }
    let accuracy = correct as f64 / examples.len().max(1) as f64;
    let f1 = data.with_f1.then(|| {
        let denominator = 2 * true_positive + false_positive + false_negative;
        if denominator == 0 { 0.0 } else { 2.0 * true_positive as f64 / denominator as f64 }
    });
    Some(SplitMetrics { accuracy, f1, predictions: counts, predicted: results::labels::encode(predicted) })
}

/// A saved state of another run (another configuration) is refused: a run folder resumes only
/// the run it was started for.
fn same_run(saved: &RunState, config: &TrainConfig) -> Result<(), String> {
    // `max_steps_this_process` is about this process, not the run.
    let comparable = |config: &TrainConfig| TrainConfig { max_steps_this_process: None, ..config.clone() };
    if comparable(&saved.config) == comparable(config) {
        return Ok(());
    }
    Err(format!(
        "this run folder holds another run ({}); use another --run-dir or remove it",
        serde_json::to_string(&saved.config).expect("serialisable")
    ))
}
