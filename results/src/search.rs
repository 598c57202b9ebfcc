//! One d90 search: its resolved plan ([`SearchPlan`], whose hash with the model and data
//! identities is its key), its probes and outcome, and the record of them on disk
//! ([`SearchRecord`], `searches/<key>.json`).

use serde::{Deserialize, Serialize};

use crate::config::{
    Compat, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_MAX_LEN, LambdaGrouping, Mode, Precision, Scope, Seeds,
    TrainConfig,
};
use crate::run::Provenance;

/// How the grid is searched: every value, or a ladder then bisection (`bench-suite`'s
/// `experiment::search` module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Probe every grid value within the bounds.
    Grid,
    /// Climb a ladder from the bottom to the first success, confirm it, then bisect the gap below
    /// the successful tail (about `2 log2(n)` probes when success is monotone).
    Bisect,
}

/// The grid values `int(10^(2 + 4i/63))` within `[d_min, d_max]`, increasing (the paper's
/// section 4: 64 values from 10^2 to 10^6, evenly spaced in log scale).
pub fn d_grid(d_min: usize, d_max: usize) -> Vec<usize> {
    d_grid_every(d_min, d_max, 1)
}

/// Every `every`-th grid value within `[d_min, d_max]`, counted from the first grid value at or
/// above `d_min` (so `d_min: 577, every: 8` is 577, 1,861, 5,994, ...; when `every` divides that
/// value's grid index, as for 100, 322 or 1,037 with `every: 4` or `8`, these are the values with
/// grid index `i mod every = 0`).
pub fn d_grid_every(d_min: usize, d_max: usize, every: usize) -> Vec<usize> {
    (0..64)
        .map(|i| 10f64.powf(2.0 + 4.0 * i as f64 / 63.0) as usize)
        .filter(|&d| d >= d_min && d <= d_max)
        .step_by(every.max(1))
        .collect()
}

/// Fully resolved training settings of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Epochs over the training examples (a method may set its own: [`Method::epochs`]).
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Tokens per example after truncation.
    pub max_len: usize,
    /// Train on a seeded random subset of this many training examples; `None`: the whole split.
    pub max_train_examples: Option<usize>,
    /// The seed of that subset, the same for every run.
    pub subset_seed: u64,
    /// The fraction of all steps over which the learning rate warms up linearly from 0.
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay, not applied to biases and norms.
    pub weight_decay: f64,
    /// The gradient's global norm is clipped to this.
    pub max_grad_norm: f64,
    /// Evaluate every this many steps as well as at the end of every epoch; `None`: epochs only.
    pub eval_every: Option<usize>,
    /// Every run saves its state every this many steps, so a killed run resumes from it.
    pub checkpoint_every: usize,
    /// Left out of the serialised plan when f32, so f32 searches keep their keys.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Length-bucketed batches in chunks of this many batches ([`TrainConfig::length_buckets`]);
    /// `None`: plain shuffled batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_buckets: Option<usize>,
    /// Training accuracy of the generalization run on the first this many training examples
    /// (`None`: all of them); probe runs never measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_eval_examples: Option<usize>,
}

impl Training {
    /// The paper's fine-tuning setup (its section 4, with RoBERTa's GLUE recipe for warmup, weight
    /// decay and clipping): what every setting a spec or command line leaves out takes. The one
    /// place these defaults are written.
    pub const PAPER: Training = Training {
        epochs: DEFAULT_EPOCHS,
        batch_size: DEFAULT_BATCH_SIZE,
        max_len: DEFAULT_MAX_LEN,
        max_train_examples: None,
        subset_seed: 0,
        warmup_ratio: 0.06,
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        eval_every: None,
        checkpoint_every: 50,
        precision: Precision::F32,
        // Not a setting the paper gives: batches of similar length, as fairseq (the authors'
        // toolkit) forms them by default, and about half the padding of plain shuffled batches
        // on SST-2 (bench-suite/benches/RESULTS.md).
        length_buckets: Some(16),
        train_eval_examples: None,
    };

    /// One run's training settings: `method` at subspace dimension `d` with learning rate `lr`
    /// and every seed `seed`, under these settings. The one conversion from the settings of a
    /// search (or a command line) to a run's keyed [`TrainConfig`]; a full or head-only run keeps
    /// the default scope, grouping and compat, which it does not use.
    pub fn run_config(&self, method: &Method, d: usize, lr: f64, seed: u64) -> TrainConfig {
        let mut train = TrainConfig::new(method.mode, d, lr);
        if method.mode.subspace_method().is_some() {
            train.scope = method.scope;
            train.grouping = method.grouping;
            train.compat = method.compat;
        }
        train.epochs = method.epochs.unwrap_or(self.epochs);
        train.batch_size = self.batch_size;
        train.warmup_ratio = self.warmup_ratio;
        train.weight_decay = self.weight_decay;
        train.max_grad_norm = self.max_grad_norm;
        train.eval_every = self.eval_every;
        train.checkpoint_every = Some(self.checkpoint_every);
        train.precision = self.precision;
        train.length_buckets = self.length_buckets;
        train.train_eval_examples = self.train_eval_examples;
        train.lambda_lr = method.lambda_lr;
        train.seeds = Seeds::all(seed);
        train
    }
}

/// A method with everything resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    /// The spec's name for it (`said`, `did_per_tensor`, `full`, ...).
    pub name: String,
    /// `full` (a baseline), `did` or `said`.
    pub mode: Mode,
    /// The learning-rate grid: every probe trains each rate with each seed.
    pub lrs: Vec<f64>,
    /// The `d` the rates of `lrs` are for; at another `d` each is scaled by `sqrt(lr_d0 / d)`
    /// (`None`: the same rates at every `d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_d0: Option<usize>,
    /// At most this many rounds in which a probe adds a rate beyond each end of its rates where
    /// some seed's best run lies (a step of the grid's ratio at that end), so that the rates
    /// bracket every seed's best (`None`: the grid as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_extend: Option<usize>,
    /// SAID: the learning rate of the scales `lambda` (`None`: the rate of `theta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_lr: Option<f64>,
    /// Epochs of this method's runs (`None`: the plan's `training.epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// The Fastfood map's scope (unused by `full`).
    pub scope: Scope,
    /// SAID's grouping of the scales `lambda` (unused unless the mode is `said`).
    pub grouping: LambdaGrouping,
    /// The exact method or the authors' code (unused by `full`).
    pub compat: Compat,
}

impl Method {
    /// The learning rates at subspace dimension `d`: the grid as given, or with `lr_d0` each
    /// scaled by `sqrt(lr_d0 / d)`.
    pub fn lrs_at(&self, d: usize) -> Vec<f64> {
        match self.lr_d0 {
            Some(d0) if d > 0 => self.lrs.iter().map(|lr| lr * (d0 as f64 / d as f64).sqrt()).collect(),
            _ => self.lrs.clone(),
        }
    }

    /// The subspace map this method trains in: its scope, SAID's grouping and a compatibility
    /// mode other than `none` (`global`, `per_tensor/per_layer`, `per_tensor/per_tensor/aghajanyan`).
    pub fn map_label(&self) -> String {
        let mut label = self.scope.to_string();
        if self.mode == Mode::Said {
            label = format!("{label}/{}", self.grouping);
        }
        if self.compat != Compat::None {
            label = format!("{label}/{}", self.compat);
        }
        label
    }
}

/// The search settings of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// Probe every grid value, or ladder then bisection.
    pub mode: SearchMode,
    /// The smallest `d` searched: grid values below it are never probed.
    pub d_min: usize,
    /// `None`: up to the grid's end (10^6), cut at the model's D by the runner.
    pub d_max: Option<usize>,
    /// The fraction of the baseline's median score a probe must reach (the paper's 0.9 for d90).
    pub threshold: f64,
    /// Every this many grid values, counted from `d_min` (`None`: every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
    /// A d90 is determined when its 95% interval is closed at both ends inside the searched range
    /// and high / low is at most this factor (`None`: [`Search::DETERMINED_FACTOR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determined_factor: Option<f64>,
}

impl Search {
    /// The default of [`Search::determined_factor`].
    pub const DETERMINED_FACTOR: f64 = 4.0;

    /// The widest high / low of a determined d90's interval.
    pub fn determined_factor(&self) -> f64 {
        self.determined_factor.unwrap_or(Search::DETERMINED_FACTOR)
    }

    /// The grid values this search may probe, with `d_max` (or the grid's end) cut at `cap`
    /// (the model's D).
    pub fn grid(&self, cap: usize) -> Vec<usize> {
        d_grid_every(self.d_min, self.d_max.unwrap_or(usize::MAX).min(cap), self.every.unwrap_or(1))
    }
}

/// One d90 search: a model, a task, a subspace method against a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPlan {
    /// The name of the spec's experiment the search belongs to.
    pub experiment: String,
    /// The model's name, as [`RunSpec::model`](crate::RunSpec::model) spells it.
    pub model: String,
    /// The task's name: a manifest task or a spec's local task.
    pub task: String,
    /// The DID or SAID method whose d90 is searched.
    pub method: Method,
    /// The full fine-tuning method whose score sets the target.
    pub baseline: Method,
    /// The head-only control trained beside the baseline (a `head_only` method): whether the head
    /// on the frozen encoder reaches the target. Absent when the experiment names none, so the keys of
    /// searches without one are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Method>,
    /// The seeds of every probe and of the baseline.
    pub seeds: Vec<u64>,
    /// The training settings of every run of the search.
    pub training: Training,
    /// The grid, the search mode and the threshold.
    pub search: Search,
    /// The model is a checkpoint of one of the spec's pre-trainings (trajectory and size
    /// experiments); absent for every other model, so the keys of such searches are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretraining: Option<PretrainingRef>,
    /// The kind of experiment the search belongs to (which report section it feeds); absent for
    /// `d90`, so the keys of searches written before kinds existed are unchanged.
    #[serde(default, skip_serializing_if = "ExperimentKind::is_d90")]
    pub kind: ExperimentKind,
}

/// What an experiment measures, which decides the rest of its fields, what it expands into and
/// where the report puts its searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// d90 of each model x task x method against full fine-tuning (the paper's Table 1). The
    /// default.
    #[default]
    D90,
    /// d90 along a pre-training (the paper's section 5.2): `pretraining: <name>` (a pre-training
    /// of the spec's `pretraining:` map) and optionally `updates: [..]` (default: every
    /// checkpoint it writes), instead of `models`; one search per checkpoint x task x method.
    Trajectory,
    /// d90 against model size (section 5.3): two or more `models` (manifest checkpoints, local
    /// folders, or `pretrained:<name>` for the last checkpoint of one of the spec's
    /// pre-trainings), expanded as `d90` is.
    Size,
}

impl ExperimentKind {
    /// Whether this is `d90`, the default, which serde leaves out of a plan (keeping old keys).
    pub fn is_d90(&self) -> bool {
        *self == ExperimentKind::D90
    }
}

/// A checkpoint of a pre-training the spec runs: its name in the spec and its update. (Its
/// identity, the pre-training's key with the update, is the search's model revision.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainingRef {
    /// The pre-training's name in the spec's `pretraining:` map.
    pub name: String,
    /// The checkpoint's update (0: the initial weights).
    pub update: usize,
}

/// One probe: every learning rate and seed of the method at one `d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// The subspace dimension probed (a grid value).
    pub d: usize,
    /// The median over seeds of the seed scores; `None` when every run diverged.
    pub score: Option<f64>,
    /// The score reached the target ([`Baseline::target`]).
    pub success: bool,
    /// Every run of the probe diverged.
    pub all_diverged: bool,
    /// Per seed, in the plan's order: the best score over learning rates of the runs that
    /// neither diverged nor predicted one class (`None`: no such run).
    #[serde(default)]
    pub seed_scores: Vec<Option<f64>>,
    /// Runs whose best evaluation predicted one class.
    #[serde(default)]
    pub constant_runs: usize,
    /// The keys of the runs behind the score.
    pub runs: Vec<String>,
}

/// What a search concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// d90: the smallest probed value from which every larger probe succeeded, with the largest
    /// failure below it.
    Found {
        /// The d90: the first probed `d` of the successful tail.
        d90: usize,
        /// The largest failed probe below d90 (`None`: no probe below it) and d90 itself.
        bracket: (Option<usize>, usize),
    },
    /// The smallest grid value already succeeds: d90 is at most that, a bound and not a value.
    Bound {
        /// The smallest grid value searched, which succeeded.
        at_most: usize,
    },
    /// The largest value searched did not reach the target.
    NotReached {
        /// The largest `d` probed.
        largest_tried: usize,
    },
    /// d90 cannot be computed (the paper's Figure 2 caption, and this suite's rules): the reason.
    Unable {
        /// Why, in words (e.g. the baseline is not above the majority-class accuracy).
        reason: String,
    },
}

impl Outcome {
    /// `found`, `bound`, `not_reached` or `unable`, as result files spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Found { .. } => "found",
            Outcome::Bound { .. } => "bound",
            Outcome::NotReached { .. } => "not_reached",
            Outcome::Unable { .. } => "unable",
        }
    }
}

/// The seed-bootstrap interval of the grid d90 that searches recorded before the `d90` crate's
/// bootstrap replaced it: the 2.5% and 97.5% quantiles of the d90 of resampled seeds. With three
/// seeds these are the extremes of 16 scenarios and cover the median about 75% of the time, not 95%;
/// reports read it from old records but never show it as a 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The 2.5% quantile of the resampled d90s.
    pub low: usize,
    /// `None`: beyond the largest probe (the resampled target was not reached there).
    pub high: Option<usize>,
    /// How many seed resamples the quantiles were taken over.
    pub resamples: usize,
}

/// What a search over a grid gave, before it is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    /// What the search concluded.
    pub outcome: Outcome,
    /// In probing order.
    pub probes: Vec<Probe>,
    /// No probed failure above a probed success.
    pub monotone: Option<bool>,
}

/// The baseline of a search: full fine-tuning over its learning rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Median over seeds of the best dev metric over learning rates.
    pub score: Option<f64>,
    /// What a probe must reach: `threshold` x `score`; `None` when no baseline seed has a score.
    pub target: Option<f64>,
    /// Accuracy of always predicting the most frequent label of the first dev split.
    pub majority_accuracy: f64,
    /// The keys of the baseline's runs.
    pub runs: Vec<String>,
}

/// The head-only control of a search: the task head trained alone over the control's learning
/// rates and the plan's seeds, scored as a probe is (per seed the best over rates, then the median).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Median over seeds of the best dev metric over learning rates; `None` when no run counts
    /// (every one diverged or predicted one class).
    pub score: Option<f64>,
    /// Per seed, in the plan's order: the best score over learning rates (`None`: no run counts).
    pub seed_scores: Vec<Option<f64>>,
    /// The parameters the control trains (the head's), against the model's D.
    pub trainable_parameters: usize,
    /// The keys of the control's runs (seed-major, rate-minor).
    pub runs: Vec<String>,
}

/// The model a search measured, as its checkpoint's `config.json` describes it (HF's names), so
/// that reports group and order models by what they are, never by their names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// HF's `model_type` (`bert`, `roberta`, ...): the family.
    pub model_type: String,
    /// HF's `num_hidden_layers`: the transformer layers.
    pub num_hidden_layers: usize,
    /// HF's `hidden_size`: the width of the hidden states.
    pub hidden_size: usize,
}

impl Architecture {
    /// The paper's size names for its models' shapes (`Base`: 12 layers of 768, `Large`: 24 of
    /// 1024), else `L<layers>-H<hidden>` (as the BERT miniatures are named).
    pub fn size_name(&self) -> String {
        match (self.num_hidden_layers, self.hidden_size) {
            (12, 768) => "Base".to_owned(),
            (24, 1024) => "Large".to_owned(),
            (layers, hidden) => format!("L{layers}-H{hidden}"),
        }
    }
}

/// One finished search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// A field this version does not know is refused, not dropped: the runner rewrites old records
// (filling in what they lack), and a rewrite must not lose what a newer version wrote.
#[serde(deny_unknown_fields)]
pub struct SearchRecord {
    /// The hash of the plan with the model's and data's identities, the device and the torch
    /// version: the file's name under `searches/`.
    pub key: String,
    /// A sacreBLEU-style one-line description of the search (method, map, task, model, data,
    /// grid, learning rates, seeds, torch, device, code revision).
    pub signature: String,
    /// The resolved plan the search ran.
    pub plan: SearchPlan,
    /// The model's family and shape; `None` in records written before it was recorded (the
    /// runner fills it in when it meets such a record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    /// The model's and the data's identities, as the search's runs carry them (`RunSpec`'s
    /// `model_revision` and `data`: two local folders or hub commits with one name differ here);
    /// `None` in records written before they were recorded (filled in like `architecture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_revision: Option<String>,
    /// The data's identity ([`RunSpec::data`](crate::RunSpec::data)); `None` in records written
    /// before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The model's parameter count D (with its task head) and, for SAID, the number of scales m.
    pub total_parameters: usize,
    /// SAID's number of scales m (0 for DID).
    pub scales: usize,
    /// The grid searched (after cutting at D).
    pub grid: Vec<usize>,
    /// The full fine-tuning baseline and the target it sets.
    pub baseline: Baseline,
    /// The head-only control, when the plan has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    /// What the search concluded.
    pub outcome: Outcome,
    /// Every probe, in probing order.
    pub probes: Vec<Probe>,
    /// No probed failure above a probed success.
    pub monotone: Option<bool>,
    /// The legacy seed-bootstrap interval ([`Interval`]) of records written before the `d90`
    /// crate; `None` in newer records, whose intervals reports compute from the runs.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// The key of the generalization gap's run: a run of the d90 probe trained again with
    /// training accuracy; `None` without a d90. Which run is [`SearchRecord::generalization_choice`].
    #[serde(default)]
    pub generalization_run: Option<String>,
    /// How the generalization run was chosen; `None` in records written before the choice stopped
    /// looking at the run's own dev score ([`GeneralizationChoice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generalization_choice: Option<GeneralizationChoice>,
    /// The code revision, host and time that made the record, and the hashes of its local inputs.
    pub provenance: Provenance,
}

/// How a search chose the run whose generalization gap the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneralizationChoice {
    /// The median seed of the d90 probe (by its seed score; the lower middle for an even count),
    /// at the learning rate whose median score over the other seeds is best: the chosen run's own
    /// dev score never picks its rate, so its dev accuracy carries no winner's curse.
    MedianSeedOtherSeedsRate,
}

impl SearchRecord {
    /// The keys of every run the search's numbers rest on: the baseline's, the control's, each
    /// probe's and the generalization run, in that order, each once.
    pub fn run_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        let control = self.control.iter().flat_map(|control| &control.runs);
        let probes = self.probes.iter().flat_map(|probe| &probe.runs);
        for key in self.baseline.runs.iter().chain(control).chain(probes).chain(&self.generalization_run) {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        keys
    }

    /// Whether the head-only control's score reached the baseline's target (a point comparison):
    /// the head on the frozen encoder's features already gives what the d90 is measured against,
    /// so a small d90 cannot be attributed to the encoder. `None` without a control.
    pub fn head_reaches_target(&self) -> Option<bool> {
        let control = self.control.as_ref()?;
        Some(control.score.zip(self.baseline.target).is_some_and(|(score, target)| score >= target))
    }

    /// The d90 value when one was found (not a bound, not unreached, not unable).
    pub fn d90(&self) -> Option<usize> {
        match self.outcome {
            Outcome::Found { d90, .. } => Some(d90),
            _ => None,
        }
    }
}
