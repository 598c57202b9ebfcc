//! The trainer's one error type (candle-core's pattern, as `datasets::Error`): every way
//! tokenising, packing a corpus, saving or resuming a run, fine-tuning or pre-training can fail,
//! with the data that says what and where.

use std::path::PathBuf;

use crate::interrupt::Terminated;

/// Why tokenising, packing, a run or a pre-training failed (a diverged fine-tuning run is not an
/// error: its result says so).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The interrupter asked the run or the pre-training to stop.
    #[error("{0}")]
    Terminated(#[source] Terminated),
    /// A tokenizer file (`tokenizer.json`, `vocab.txt`, the `tokenizer_config.json` beside it, or
    /// a pre-training tokenizer) that could not be read, parsed or built, lacks the special tokens
    /// packing and masking need, or failed on a text.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tokenizers crate failed on a text (its message).
    #[error("tokenizing: {0}")]
    Encode(String),
    /// `max_len` cannot hold the template's special tokens and one token per text
    /// ([`TextEncoder::check_max_len`](crate::tokenize::TextEncoder::check_max_len)).
    #[error(
        "max_len {max_len} leaves no room for {}: {special} special tokens and one token per text need at least {min}",
        if *.paired { "a sentence pair" } else { "a single text" }
    )]
    MaxLenTooSmall {
        /// The maximum length asked for.
        max_len: usize,
        /// The smallest `max_len` that fits.
        min: usize,
        /// The special tokens the template adds.
        special: usize,
        /// Whether the texts are sentence pairs.
        paired: bool,
    },
    /// The token cache of a split could not be written (a cache that cannot be read is recomputed,
    /// never an error).
    #[error("token cache {path}: {source}")]
    TokenCache {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A corpus's documents could not be fetched or read, or its identity (its assets' content
    /// ids in the manifest and store) could not be read.
    #[error(transparent)]
    Datasets(#[from] datasets::Error),
    /// A pre-training's `record.json` is refused (written by a newer version, or edited).
    #[error(transparent)]
    Record(#[from] results::ResultsError),
    /// A file (of a packed corpus or its staging folder, a pre-training checkpoint, a
    /// `record.json`) could not be created, written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The I/O error (or, for a record, the parse error).
        #[source]
        source: std::io::Error,
    },
    /// A packed corpus whose `packed.json` does not parse, or whose part file does not have the
    /// size it describes.
    #[error("packed corpus {path}: {message}")]
    Packed {
        /// The `packed.json` or part file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A run's resumable state (the trainer's tensors, moments and `state.json`) could not be
    /// written or read, or belongs to another run.
    #[error("run state {path}: {message}")]
    RunState {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The subspace (DID or SAID) failed: building it, projecting gradients or writing the weights.
    #[error(transparent)]
    Subspace(#[from] subspace::SubspaceError),
    /// The training split is empty.
    #[error("no training examples")]
    NoData,
    /// A head-only run on a model none of whose tensors is in the head group.
    #[error("head-only training: the model has no task-head tensors (no parameter in its head layer group)")]
    NoHead,
    /// A pre-training setting out of range, or one that does not fit the tokenizer, the corpus or
    /// the model.
    #[error("{field}: {message}")]
    Settings {
        /// The setting's name (`batch_size`, `model.vocab_size`, `corpus`, ...).
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// A pre-training update's loss was not finite (NaN or infinite); the state of the last
    /// checkpoint stays.
    #[error("pre-training diverged at update {update}: loss {loss}")]
    Diverged {
        /// Updates completed before the one that diverged.
        update: usize,
        /// That update's mean MLM loss.
        loss: f64,
    },
}

impl Error {
    /// The interruption that ended the run or the pre-training, if one did.
    pub fn terminated(&self) -> Option<&Terminated> {
        match self {
            Error::Terminated(terminated) => Some(terminated),
            _ => None,
        }
    }

    /// A [`Error::RunState`] about `path`.
    pub fn run_state(path: impl Into<PathBuf>, message: impl ToString) -> Error {
        Error::RunState { path: path.into(), message: message.to_string() }
    }

    /// An [`Error::Io`] maker for `path`, for `map_err`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io { path: path.to_path_buf(), source }
    }
}
