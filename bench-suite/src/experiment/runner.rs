//! The experiment runner: checks a plan against the assets, then runs its searches, reusing
//! every finished run and search it finds in the results folder.
//!
//! Order of work for one search: the baseline (full fine-tuning over its learning rates and
//! seeds), then the probes the search asks for. Everything is a run with a key: a baseline shared
//! by the SAID and DID searches of a model and task runs once; a rerun of the same command skips
//! finished runs and resumes an unfinished one from its last checkpoint (its `work/` folder); two
//! processes sharing a folder wait for each other on a run's lock instead of duplicating it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use datasets::manifest::Manifest;
use datasets::store::{MissingFile, Store, StoreConfig};
use serde::{Deserialize, Serialize};

use super::search::{ProbeOutcome, Target, search as d90_search};
use super::spec::{Plan, PlannedSearch};
use crate::Error;
use crate::code_revision;
use crate::finetune::{Workload, max_len_problem, process_memory_bytes, read_config, vocabulary_problem};
use crate::reference::{Checkpoint, Subject};
use encoders::checkpoint;
use encoders::shapes;
use results::search::{
    Architecture, Baseline, Control, GeneralizationChoice, Method, Outcome, SearchOutcome, SearchPlan, SearchRecord,
};
use results::{Mode, Provenance, ResultsDir, ResultsError, RunRecord, RunSpec, Status, hash_key};
use subspace::device::parse_device;
use subspace::{self, Method as SubspaceMethod, TORCH_VERSION};
use trainer::interrupt::{Interrupter, Terminated};
use trainer::pretrain::RunLimits;
use trainer::tokenize::TextEncoder;
use trainer::train::StepReport;

/// `--shard i/n`: search `k` of the plan belongs to shard `k mod n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `i`, from 0.
    pub index: usize,
    /// The number of shards, `n`.
    pub count: usize,
}

impl Shard {
    /// Parses `--shard`'s `i/n`.
    ///
    /// # Errors
    /// [`Error::Shard`] for anything but two integers with `i < n`.
    pub fn parse(text: &str) -> Result<Shard, Error> {
        let parsed = text.split_once('/').and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard { index, count }),
            _ => Err(Error::Shard(text.to_owned())),
        }
    }

    /// Whether the search at `position` (among the searches `--only` selects, in plan order) is
    /// this shard's.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// The searches of `plan` that `only` (experiment names) and `shard` select, in plan order.
pub fn select(plan: &Plan, only: &[String], shard: Option<Shard>) -> Result<Vec<PlannedSearch>, Error> {
    for name in only {
        if !plan.searches.iter().any(|search| &search.plan.experiment == name) {
            let mut known: Vec<&str> = plan.searches.iter().map(|search| search.plan.experiment.as_str()).collect();
            known.dedup();
            return Err(Error::UnknownExperiment { name: name.clone(), known: known.join(", ") });
        }
    }
    Ok(plan
        .searches
        .iter()
        .filter(|search| only.is_empty() || only.contains(&search.plan.experiment))
        .enumerate()
        .filter(|(position, _)| shard.is_none_or(|shard| shard.takes(*position)))
        .map(|(_, search)| search.clone())
        .collect())
}

/// D (the parameters with a head of `n_labels` classes) and SAID's m for `method` on a model of
/// `config` ([`shapes::subspace_dimensions`]; the full and head-only baselines count as DID: no
/// scales).
fn dimensions(config: &encoders::models::Config, n_labels: i64, method: &Method) -> (usize, usize) {
    let subspace_method = method.mode.subspace_method().unwrap_or(SubspaceMethod::Did);
    shapes::subspace_dimensions(config, n_labels, subspace_method, method.grouping, method.compat)
}

/// An error of the pre-training `name`, at its spec field: a settings error names the field under
/// `pretraining.<name>`.
fn pretraining_error(origin: &super::spec::Origin, name: &str, err: trainer::Error) -> super::spec::SpecError {
    match err {
        trainer::Error::Settings { field, message } => origin.error(&format!("pretraining.{name}.{field}"), message),
        err => origin.error(&format!("pretraining.{name}"), err.to_string()),
    }
}

/// A search as `--check-only` finds it ([`Runner::survey`]).
#[derive(Debug, Clone)]
pub enum Surveyed {
    /// Every file it needs is here: checked as a run would be.
    Ready(Box<PreparedSearch>),
    /// Files it needs are neither in the cache nor in a mirror.
    Missing {
        /// Those files.
        files: Vec<MissingFile>,
        /// D and m, where the model's files are here (only the task's data is missing).
        shapes: Option<(usize, usize)>,
    },
}

/// A search checked against its model and data: what the key and the grid need.
#[derive(Debug, Clone)]
pub struct PreparedSearch {
    /// The search as the spec planned it: model, task, method, baseline, seeds, training and search
    /// settings.
    pub plan: SearchPlan,
    /// The model and task the plan names.
    pub subject: Subject,
    /// The model's identity in keys and signatures ([`Checkpoint::revision`]; `synthetic` for a
    /// synthetic model).
    pub model_revision: String,
    /// The task data's identity in keys and signatures ([`crate::reference::TextTask::data_id`];
    /// `synthetic` for the synthetic task).
    pub data: String,
    /// The model's family and shape, from its config.
    pub architecture: Architecture,
    /// D: the parameters of the model with its task head.
    pub total_parameters: usize,
    /// m: SAID's scales (0 for DID).
    pub scales: usize,
    /// The subspace dimensions the search may probe, ascending: the plan's grid, cut at D.
    pub grid: Vec<usize>,
    /// The search's key in the results folder: a hash of the plan, the model's and data's
    /// identities, the device and the torch version.
    pub key: String,
    /// Its position among the searches given to [`Runner::prepare`] (what a worker is told).
    pub index: usize,
}

#[derive(Serialize)]
struct SearchIdentity<'a> {
    plan: &'a SearchPlan,
    model_revision: &'a str,
    data: &'a str,
    device: &'a str,
    torch: &'a str,
}

impl PreparedSearch {
    /// A sacreBLEU-style one-line description of the search, e.g. (one line, wrapped here)
    /// `d90|said|group:per_layer|scope:global|compat:none|task:mrpc|metric:acc|model:...|`
    /// `data:...|search:bisect[100,10000]@0.9|lr:3e-1|seeds:0|...`.
    pub fn signature(&self, device: &str, code: &str) -> String {
        let plan = &self.plan;
        let method = &plan.method;
        let mut parts = vec!["d90".to_owned(), method.mode.to_string()];
        if method.mode == Mode::Said {
            parts.push(format!("group:{}", method.grouping));
        }
        parts.push(format!("scope:{}", method.scope));
        parts.push(format!("compat:{}", method.compat));
        parts.push(format!("task:{}", plan.task));
        parts.push("metric:acc".to_owned());
        let model = plan.model.rsplit('/').next().unwrap_or(&plan.model);
        parts.push(format!("model:{model}@{}", self.model_revision));
        parts.push(format!("data:{}", self.data));
        if let Some(n) = plan.training.max_train_examples {
            parts.push(format!("train:{n}@{}", plan.training.subset_seed));
        }
        parts.push(format!(
            "search:{}[{},{}]@{}",
            results::serde_name(&plan.search.mode),
            self.grid.first().copied().unwrap_or(0),
            self.grid.last().copied().unwrap_or(0),
            plan.search.threshold
        ));
        let lrs = |method: &Method| method.lrs.iter().map(|lr| format!("{lr:e}")).collect::<Vec<_>>().join(",");
        parts.push(format!("lr:{}", lrs(method)));
        if let Some(d0) = method.lr_d0 {
            parts.push(format!("lr-rule:sqrt-d@{d0}"));
        }
        if let Some(extend) = method.lr_extend {
            parts.push(format!("lr-extend:{extend}"));
        }
        if let Some(lambda_lr) = method.lambda_lr {
            parts.push(format!("lambda-lr:{lambda_lr:e}"));
        }
        parts.push(format!("baseline-lr:{}", lrs(&plan.baseline)));
        if let Some(control) = &plan.control {
            parts.push(format!("control-lr:{}", lrs(control)));
            if let Some(epochs) = control.epochs {
                parts.push(format!("control-epochs:{epochs}"));
            }
        }
        parts.push(format!("seeds:{}", plan.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(",")));
        parts.push(format!("epochs:{}", method.epochs.unwrap_or(plan.training.epochs)));
        if let Some(epochs) = plan.baseline.epochs {
            parts.push(format!("baseline-epochs:{epochs}"));
        }
        parts.push(format!("torch:{TORCH_VERSION}"));
        parts.push(format!("device:{device}"));
        parts.push(format!("code:{code}"));
        parts.join("|")
    }
}

/// Options of a reproduction that are not in the spec.
#[derive(Debug, Clone, Default)]
pub struct RunnerOptions {
    /// The results folder (pre-trainings live in its `pretraining/`).
    pub out: PathBuf,
    /// Overrides the spec's device.
    pub device: Option<String>,
    /// Read-only folders to take assets from before the network.
    pub mirrors: Vec<PathBuf>,
    /// Never touch the network.
    pub offline: bool,
    /// Train up to this many runs of a probe at once, each in its own worker process with an
    /// equal share of the CPU threads (0 or 1: one at a time, in this process). Needs `worker`.
    pub jobs: usize,
    /// How to start a worker: this program with these arguments, to which the runner appends
    /// `--run-one FILE` ([`RunOne`] as JSON). `reproduce` passes its own command line.
    pub worker: Option<WorkerCommand>,
}

/// The command that starts a worker process ([`RunnerOptions::worker`]).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program (the running binary).
    pub program: PathBuf,
    /// Its arguments before `--run-one FILE`.
    pub args: Vec<std::ffi::OsString>,
}

/// What a worker process trains: one run of the search at `search_index` of the same selection
/// (the same spec, `--only` and `--shard`), which it prepares again and checks by its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOne {
    /// The search's position among the selected searches.
    pub search_index: usize,
    /// The search's key, as the parent prepared it.
    pub search_key: String,
    /// The run.
    pub spec: RunSpec,
}

/// What the runner reports as it goes.
pub enum Event<'a> {
    /// Every selected search is checked and keyed; work starts.
    Planned {
        /// The searches to run, in the order the `index` of later events counts.
        searches: &'a [PreparedSearch],
    },
    /// A search is about to run (or to be taken from the results folder).
    SearchStarted {
        /// Its position in [`Event::Planned`]'s searches.
        index: usize,
        /// The search.
        search: &'a PreparedSearch,
    },
    /// A run is about to train (or resume).
    RunStarted {
        /// The run's one-line signature ([`RunSpec::signature`]).
        signature: &'a str,
    },
    /// A training step of the run in progress.
    Step(StepReport),
    /// A pre-training the searches need is about to run (or resume).
    PretrainingStarted {
        /// The pre-training's name in the spec.
        name: &'a str,
        /// Its key, which names its folder under `pretraining/`.
        key: &'a str,
        /// The updates it trains for in all.
        updates: usize,
    },
    /// An update of the pre-training in progress (update 0: its initial checkpoint).
    PretrainingUpdate(trainer::pretrain::UpdateReport),
    /// Another process holds the pre-training's lock (it is running it): this one goes on with
    /// other work (`waiting: false`) or, with nothing else left, waits for it.
    PretrainingHeld {
        /// The pre-training's name in the spec.
        name: &'a str,
        /// `true` when nothing else is left and this process waits for it.
        waiting: bool,
    },
    /// A pre-training the searches need is finished.
    PretrainingFinished {
        /// The pre-training's name in the spec.
        name: &'a str,
        /// Its record (`record.json`).
        record: &'a results::PretrainingRecord,
        /// Whether it had finished before (an earlier command or another process) rather than being
        /// trained now.
        reused: bool,
    },
    /// A run is finished.
    RunFinished {
        /// Its record.
        record: &'a RunRecord,
        /// Whether its record was found in the results folder rather than trained now.
        reused: bool,
    },
    /// A search is finished.
    SearchFinished {
        /// Its position in [`Event::Planned`]'s searches.
        index: usize,
        /// Its record.
        record: &'a SearchRecord,
        /// Whether its record was found in the results folder rather than searched now.
        reused: bool,
    },
}

/// Runs a plan's searches, and the pre-trainings they fine-tune checkpoints of, into a results
/// folder on one device, with the store that supplies the assets.
pub struct Runner {
    store: Store,
    results: ResultsDir,
    /// The results folder (pre-trainings live in its `pretraining/`).
    out: PathBuf,
    device: String,
    /// The pre-trainings the prepared searches fine-tune checkpoints of, keyed, by spec name.
    pretrainings: std::collections::BTreeMap<String, trainer::pretrain::Resolved>,
    /// The last workload loaded (consecutive searches share model and task).
    workload: Option<(WorkloadKey, Workload)>,
    /// Stops the run or wait in progress when asked (SIGTERM).
    interrupter: Interrupter,
    /// Runs of a probe trained at once ([`RunnerOptions::jobs`]) and how to start their workers.
    jobs: usize,
    worker: Option<WorkerCommand>,
}

#[derive(Debug, Clone, PartialEq)]
struct WorkloadKey {
    model: String,
    /// Two local folders may share a name: their content tells them apart (as it does tasks).
    model_revision: String,
    task: String,
    data: String,
    max_len: usize,
    max_train_examples: Option<usize>,
    subset_seed: u64,
}

impl Runner {
    /// A runner for `plan`: the store from the environment with `options`' mirrors and offline
    /// mode, the results folder `options.out`, the device `options.device` or else the spec's;
    /// `interrupter` stops the run or wait in progress.
    ///
    /// # Errors
    /// The store's settings or manifest ([`Error::Data`]).
    pub fn new(plan: &Plan, options: &RunnerOptions, interrupter: Interrupter) -> Result<Runner, Error> {
        let mut store_config = StoreConfig::from_env()?;
        store_config.mirrors.extend(options.mirrors.iter().cloned());
        store_config.offline |= options.offline;
        let device = options.device.clone().unwrap_or_else(|| plan.device.clone());
        Ok(Runner {
            store: Store::new(store_config, Manifest::embedded())?,
            results: ResultsDir::at(&options.out),
            out: options.out.clone(),
            device,
            pretrainings: std::collections::BTreeMap::new(),
            workload: None,
            interrupter,
            jobs: options.jobs.max(1),
            worker: options.worker.clone(),
        })
    }

    /// The results folder it writes.
    pub fn results(&self) -> &ResultsDir {
        &self.results
    }

    /// The device it trains on, as written (`cpu`, `cuda`, `cuda:N`).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The pre-trainings [`Runner::prepare`] keyed (those the prepared searches fine-tune
    /// checkpoints of), by name.
    pub fn pretrainings(&self) -> impl Iterator<Item = (&str, &trainer::pretrain::Resolved)> {
        self.pretrainings.iter().map(|(name, resolved)| (name.as_str(), resolved))
    }

    /// What each pre-training that `searches` fine-tune checkpoints of still needs of its corpus,
    /// by the pre-training's name: [`trainer::pretrain::Resolved::corpus_need`] for one keyed
    /// (by [`Runner::prepare`] or [`Runner::survey`]), and at most every corpus file neither
    /// cached nor in a mirror for one not keyed yet ([`trainer::pretrain::corpus_need_unkeyed`]).
    /// Fetches nothing (C4's shards are tens of GB).
    pub fn corpus_needs(
        &self,
        searches: &[PlannedSearch],
    ) -> Result<std::collections::BTreeMap<String, trainer::pretrain::CorpusNeed>, Error> {
        let mut needs = std::collections::BTreeMap::new();
        for PlannedSearch { subject, origin, .. } in searches {
            let Subject::Text { model: Checkpoint::Produced(produced), .. } = subject else { continue };
            if needs.contains_key(&produced.pretraining) {
                continue;
            }
            let need = match self.pretrainings.get(&produced.pretraining) {
                Some(resolved) => resolved.corpus_need(&self.store),
                None => trainer::pretrain::corpus_need_unkeyed(&produced.settings, &self.store),
            }
            .map_err(|err| pretraining_error(origin, &produced.pretraining, err))?;
            needs.insert(produced.pretraining.clone(), need);
        }
        Ok(needs)
    }

    /// Checks every search against its model's shapes and makes every asset available (fetching
    /// what is missing, or failing offline), before any training.
    pub fn prepare(&mut self, searches: &[PlannedSearch]) -> Result<Vec<PreparedSearch>, Error> {
        // A stop (SIGTERM) while an asset is hashed or fetched ends the check as a stop, whatever
        // error the interrupted step became on its way up (spec errors carry text).
        self.prepare_checked(searches).map_err(|err| {
            if datasets::stop::requested() {
                Error::Stopped(datasets::stop::Stopped { what: "checking the spec's assets".to_owned() })
            } else {
                err
            }
        })
    }

    /// What `--check-only` says of each search: prepared ([`Runner::prepare`]: D, m, the grid)
    /// where every file it needs is here, else the files still to fetch (offline, a missing file
    /// is not an error here), with D and m where the model's files are here. Any other problem is
    /// an error, as in [`Runner::prepare`].
    pub fn survey(&mut self, searches: &[PlannedSearch]) -> Result<Vec<Surveyed>, Error> {
        let mut surveyed = Vec::new();
        for search in searches {
            let (model_missing, task_missing) = self.missing_files(search)?;
            if model_missing.is_empty() && task_missing.is_empty() {
                surveyed.push(Surveyed::Ready(Box::new(self.prepare(std::slice::from_ref(search))?.remove(0))));
                continue;
            }
            // A pre-training whose tokenizer is here is keyed (what `--check-only` lists), though
            // its searches' data is not here yet; its key needs the device's kind, not the device.
            if model_missing.is_empty() {
                self.key_pretraining(search, subspace::device::device_named(&self.device)?)?;
            }
            // The model is here and only the task's data is not: D and m from its config.
            let shapes = match &search.subject {
                Subject::Text { model, task }
                    if model_missing.is_empty() && !matches!(model, Checkpoint::Produced(_)) =>
                {
                    let origin = &search.origin;
                    let error = |message: String| origin.error(&origin.model_field, message);
                    let files = model.files(&self.store).map_err(|err| error(err.to_string()))?;
                    let config = read_config(&files.config, &model.name()).map_err(|err| error(err.to_string()))?;
                    Some(dimensions(&config, task.n_labels() as i64, &search.plan.method))
                }
                _ => None,
            };
            surveyed.push(Surveyed::Missing { files: [model_missing, task_missing].concat(), shapes });
        }
        Ok(surveyed)
    }

    /// The files of `search`'s model (or its pre-training's tokenizer), then of its task, that are
    /// neither in the cache nor in a mirror, when the store may not fetch them.
    fn missing_files(&self, search: &PlannedSearch) -> Result<(Vec<MissingFile>, Vec<MissingFile>), Error> {
        let Subject::Text { model, task } = &search.subject else { return Ok((Vec::new(), Vec::new())) };
        let origin = &search.origin;
        let (model_check, model_field) = match model {
            Checkpoint::Produced(produced) => {
                let field = format!("pretraining.{}.tokenizer", produced.pretraining);
                match crate::reference::pretraining_tokenizer(&produced.settings.tokenizer, &produced.base, &self.store)
                {
                    Ok(_) => (Ok(()), field),
                    Err(trainer::Error::Datasets(err)) => (Err(err), field),
                    Err(err) => return Err(origin.error(&field, err.to_string()).into()),
                }
            }
            _ => match model.files(&self.store) {
                Ok(_) => (Ok(()), origin.model_field.clone()),
                Err(crate::reference::ReferenceError::Store(err)) => (Err(err), origin.model_field.clone()),
                Err(err) => return Err(origin.error(&origin.model_field, format!("`{}`: {err}", model.name())).into()),
            },
        };
        let missing = |check: Result<(), datasets::Error>, field: String| match check {
            Ok(()) => Ok(Vec::new()),
            Err(datasets::Error::Missing(files)) => Ok(files),
            Err(err) => Err(Error::from(origin.error(&field, err.to_string()))),
        };
        let model_missing = missing(model_check, model_field)?;
        let task_missing = missing(task.ensure(&self.store), format!("tasks[{}]", origin.task_index))?;
        Ok((model_missing, task_missing))
    }

    /// Keys the pre-training whose checkpoint `search` fine-tunes, once (its tokenizer must be
    /// here), and locates the checkpoint; nothing for a search of any other model.
    fn key_pretraining(&mut self, search: &PlannedSearch, device: tch::Device) -> Result<(), Error> {
        let PlannedSearch { subject, origin, .. } = search;
        let Subject::Text { model: Checkpoint::Produced(produced), .. } = subject else { return Ok(()) };
        if !self.pretrainings.contains_key(&produced.pretraining) {
            let resolved = crate::reference::resolve_pretraining(
                &produced.settings,
                &produced.base,
                &self.store,
                &self.out,
                device,
            )
            .map_err(|err| pretraining_error(origin, &produced.pretraining, err))?;
            self.pretrainings.insert(produced.pretraining.clone(), resolved);
        }
        let resolved = &self.pretrainings[&produced.pretraining];
        produced.locate(&resolved.spec.key(), &resolved.dir);
        Ok(())
    }

    fn prepare_checked(&mut self, searches: &[PlannedSearch]) -> Result<Vec<PreparedSearch>, Error> {
        let device = parse_device(&self.device)?;
        // Key the pre-trainings whose checkpoints the searches fine-tune (their checkpoints'
        // identities are the pre-trainings' keys; their files exist once they have run).
        for search in searches {
            self.key_pretraining(search, device)?;
        }
        let mut prepared = Vec::new();
        for (index, PlannedSearch { plan, subject, origin }) in searches.iter().enumerate() {
            let model_field = || origin.model_field.clone();
            let (config, model_revision, n_labels, data) = match subject {
                Subject::Synthetic { config, .. } => {
                    (config.as_ref().clone(), "synthetic".to_owned(), 2, "synthetic".to_owned())
                }
                Subject::Text { model, task } => {
                    let name = model.name();
                    // A checkpoint of a pre-training this plan runs has no files yet: its config
                    // and tokenizer are the pre-training's, and its weights are written in the
                    // model's own layout.
                    let (config, tokenizer, weights) = match model {
                        Checkpoint::Produced(produced) => {
                            let resolved = &self.pretrainings[&produced.pretraining];
                            (resolved.config.clone(), resolved.tokenizer.path.clone(), None)
                        }
                        _ => {
                            let files = model
                                .files(&self.store)
                                .map_err(|err| origin.error(&model_field(), format!("`{name}`: {err}")))?;
                            let config = read_config(&files.config, &name)
                                .map_err(|err| origin.error(&model_field(), err.to_string()))?;
                            (config, files.tokenizer, Some(files.weights))
                        }
                    };
                    let encoder = TextEncoder::from_file(&tokenizer, plan.training.max_len)
                        .map_err(|err| origin.error(&model_field(), err.to_string()))?;
                    if let Some(message) = max_len_problem(&config, &encoder, task.is_pair()) {
                        let message = format!("{} for {name} on {}: {message}", plan.training.max_len, plan.task);
                        return Err(origin.error("training.max_len", message).into());
                    }
                    if let Some(message) = vocabulary_problem(&config, &encoder) {
                        return Err(origin.error(&model_field(), format!("`{name}`: {message}")).into());
                    }
                    let task_field = format!("tasks[{}]", origin.task_index);
                    task.ensure(&self.store)
                        .map_err(|err| origin.error(&task_field, format!("`{}`: {err}", plan.task)))?;
                    let n_labels = task.n_labels() as i64;
                    // The weights fit the model with this task's head (names and shapes, from the
                    // file's header): a wrong folder fails here, not after earlier searches ran.
                    if let Some(weights) = &weights {
                        checkpoint::check_for_finetuning(weights, &config, n_labels)
                            .map_err(|err| origin.error(&model_field(), err.to_string()))?;
                    }
                    (config, model.revision(&self.store)?, n_labels, task.data_id(&self.store)?)
                }
            };
            let method = &plan.method;
            let subspace_method = method.mode.subspace_method().unwrap_or(SubspaceMethod::Did);
            let (total_parameters, scales) = dimensions(&config, n_labels, method);
            let search = &plan.search;
            if let Some(d_max) = search.d_max
                && d_max > total_parameters
            {
                return Err(origin
                    .error(
                        "search.d_max",
                        format!(
                            "{d_max} exceeds D = {total_parameters}, the parameters of {} with its head",
                            plan.model
                        ),
                    )
                    .into());
            }
            let grid = search.grid(total_parameters);
            let Some(&smallest) = grid.first() else {
                return Err(origin
                    .error("search.d_min", format!("no grid value lies in [{}, D = {total_parameters}]", search.d_min))
                    .into());
            };
            if let Err(err) =
                subspace::check_dimension(smallest, scales, subspace_method, method.grouping, method.compat)
            {
                return Err(origin
                    .error("search.d_min", format!("{err} (method `{}`, {})", method.name, plan.model))
                    .into());
            }
            let device = self.device.as_str();
            let key = hash_key(&SearchIdentity {
                plan,
                model_revision: &model_revision,
                data: &data,
                device,
                torch: TORCH_VERSION,
            });
            prepared.push(PreparedSearch {
                plan: plan.clone(),
                subject: subject.clone(),
                model_revision,
                data,
                architecture: config.architecture(),
                total_parameters,
                scales,
                grid,
                key,
                index,
            });
        }
        Ok(prepared)
    }

    /// Runs the searches; returns their records in the order of `searches`.
    ///
    /// Each pre-training these searches need (in name order) runs first, or is reused once
    /// finished, with its searches after it, so that a pre-training's bad settings or missing
    /// corpus show at once; then the searches that fine-tune no pre-trained checkpoint. A
    /// pre-training that another process (a shard, a second job on the same results folder) is
    /// running is left to it: this process goes on with the rest and only then waits, polling
    /// every few seconds (SIGTERM ends the wait), for whichever of those finishes first.
    pub fn run(
        &mut self,
        searches: &[PreparedSearch],
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Vec<SearchRecord>, Error> {
        let device = parse_device(&self.device)?;
        self.results.create()?;
        on_event(Event::Planned { searches });
        let pretraining_of = |search: &PreparedSearch| match &search.subject {
            Subject::Text { model: Checkpoint::Produced(produced), .. } => Some(produced.pretraining.clone()),
            _ => None,
        };
        let dependent = |name: &str| -> Vec<usize> {
            (0..searches.len()).filter(|&index| pretraining_of(&searches[index]).as_deref() == Some(name)).collect()
        };
        let mut records: Vec<Option<SearchRecord>> = vec![None; searches.len()];
        let needed: std::collections::BTreeSet<String> = searches.iter().filter_map(pretraining_of).collect();
        let mut held = Vec::new();
        for name in needed {
            if self.pretrain(&name, device, on_event)? {
                self.run_searches(searches, &dependent(&name), &mut records, on_event)?;
            } else {
                on_event(Event::PretrainingHeld { name: &name, waiting: false });
                held.push(name);
            }
        }
        let independent: Vec<usize> =
            (0..searches.len()).filter(|&index| pretraining_of(&searches[index]).is_none()).collect();
        self.run_searches(searches, &independent, &mut records, on_event)?;
        let mut announced = false;
        while !held.is_empty() {
            if self.interrupter.is_requested() {
                return Err(Error::Terminated(Terminated::Waiting { names: held.join(", ") }));
            }
            let mut still_held = Vec::new();
            for name in held {
                if self.pretrain(&name, device, on_event)? {
                    self.run_searches(searches, &dependent(&name), &mut records, on_event)?;
                } else {
                    still_held.push(name);
                }
            }
            held = still_held;
            if !held.is_empty() {
                if !announced {
                    for name in &held {
                        on_event(Event::PretrainingHeld { name, waiting: true });
                    }
                    announced = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        }
        Ok(records.into_iter().map(|record| record.expect("every search ran")).collect())
    }

    /// Runs (or reuses) `searches[index]` for each of `indices`, into `records[index]`.
    fn run_searches(
        &mut self,
        searches: &[PreparedSearch],
        indices: &[usize],
        records: &mut [Option<SearchRecord>],
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(), Error> {
        for &index in indices {
            let search = &searches[index];
            on_event(Event::SearchStarted { index, search });
            let (record, reused) = match self.load_complete_search(search, true)? {
                Some(record) => (record, true),
                None => {
                    let _lock = self.wait_for_lock(&search.key, &format!("search {}", search.key))?;
                    // Another process may have finished it while this one waited for the lock.
                    match self.load_complete_search(search, false)? {
                        Some(record) => (record, true),
                        None => {
                            let record = self.run_search(search, on_event)?;
                            self.results.save_search(&record)?;
                            (record, false)
                        }
                    }
                }
            };
            on_event(Event::SearchFinished { index, record: &record, reused });
            records[index] = Some(record);
        }
        Ok(())
    }

    /// Runs (or resumes, or reuses) the pre-training `name`, holding its key's lock; `true` once
    /// it is finished, `false` (nothing done) when another process holds the lock.
    fn pretrain(&mut self, name: &str, device: tch::Device, on_event: &mut dyn FnMut(Event)) -> Result<bool, Error> {
        let error = |source: trainer::Error| Error::Pretraining { name: name.to_owned(), source: Box::new(source) };
        let key = self.pretrainings[name].spec.key();
        let record_path = self.pretrainings[name].dir.join("record.json");
        // A finished pre-training is reused without its corpus (which may not be packed here).
        let finished = |path: &std::path::Path| results::read_or_set_aside::<results::PretrainingRecord>(path);
        if let Some(record) = finished(&record_path)? {
            on_event(Event::PretrainingFinished { name, record: &record, reused: true });
            return Ok(true);
        }
        let Some(_lock) = self.results.try_lock(&format!("pretraining-{key}"))? else { return Ok(false) };
        // Another process (a shard) may have finished it while this one waited for the lock.
        if let Some(record) = finished(&record_path)? {
            on_event(Event::PretrainingFinished { name, record: &record, reused: true });
            return Ok(true);
        }
        let resolved = self.pretrainings.remove(name).expect("keyed by prepare");
        on_event(Event::PretrainingStarted { name, key: &key, updates: resolved.spec.updates });
        let prepared = resolved.pack(&self.store, &self.interrupter, &mut |_| {}).map_err(error)?;
        let finished = trainer::pretrain::pretrain(
            &prepared,
            device,
            RunLimits { interrupter: self.interrupter.clone(), ..Default::default() },
            code_revision(),
            &mut |report| on_event(Event::PretrainingUpdate(report)),
        )
        .map_err(error)?;
        let trainer::pretrain::Finished::Completed(record) = finished else {
            unreachable!("no update limit was given")
        };
        on_event(Event::PretrainingFinished { name, record: &record, reused: false });
        Ok(true)
    }

    /// The finished search's record, if there is one. A record written before records named the
    /// model's architecture and the model's and data's identities gets them now (from the same
    /// config and identities the search was keyed with), and is saved again: nothing else in it
    /// changes. (No lock: processes that upgrade the same record at once write the same bytes,
    /// each atomically.)
    fn load_search(&self, search: &PreparedSearch) -> Result<Option<SearchRecord>, Error> {
        let Some(mut record) = self.results.load_search(&search.key)? else { return Ok(None) };
        if record.architecture.is_none() || record.model_revision.is_none() || record.data.is_none() {
            record.architecture = Some(search.architecture.clone());
            record.model_revision = Some(search.model_revision.clone());
            record.data = Some(search.data.clone());
            self.results.save_search(&record)?;
        }
        Ok(Some(record))
    }

    /// The lock of `key`, waiting while another process holds it: the wait is said every 30 s
    /// and ends within a second of SIGTERM or Ctrl-C ([`Terminated::Lock`]).
    fn wait_for_lock(&self, key: &str, what: &str) -> Result<results::KeyLock, Error> {
        let stop = || self.interrupter.is_requested();
        self.results
            .lock_or_stop(key, what, std::time::Duration::from_secs(30), &stop)?
            .ok_or_else(|| Error::Terminated(Terminated::Lock { what: what.to_owned() }))
    }

    /// [`Runner::load_search`], `None` also when a run the record rests on has no readable
    /// record (deleted, or set aside as unreadable): the search is then run again, which reuses
    /// every run that has a record and trains the missing ones (said in a warning when `warn`).
    fn load_complete_search(&self, search: &PreparedSearch, warn: bool) -> Result<Option<SearchRecord>, Error> {
        let Some(record) = self.load_search(search)? else { return Ok(None) };
        let keys = record.run_keys();
        let mut missing = Vec::new();
        for key in &keys {
            if self.results.load_run(key)?.is_none() {
                missing.push(*key);
            }
        }
        if missing.is_empty() {
            return Ok(Some(record));
        }
        if !warn {
            return Ok(None);
        }
        tracing::warn!(
            "search {} ({} {} on {} with {}): {} of its {} runs have no record ({}): running the search again, \
             which trains them",
            search.key,
            search.plan.experiment,
            search.plan.method.name,
            search.plan.task,
            search.plan.model,
            missing.len(),
            keys.len(),
            missing.join(", ")
        );
        Ok(None)
    }

    fn run_search(&mut self, search: &PreparedSearch, on_event: &mut dyn FnMut(Event)) -> Result<SearchRecord, Error> {
        let plan = &search.plan;
        let (baseline_outcome, baseline_runs) = self.probe(search, &plan.baseline, 0, on_event)?;
        let majority_accuracy = baseline_runs.first().map_or(f64::NAN, |run| run.majority_accuracy);
        // The target: `threshold` x the baseline's median seed score.
        let target =
            Target::from_baseline(plan.search.threshold, baseline_outcome.seed_scores.clone(), majority_accuracy);
        let baseline = Baseline {
            score: baseline_outcome.score,
            target: target.as_ref().map(|target| target.value),
            majority_accuracy,
            runs: baseline_outcome.runs,
        };
        // The target a d90 is measured against, or why there is none.
        let usable: Result<&Target, String> = match (baseline.score, &target) {
            (Some(score), _) if score <= majority_accuracy => Err(format!(
                "the baseline ({score:.4}) is not above the majority-class accuracy ({majority_accuracy:.4})"
            )),
            (Some(score), Some(target)) if target.value <= majority_accuracy => Err(format!(
                "the target ({:.4} = {} x the baseline {score:.4}) is at or below the majority-class \
                 accuracy ({majority_accuracy:.4}): a constant predictor would reach it",
                target.value, plan.search.threshold
            )),
            (Some(_), Some(target)) => Ok(target),
            _ => Err("every baseline run diverged or predicted one class".to_owned()),
        };
        // The control is read against the target: none without a usable one.
        let control = match &plan.control {
            Some(method) if usable.is_ok() => {
                let (outcome, runs) = self.probe(search, method, 0, on_event)?;
                Some(Control {
                    score: outcome.score,
                    seed_scores: outcome.seed_scores,
                    trainable_parameters: runs.first().map_or(0, |run| run.result.trainable_parameters),
                    runs: outcome.runs,
                })
            }
            _ => None,
        };
        let signature = search.signature(&self.device, code_revision());
        let outcome = match usable {
            Ok(target) => d90_search(plan.search.mode, &search.grid, target, |d| {
                self.probe(search, &plan.method, d, on_event).map(|(outcome, _)| outcome)
            })?,
            Err(reason) => SearchOutcome { outcome: Outcome::Unable { reason }, probes: vec![], monotone: None },
        };
        let generalization_run = self.generalization_run(search, &outcome, on_event)?;
        let generalization_choice = generalization_run.as_ref().map(|_| GeneralizationChoice::MedianSeedOtherSeedsRate);
        Ok(SearchRecord {
            key: search.key.clone(),
            signature,
            plan: plan.clone(),
            architecture: Some(search.architecture.clone()),
            model_revision: Some(search.model_revision.clone()),
            data: Some(search.data.clone()),
            total_parameters: search.total_parameters,
            scales: search.scales,
            grid: search.grid.clone(),
            baseline,
            control,
            outcome: outcome.outcome,
            probes: outcome.probes,
            monotone: outcome.monotone,
            interval: None,
            generalization_run,
            generalization_choice,
            provenance: Provenance::now(code_revision(), search.subject.input_hashes()),
        })
    }

    /// Training accuracy only where it is needed: probe runs skip it (a forward pass over the
    /// whole training subset, in eval mode, at the end of every epoch), and once a search has a d90
    /// one run of the d90 probe is trained again with the training subset evaluated
    /// (`training.train_eval_examples`; default all): the median seed's run at the learning rate
    /// the other seeds score best with ([`d90::search::generalization_pick`]), so the run's own dev
    /// score never chose it and its gap carries no winner's curse. Training is deterministic on one
    /// machine, so the rerun repeats the run's dev score; the report reads the generalization gap
    /// from it. `None` without a d90.
    fn generalization_run(
        &mut self,
        search: &PreparedSearch,
        outcome: &SearchOutcome,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Option<String>, Error> {
        let Outcome::Found { d90, .. } = outcome.outcome else { return Ok(None) };
        let Some(probe) = outcome.probes.iter().find(|probe| probe.d == d90) else { return Ok(None) };
        // The probe's runs are seed-major, learning-rate-minor (`probe`).
        let n_seeds = search.plan.seeds.len();
        // The grid's rates, or more where the probe extended it (`lr_extend`).
        let n_rates = probe.runs.len() / n_seeds.max(1);
        if n_rates == 0 || probe.runs.len() != n_seeds * n_rates {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(probe.runs.len());
        for key in &probe.runs {
            records.push(self.results.load_run(key)?);
        }
        let scores: Vec<Vec<Option<f64>>> = records
            .chunks(n_rates)
            .map(|seed_runs| seed_runs.iter().map(|record| record.as_ref()?.counting_score()).collect())
            .collect();
        let Some((seed, rate)) = d90::search::generalization_pick(&scores) else { return Ok(None) };
        let Some(chosen) = records[seed * n_rates + rate].take() else { return Ok(None) };
        let mut spec = chosen.spec;
        spec.train.train_eval_examples = search.plan.training.train_eval_examples;
        Ok(Some(self.run_one(&search.subject, spec, on_event)?.key))
    }

    /// Every learning rate and seed of `method` at `d`: per seed the best score over learning
    /// rates among runs that neither diverged nor predicted one class, and the median over seeds (a
    /// seed without such a run counts as 0). With `lr_extend`, while some seed's best run lies at
    /// the lowest or the highest rate ([`d90::search::best_rate_edges`]), every seed trains one
    /// more rate beyond each such end ([`d90::search::rate_beyond`]), in at most `lr_extend`
    /// rounds; the runs already trained keep their keys, so extending a finished search trains
    /// only the new rates.
    fn probe(
        &mut self,
        search: &PreparedSearch,
        method: &Method,
        d: usize,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(ProbeOutcome, Vec<RunRecord>), Error> {
        let mut rates = method.lrs_at(d);
        let mut extensions_left = method.lr_extend.unwrap_or(0);
        // The runs of this probe so far, by key: an extension trains (or reuses) only its new rate.
        let mut known = BTreeMap::new();
        loop {
            let (outcome, records) = self.probe_rates(search, method, d, &rates, &mut known, on_event)?;
            if extensions_left == 0 {
                return Ok((outcome, records));
            }
            let runs: Vec<(u64, f64, Option<f64>)> = records
                .iter()
                .map(|record| (record.spec.train.seeds.data, record.spec.train.lr, record.counting_score()))
                .collect();
            let edges = d90::search::best_rate_edges(&runs);
            if edges.is_empty() {
                return Ok((outcome, records));
            }
            let (below, above) = (
                d90::search::rate_beyond(&rates, d90::search::GridEdge::Low),
                d90::search::rate_beyond(&rates, d90::search::GridEdge::High),
            );
            for edge in edges {
                match edge {
                    d90::search::GridEdge::Low => rates.insert(0, below),
                    d90::search::GridEdge::High => rates.push(above),
                }
            }
            extensions_left -= 1;
        }
    }

    /// [`Runner::probe`] over the learning rates `rates` (increasing); a run in `known` is taken
    /// from it (neither trained nor reported again), and every run of the probe is added to it.
    fn probe_rates(
        &mut self,
        search: &PreparedSearch,
        method: &Method,
        d: usize,
        rates: &[f64],
        known: &mut BTreeMap<String, RunRecord>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(ProbeOutcome, Vec<RunRecord>), Error> {
        let plan = &search.plan;
        // Seed-major, learning-rate-minor (`generalization_run` reads them so).
        let specs: Vec<RunSpec> = plan
            .seeds
            .iter()
            .flat_map(|&seed| rates.iter().map(move |&lr| (seed, lr)))
            .map(|(seed, lr)| self.run_spec(search, method, d, lr, seed))
            .collect();
        let new_specs: Vec<RunSpec> = specs.iter().filter(|spec| !known.contains_key(&spec.key())).cloned().collect();
        let by_workers =
            if self.jobs > 1 { self.train_side_by_side(search, &new_specs, on_event)? } else { Vec::new() };
        let n_rates = specs.len() / plan.seeds.len().max(1);
        let mut seed_scores = Vec::new();
        let mut records = Vec::new();
        let mut constant_runs = 0;
        for seed_specs in specs.chunks(n_rates.max(1)) {
            let mut best: Option<f64> = None;
            for spec in seed_specs {
                let key = spec.key();
                // A worker's run was reported as it finished.
                let record = match known.get(&key) {
                    Some(record) => Some(record.clone()),
                    None if by_workers.contains(&key) => self.results.load_run(&key)?,
                    None => None,
                };
                let record = match record {
                    Some(record) => record,
                    None => self.run_one(&search.subject, spec.clone(), on_event)?,
                };
                known.insert(key, record.clone());
                let constant = record.result.best.as_ref().is_some_and(|best| best.predicts_one_class);
                constant_runs += usize::from(constant);
                if let Some(score) = record.best_score.filter(|_| !constant) {
                    best = Some(best.map_or(score, |best: f64| best.max(score)));
                }
                records.push(record);
            }
            seed_scores.push(best);
        }
        let outcome = ProbeOutcome {
            all_diverged: records.iter().all(|record| record.diverged),
            constant_runs,
            runs: records.iter().map(|record| record.key.clone()).collect(),
            ..ProbeOutcome::from_seed_scores(seed_scores)
        };
        Ok((outcome, records))
    }

    /// Trains the runs of `specs` that have no record yet, up to `jobs` at once, each in a worker
    /// process (`--run-one`) with `1 / jobs` of the CPU threads; the caller then reads their
    /// records as it would any finished run's. A worker takes the run's lock and writes its record
    /// exactly as [`Runner::run_one`] does in this process, so keys, records, reuse and resumption
    /// are the same as one at a time. On SIGTERM every worker is stopped the same way (each saves
    /// its run's state after its step), and this returns [`Terminated::SideBySide`] once all have
    /// exited. Returns the keys of the runs the workers trained (each reported as it finished).
    fn train_side_by_side(
        &mut self,
        search: &PreparedSearch,
        specs: &[RunSpec],
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Vec<String>, Error> {
        use std::os::unix::process::ExitStatusExt;
        let Some(worker) = self.worker.clone() else { return Ok(Vec::new()) };
        let mut pending = Vec::new();
        for spec in specs {
            if self.results.load_run(&spec.key())?.is_none() {
                pending.push(spec.clone());
            }
        }
        if pending.len() < 2 {
            return Ok(Vec::new());
        }
        let mut trained = Vec::new();
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let threads = (cores / self.jobs).max(1).to_string();
        let code = code_revision();
        let orders = self.out.join("work");
        std::fs::create_dir_all(&orders).map_err(|source| ResultsError::Io { path: orders.clone(), source })?;
        let mut running: Vec<(std::process::Child, String, PathBuf, String)> = Vec::new();
        let mut pending = pending.into_iter();
        let mut failure: Option<Error> = None;
        let mut stopping = false;
        let mut stopped_runs = 0;
        let mut orders_written = 0usize;
        loop {
            if !stopping && (failure.is_some() || self.interrupter.is_requested()) {
                stopping = true;
                stopped_runs = running.len();
                for (child, ..) in &running {
                    // SAFETY: `kill` with a live child's pid and SIGTERM has no memory effects.
                    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                }
            }
            if !stopping {
                while running.len() < self.jobs {
                    let Some(spec) = pending.next() else { break };
                    let (signature, run_key) = (spec.signature(code), spec.key());
                    // Unique per process and order: shards sharing the folder may order the same
                    // run (a shared baseline), and each worker must read its own parent's order.
                    orders_written += 1;
                    let order_path =
                        orders.join(format!("{run_key}.run-one.{}.{orders_written}.json", std::process::id()));
                    let order = RunOne { search_index: search.index, search_key: search.key.clone(), spec };
                    let json = serde_json::to_string(&order).expect("a run order serialises");
                    if let Err(err) = std::fs::write(&order_path, json) {
                        failure = Some(Error::Worker {
                            signature,
                            problem: format!("could not be given its order {}: {err}", order_path.display()),
                        });
                        break;
                    }
                    on_event(Event::RunStarted { signature: &signature });
                    let child = std::process::Command::new(&worker.program)
                        .args(&worker.args)
                        .arg("--run-one")
                        .arg(&order_path)
                        .env("RAYON_NUM_THREADS", &threads)
                        .env("OMP_NUM_THREADS", &threads)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .spawn();
                    match child {
                        Ok(child) => running.push((child, signature, order_path, run_key)),
                        Err(err) => {
                            let _ = std::fs::remove_file(&order_path);
                            failure = Some(Error::Worker { signature, problem: format!("could not start: {err}") });
                            break;
                        }
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            let mut still_running = Vec::new();
            for (mut child, signature, order_path, run_key) in running {
                match child.try_wait() {
                    Ok(None) => still_running.push((child, signature, order_path, run_key)),
                    Ok(Some(status)) => {
                        let _ = std::fs::remove_file(&order_path);
                        // Stopped by our SIGTERM: after its step (143), or before its handler was
                        // installed (killed by the signal itself, nothing trained yet).
                        let stopped =
                            stopping && (status.code() == Some(143) || status.signal() == Some(libc::SIGTERM));
                        if status.success() {
                            match self.results.load_run(&run_key) {
                                Ok(Some(record)) => {
                                    on_event(Event::RunFinished { record: &record, reused: false });
                                    trained.push(record.key.clone());
                                }
                                // Trained again in this process by the caller.
                                Ok(None) => {}
                                Err(err) => {
                                    failure.get_or_insert(err.into());
                                }
                            }
                        } else if !stopped && failure.is_none() {
                            failure = Some(Error::Worker { signature, problem: format!("failed ({status})") });
                        }
                    }
                    Err(err) => {
                        // Not waitable: stop it, so that nothing trains on unwatched.
                        let _ = child.kill();
                        let _ = child.wait();
                        let _ = std::fs::remove_file(&order_path);
                        failure.get_or_insert(Error::Worker {
                            signature,
                            problem: format!("cannot be waited for: {err}"),
                        });
                    }
                }
            }
            running = still_running;
            if !running.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        if stopping {
            return Err(Error::Terminated(Terminated::SideBySide { runs: stopped_runs }));
        }
        Ok(trained)
    }

    /// A worker's job ([`RunOne`]): trains its run of `search` (prepared again by the worker,
    /// checked against the order's key) and writes its record, or reuses a finished one.
    ///
    /// # Errors
    /// [`Error::Worker`] when the order's search key differs from `search`'s (a spec or
    /// input that changed under the parent), or as [`Runner::run_one`].
    pub fn run_ordered(&mut self, search: &PreparedSearch, order: RunOne) -> Result<RunRecord, Error> {
        if search.key != order.search_key {
            return Err(Error::Worker {
                signature: order.spec.signature(code_revision()),
                problem: format!(
                    "was given search {} but prepared {}: the spec or its inputs changed since the run started",
                    order.search_key, search.key
                ),
            });
        }
        self.run_one(&search.subject, order.spec, &mut |_| {})
    }

    fn run_spec(&self, search: &PreparedSearch, method: &Method, d: usize, lr: f64, seed: u64) -> RunSpec {
        let plan = &search.plan;
        let training = &plan.training;
        let mut train = training.run_config(method, d, lr, seed);
        // Probe runs skip training accuracy: see `generalization_run`.
        train.train_eval_examples = Some(0);
        RunSpec {
            model: plan.model.clone(),
            model_revision: search.model_revision.clone(),
            task: plan.task.clone(),
            data: search.data.clone(),
            max_len: training.max_len,
            max_train_examples: training.max_train_examples,
            subset_seed: training.subset_seed,
            device: self.device.clone(),
            torch: TORCH_VERSION.to_owned(),
            train,
        }
    }

    /// Runs `spec` (a run of a search on `subject`), or takes its finished result.
    fn run_one(
        &mut self,
        subject: &Subject,
        spec: RunSpec,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<RunRecord, Error> {
        let key = spec.key();
        if let Some(record) = self.results.load_run(&key)? {
            on_event(Event::RunFinished { record: &record, reused: true });
            return Ok(record);
        }
        let _lock = self.wait_for_lock(&key, &format!("run {}", spec.signature(code_revision())))?;
        if let Some(record) = self.results.load_run(&key)? {
            on_event(Event::RunFinished { record: &record, reused: true });
            return Ok(record);
        }
        let code = code_revision();
        let signature = spec.signature(code);
        let context = || format!("run {signature}");
        let workload_key = WorkloadKey {
            model: spec.model.clone(),
            model_revision: spec.model_revision.clone(),
            task: spec.task.clone(),
            data: spec.data.clone(),
            max_len: spec.max_len,
            max_train_examples: spec.max_train_examples,
            subset_seed: spec.subset_seed,
        };
        if self.workload.as_ref().is_none_or(|(key, _)| key != &workload_key) {
            self.workload = None;
            let workload = match subject {
                Subject::Synthetic { model, config } => Ok(Workload::synthetic(model, config, spec.max_train_examples)),
                Subject::Text { model, task } => Workload::from_checkpoint(
                    &self.store,
                    model,
                    task,
                    spec.max_len,
                    spec.max_train_examples,
                    spec.subset_seed,
                ),
            }
            .map_err(|source| Error::Run { context: context(), source: Box::new(source) })?;
            self.workload = Some((workload_key, workload));
        }
        let workload = &self.workload.as_ref().expect("just loaded").1;
        on_event(Event::RunStarted { signature: &signature });
        let device = parse_device(&spec.device)?;
        let work_dir = self.results.work_dir(&key);
        let result = workload
            .run(device, &spec.train, Some(&work_dir), &self.interrupter, &mut |_| {}, &mut |step| {
                on_event(Event::Step(step))
            })
            .map_err(|source| Error::Run { context: context(), source: Box::new(source) })?;
        let record = RunRecord {
            key: key.clone(),
            signature,
            train_examples: workload.train.len(),
            majority_accuracy: workload.majority_accuracy,
            best_score: result.best.as_ref().map(|best| best.score),
            diverged: matches!(result.status, Status::Diverged { .. }),
            spec,
            result,
            peak_resident_bytes: process_memory_bytes("VmHWM"),
            provenance: Provenance::now(code, subject.input_hashes()),
        };
        self.results.save_run(&record)?;
        let _ = std::fs::remove_dir_all(&work_dir);
        on_event(Event::RunFinished { record: &record, reused: false });
        Ok(record)
    }
}
