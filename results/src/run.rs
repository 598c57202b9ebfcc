//! One run: what it was ([`RunSpec`], whose hash is its key), what it gave ([`RunResult`]) and
//! the record of both on disk ([`RunRecord`], `runs/<key>.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Compat, LambdaGrouping, Mode, Scope, SubspaceMethod, TrainConfig};
use crate::hash_key;

/// Everything that determines a run's numbers, fully resolved: its hash is the run's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The model's name: a manifest asset id, a hub repository, a local folder's own name, or a
    /// synthetic model's name.
    pub model: String,
    /// Checkpoint identity: the pinned HF commit (7 hex digits), a local folder's content hash
    /// (12 hex digits of the sha256 of its files' hashes), or `synthetic`.
    pub model_revision: String,
    /// The task's name: a manifest task (`sst2`, `mrpc`, ...) or a spec's local task.
    pub task: String,
    /// Data identity: the first 8 hex digits of the data file's sha256, a local task's hash (12
    /// hex digits over its declaration and files), or `synthetic`.
    pub data: String,
    /// Tokens per example after truncation.
    pub max_len: usize,
    /// Train on a seeded random subset of this many training examples; `None`: the whole split.
    pub max_train_examples: Option<usize>,
    /// The seed of that subset, the same for every run of a search.
    pub subset_seed: u64,
    /// Where the run trained: `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// The libtorch version the suite ran with (`2.11.0`).
    pub torch: String,
    /// Every training setting: mode, `d`, learning rate, seeds, ...
    pub train: TrainConfig,
}

impl RunSpec {
    /// The first 16 hex digits of the sha256 of the spec's JSON, without the knobs that change
    /// how a process works on the run but not the run (`train.max_steps_this_process`, which
    /// stops a process early: the run it continues later is the same one).
    pub fn key(&self) -> String {
        let mut identity = self.clone();
        identity.train.max_steps_this_process = None;
        hash_key(&identity)
    }

    /// A sacreBLEU-style one-line description of the run, e.g. (one line, wrapped here)
    /// `said|group:per_layer|scope:global|compat:none|task:mrpc|metric:acc|`
    /// `model:roberta-base@e2da8e2|data:60a9b090|d:896|lr:3e-2|seed:1|torch:2.11.0|device:cpu|`
    /// `code:1a2b3c4d5e6f`.
    pub fn signature(&self, code: &str) -> String {
        let train = &self.train;
        let model = self.model.rsplit('/').next().unwrap_or(&self.model);
        let mut parts = vec![train.mode.to_string()];
        if train.mode == Mode::Said {
            parts.push(format!("group:{}", train.grouping));
        }
        if train.mode.subspace_method().is_some() {
            parts.push(format!("scope:{}", train.scope));
            parts.push(format!("compat:{}", train.compat));
        }
        parts.push(format!("task:{}", self.task));
        parts.push("metric:acc".to_owned());
        parts.push(format!("model:{model}@{}", self.model_revision));
        parts.push(format!("data:{}", self.data));
        if let Some(n) = self.max_train_examples {
            parts.push(format!("train:{n}@{}", self.subset_seed));
        }
        if train.mode.subspace_method().is_some() {
            parts.push(format!("d:{}", train.d));
        }
        parts.push(format!("lr:{:e}", train.lr));
        if let Some(lambda_lr) = train.lambda_lr.filter(|_| train.mode == Mode::Said) {
            parts.push(format!("lambda-lr:{lambda_lr:e}"));
        }
        let seeds = train.seeds;
        if seeds.data == seeds.head && seeds.head == seeds.dropout && seeds.dropout == seeds.projection {
            parts.push(format!("seed:{}", seeds.data));
        } else {
            parts.push(format!("seed:{}/{}/{}/{}", seeds.data, seeds.head, seeds.dropout, seeds.projection));
        }
        parts.push(format!("epochs:{}", train.epochs));
        match train.train_eval_examples {
            Some(0) => {}
            Some(n) => parts.push(format!("train-eval:{n}")),
            None => parts.push("train-eval:all".to_owned()),
        }
        if !train.precision.is_f32() {
            parts.push(format!("precision:{}", train.precision));
        }
        parts.push(format!("torch:{}", self.torch));
        parts.push(format!("device:{}", self.device));
        parts.push(format!("code:{code}"));
        parts.join("|")
    }
}

/// Accuracy (and F1 of label 1 where the task reports it) of one dev split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// The fraction of the split's examples predicted right, in [0, 1].
    pub accuracy: f64,
    /// F1 of label 1, for tasks whose metrics include F1 (MRPC, QQP); `None` for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// How many examples were predicted as each class, in label order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<usize>,
    /// Each example's predicted label, in the split's order, one character each
    /// ([`crate::labels`]); `None` in records written before they were kept, and for tasks with
    /// more labels than the encoding has characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<String>,
}

impl SplitMetrics {
    /// Every example was predicted as one class (a constant predictor, whatever its accuracy).
    pub fn predicts_one_class(&self) -> bool {
        !self.predictions.is_empty() && self.predictions.iter().filter(|&&count| count > 0).count() <= 1
    }
}

/// One evaluation of a run (every `eval_every` steps and at the end of every epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Optimiser steps done when the evaluation was made.
    pub step: usize,
    /// 0-based.
    pub epoch: usize,
    /// Mean training loss over the steps since the previous evaluation.
    pub train_loss: f64,
    /// The metrics of every dev split, by split name.
    pub splits: BTreeMap<String, SplitMetrics>,
    /// The metric the run is judged by: accuracy of the first dev split.
    pub score: f64,
    /// The first dev split was predicted as one class throughout.
    #[serde(default)]
    pub predicts_one_class: bool,
    /// Accuracy on the training examples (`train_eval_examples`), in eval mode.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Every step of every epoch ran.
    Completed,
    /// The run diverged and ended there, with no score (`best` is `None`).
    Diverged {
        /// Optimiser steps completed when the divergence was found.
        step: usize,
        /// The training loss of the step (the last finite one when the weights or logits failed).
        loss: f64,
        /// What was found not finite.
        #[serde(default)]
        cause: DivergenceCause,
    },
    /// Ended by `max_steps_this_process`.
    Stopped,
}

/// What made a run diverge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceCause {
    /// The training loss was not finite or exceeded `divergence_loss`.
    #[default]
    Loss,
    /// Evaluation logits were not finite.
    Logits,
    /// The weights after the last step were not finite.
    Weights,
}

/// Summary facts of a Fastfood projector (`subspace::fastfood::Projector`), for run records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectorSummary {
    /// One block group over all tensors (global), or one per tensor.
    pub scope: Scope,
    /// The seed every random factor is drawn from (the run's projection seed).
    pub seed: u64,
    /// The projector's input dimension: the length of `theta`
    /// ([`SubspaceDescription::theta_len`]; the run's `d` for DID).
    pub d: usize,
    /// The output dimension D: the elements of every projected tensor.
    pub total_params: usize,
    /// Parameter tensors projected onto.
    pub n_tensors: usize,
    /// Block groups (1 for the global scope, one per tensor for the per-tensor scope).
    pub n_groups: usize,
    /// Fastfood blocks over all groups: a group has one per length-`L` chunk of the input it reads.
    pub n_blocks: usize,
    /// Sum over blocks of their length `L`: the elements each FWHT pass touches.
    pub total_padded_len: usize,
    /// Groups whose block is shorter than `d`: the authors' code would crop the input there.
    pub n_groups_cropped_by_authors_code: usize,
    /// Whether a group whose block is shorter than `d` reads only `x[..L]` (the authors' cropping,
    /// used in the `aghajanyan` compatibility mode only).
    pub crop_to_block: bool,
}

/// The small serialisable record of a subspace (`subspace::Subspace`), kept with every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubspaceDescription {
    /// DID or SAID.
    pub method: SubspaceMethod,
    /// SAID's grouping of the scales `lambda`; `None` for DID.
    pub grouping: Option<LambdaGrouping>,
    /// The exact method or the authors' code.
    pub compat: Compat,
    /// Scales `m` (including the unused one of the compatibility mode).
    pub n_lambda: usize,
    /// Coordinates of `theta` (`d - m` for SAID, `d - m - 1` in the compatibility mode).
    pub theta_len: usize,
    /// The Fastfood projector that maps `theta` onto the weights.
    pub projector: ProjectorSummary,
}

/// What a run gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The training settings the run used.
    pub config: TrainConfig,
    /// How the run ended.
    pub status: Status,
    /// Optimiser steps done in all, those before a resumed checkpoint included.
    pub steps: usize,
    /// Every evaluation, in order.
    pub evaluations: Vec<Evaluation>,
    /// The evaluation with the highest score; `None` when the run diverged or never evaluated.
    pub best: Option<Evaluation>,
    /// The subspace of a DID or SAID run; `None` for full and head-only fine-tuning.
    pub subspace: Option<SubspaceDescription>,
    /// Scalars the optimiser trains: every weight in full fine-tuning, the head's in head-only,
    /// `d` (`theta` and `lambda`) in DID and SAID.
    pub trainable_parameters: usize,
    /// Seconds spent on the run: this process's, plus the time of earlier processes up to the
    /// checkpoint it resumed from (work lost after a checkpoint is not counted).
    pub wall_time_s: f64,
    /// Steps done by this process (the rest came from a checkpoint).
    pub steps_this_process: usize,
    /// Padding tokens over all tokens of the training batches (every epoch).
    #[serde(default)]
    pub padding_fraction: Option<f64>,
    /// The first dev split's examples, which every evaluation's `predicted` labels follow: their
    /// gold labels and the hash of their ordered ids; `None` in records written before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_examples: Option<DevExamples>,
}

/// The examples of a dev split as per-example outcomes need them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevExamples {
    /// The name of the dev split (the task's first).
    pub split: String,
    /// The first 16 hex digits of the sha256 of the examples' ids in order, one per line: two runs
    /// whose hashes differ did not evaluate the same examples in the same order.
    pub ids_sha256: String,
    /// Gold labels in the split's order, one character each ([`crate::labels`]).
    pub labels: String,
}

/// Where and by what a result was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The code revision of the binary that made it (captured when that binary was built).
    pub code: String,
    /// The host name of the machine that made it (`unknown` when it could not be read).
    pub host: String,
    /// Seconds since the Unix epoch when the result was written.
    pub finished_at: u64,
    /// The sha256 of every local file the result was computed from (a local model's files as
    /// `model/<file>`, a local task's as `task/<split>`); empty for the manifest's assets, which
    /// the manifest and its lock file pin.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
}

impl Provenance {
    /// A result made now, on this host, by the binary built from `code`, from local files with
    /// these hashes.
    pub fn now(code: &str, inputs: BTreeMap<String, String>) -> Provenance {
        Provenance {
            inputs,
            code: code.to_owned(),
            host: host_name(),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `/etc/hostname`; `unknown` when
/// neither can be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// One finished run (`runs/<key>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`RunSpec::key`] of `spec`: the file's name under `runs/`.
    pub key: String,
    /// [`RunSpec::signature`] of `spec` with the code revision that made the run.
    pub signature: String,
    /// Everything that determined the run's numbers.
    pub spec: RunSpec,
    /// Training examples the run trained on (after `max_train_examples`).
    pub train_examples: usize,
    /// Accuracy of always predicting the most frequent label of the first dev split.
    pub majority_accuracy: f64,
    /// The run's best dev metric (accuracy of the first dev split), if it evaluated at all.
    pub best_score: Option<f64>,
    /// The run ended as [`Status::Diverged`].
    pub diverged: bool,
    /// What the run gave.
    pub result: RunResult,
    /// Peak resident memory of the process that finished the run (`VmHWM`).
    pub peak_resident_bytes: Option<u64>,
    /// The code revision, host and time that made the record, and the hashes of its local inputs.
    pub provenance: Provenance,
}

impl RunRecord {
    /// The run's best score if it counts towards a probe (a seed's best over learning rates, the
    /// rates' bracketing): it neither diverged nor predicted one class at its best evaluation.
    pub fn counting_score(&self) -> Option<f64> {
        let counts = !self.diverged && self.result.best.as_ref().is_some_and(|best| !best.predicts_one_class);
        self.best_score.filter(|_| counts)
    }
}
