//! The experiments' one error type for running (candle-core's pattern, as `trainer::Error`): a
//! fine-tuning run that could not be set up or did not finish, and a reproduction that could not
//! be prepared or run. A spec's own errors ([`SpecError`]: file, line, field) and what a name
//! refers to ([`ReferenceError`]) keep their types, which this one carries.

use std::path::PathBuf;

use results::{Mode, ResultsError};
use subspace::device::DeviceError;
use trainer::interrupt::Terminated;

use crate::experiment::spec::SpecError;
use crate::reference::ReferenceError;

/// Why a fine-tuning run or a reproduction could not be set up or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store: its settings from the environment, or a checkpoint or task that could not be
    /// fetched, verified or read, or whose identity could not be read.
    #[error(transparent)]
    Data(#[from] datasets::Error),
    /// The device is not `cpu`, `cuda` or `cuda:N`, or is not available.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A checkpoint's `config.json` that is not a configuration the encoders support.
    #[error("{path}: {source}")]
    Config {
        /// The `config.json`.
        path: PathBuf,
        /// Why it was refused.
        source: Box<encoders::Error>,
    },
    /// A checkpoint's `config.json` that could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The `config.json`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The checkpoint's weights do not fit the sequence classifier of its config, or could not be
    /// loaded into it.
    #[error(transparent)]
    Checkpoint(#[from] encoders::Error),
    /// The tokenizer could not be loaded, the task's texts could not be tokenised or cached, or
    /// training stopped without a result: interrupted, no training data, or a subspace or run-state
    /// failure.
    #[error(transparent)]
    Trainer(#[from] trainer::Error),
    /// A model or task that cannot be used: a local model folder whose files changed since it was
    /// opened, a checkpoint of a pre-training that has not finished (the message names it), a
    /// checkpoint's identity that could not be read.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// DID or SAID asked for with `d` = 0.
    #[error("mode {0:?} needs a subspace dimension d > 0")]
    NoDimension(Mode),
    /// A setting outside what the model and task allow, found before any work; `setting` is the
    /// field's name (`batch_size`), which the command line spells as its flag.
    #[error("{setting} {value}: {message}")]
    Value {
        /// The setting's field name (`batch_size`, `d`, `max_len`, `model`).
        setting: &'static str,
        /// The value given, as text.
        value: String,
        /// Why it is refused, with the range that works where there is one.
        message: String,
    },
    /// A search that does not fit its model, task or assets, or a pre-training's bad settings: the
    /// error names the spec's field.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The results folder could not be created, locked, read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A run of a reproduction failed: its model and task could not be loaded, or training stopped
    /// without a result.
    #[error("{context}: {source}")]
    Run {
        /// `run <signature>`: the run that failed.
        context: String,
        /// Why it failed.
        source: Box<Error>,
    },
    /// `--only` names an experiment the spec does not have.
    #[error("--only: no experiment named `{name}` (the spec has: {known})")]
    UnknownExperiment {
        /// The name given.
        name: String,
        /// The spec's experiment names, comma-separated.
        known: String,
    },
    /// A `--shard` value (given here) that is not `i/n` with 0 <= i < n.
    #[error("--shard {0}: expected i/n with 0 <= i < n, e.g. 0/4")]
    Shard(String),
    /// A pre-training the searches need failed: packing its corpus, or training.
    #[error("pre-training `{name}`: {source}")]
    Pretraining {
        /// The pre-training's name in the spec.
        name: String,
        /// Why it failed.
        source: Box<trainer::Error>,
    },
    /// The interrupter ended a wait for another process's pre-training ([`Terminated::Waiting`]),
    /// or runs training side by side ([`Terminated::SideBySide`]).
    #[error("{0}")]
    Terminated(#[source] Terminated),
    /// SIGTERM ended a hash or a download while the spec's assets were checked
    /// ([`datasets::stop`]).
    #[error("{0}")]
    Stopped(#[source] datasets::stop::Stopped),
    /// A worker process training one run (`jobs > 1`) could not start, or failed: its own error
    /// is above in the log (workers write to the same stderr).
    #[error("run {signature}: its worker process {problem}")]
    Worker {
        /// The run's signature.
        signature: String,
        /// What went wrong (`exited with status 1`, `could not start: ...`).
        problem: String,
    },
}

impl Error {
    /// The interruption that ended a run, a pre-training or a wait, if one did (a match on the
    /// variants that carry one, no downcast).
    pub fn terminated(&self) -> Option<&Terminated> {
        match self {
            Error::Trainer(trainer) => trainer.terminated(),
            Error::Run { source, .. } => source.terminated(),
            Error::Pretraining { source, .. } => source.terminated(),
            Error::Terminated(terminated) => Some(terminated),
            _ => None,
        }
    }
}
