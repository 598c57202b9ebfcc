//! intrinsic-bench's data crate, the only one that touches the network.
//!
//! - [`manifest`]: every pinned asset (datasets and checkpoints): URLs, sizes, sha256, archive
//!   members; and the lock file of hashes learned on first use.
//! - [`store`]: the verified cache under `$INTRINSIC_BENCH_HOME/assets`, read-only mirrors searched
//!   by size and hash, and resumable, verified downloads.
//! - [`unpack`]: zip and tar.gz extraction that refuses entries escaping the target folder.
//! - [`tasks`]: parsers of the six datasets into typed examples, with the canonical split sizes.
//! - [`corpus`]: pre-training corpora (the mirror's task text, C4 `en` shards) streamed as documents.
//! - [`local`]: a classification task the user declares over local CSV, TSV or JSONL files.

#![warn(missing_docs)]

pub mod corpus;
pub mod local;
pub mod manifest;
pub mod pin;
pub mod store;
pub mod tasks;
pub mod unpack;

use std::path::PathBuf;

/// Everything that can go wrong, with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("manifest {file}: {message}")]
    Manifest { file: PathBuf, message: String },
    #[error("unknown asset `{id}`; known assets: {known}")]
    UnknownAsset { id: String, known: String },
    #[error("unknown corpus `{name}`; known corpora: {known}")]
    UnknownCorpus { name: String, known: String },
    #[error("unknown task `{name}`; known tasks: {known}")]
    UnknownTask { name: String, known: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} mismatch for `{}` file `{}` from {}: expected {}, got {}; the file was moved aside to {}",
        .0.what, .0.asset, .0.file, .0.origin, .0.expected, .0.actual, .0.quarantined.display()
    )]
    Mismatch(Box<Mismatch>),
    #[error("could not download `{asset}` file `{file}`: {attempts}")]
    Download { asset: String, file: String, attempts: String },
    #[error("missing (offline, and not in the cache or a mirror):\n{}", .0.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    Missing(Vec<store::MissingFile>),
    #[error(
        "archive {archive} has an unsafe entry `{entry}` (absolute, `..`, or a link): refusing to unpack it; \
         the archive is not what the manifest describes"
    )]
    UnsafeArchiveEntry { archive: PathBuf, entry: String },
    #[error("archive {archive} has no member `{member}`")]
    MissingMember { archive: PathBuf, member: String },
    #[error("{file}: split `{split}` should have {expected} examples, found {actual}")]
    SplitSize { file: PathBuf, split: String, expected: usize, actual: usize },
    #[error("{file}:{line}: {message}")]
    Parse { file: PathBuf, line: usize, message: String },
    #[error("{}{}: {field}: {message}", file.display(), line.map(|line| format!(":{line}")).unwrap_or_default())]
    TaskFile { file: PathBuf, line: Option<usize>, field: String, message: String },
    #[error("{field}: {message}")]
    TaskDeclaration { field: String, message: String },
    #[error(transparent)]
    Pin(#[from] pin::PinError),
}

/// A file that is not what the manifest says, already moved out of the way.
#[derive(Debug)]
pub struct Mismatch {
    /// `sha256` or `size`.
    pub what: &'static str,
    pub asset: String,
    pub file: String,
    pub origin: String,
    pub expected: String,
    pub actual: String,
    pub quarantined: PathBuf,
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
