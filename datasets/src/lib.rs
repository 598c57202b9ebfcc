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
pub mod stop;
pub mod store;
pub mod tasks;
pub mod text;
pub mod unpack;

use std::path::PathBuf;

/// Everything that can go wrong, with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stop was asked for (SIGTERM) during a hash or a download ([`stop`]).
    #[error("{0}")]
    Stopped(#[source] stop::Stopped),
    /// The manifest or the lock file cannot be parsed or fails its checks (an asset listed twice,
    /// a file without a URL, a malformed sha256), or the lock file holds another sha256 for a key.
    #[error("manifest {file}: {message}")]
    Manifest {
        /// The manifest or lock file at fault.
        file: PathBuf,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// An asset id the manifest does not list.
    #[error("unknown asset `{id}`; known assets: {known}")]
    UnknownAsset {
        /// The id asked for.
        id: String,
        /// The manifest's asset ids, comma-separated.
        known: String,
    },
    /// A corpus name that is neither a known corpus nor a local corpus file, or a C4 shard count
    /// outside 1 to [`corpus::C4_SHARDS`].
    #[error("unknown corpus `{name}`; known corpora: {known}")]
    UnknownCorpus {
        /// The name asked for.
        name: String,
        /// The names that would be accepted, for the message.
        known: String,
    },
    /// A task name that is not one of the six tasks ([`tasks::Task::from_name`]).
    #[error("unknown task `{name}`; known tasks: {known}")]
    UnknownTask {
        /// The name asked for.
        name: String,
        /// The known task names, comma-separated.
        known: String,
    },
    /// A file or folder cannot be read, written, created or moved (also: no cache folder can be
    /// found, or the HTTP client cannot be built).
    #[error("{path}: {source}")]
    Io {
        /// The path operated on (a placeholder such as `$HOME` or `<http client>` where there is
        /// none).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file whose size or sha256 is not what the manifest (or the lock file) says; it has been
    /// moved to quarantine.
    #[error(
        "{} mismatch for `{}` file `{}` from {}: expected {}, got {}; the file was moved aside to {}",
        .0.what, .0.asset, .0.file, .0.origin, .0.expected, .0.actual, .0.quarantined.display()
    )]
    Mismatch(Box<Mismatch>),
    /// Every URL of a file failed, each after its retries.
    #[error("could not download `{asset}` file `{file}`: {attempts}")]
    Download {
        /// The id of the asset the file belongs to.
        asset: String,
        /// The file's name in the manifest.
        file: String,
        /// The failure of each URL tried, `<url>: <why>`, joined by `; `.
        attempts: String,
    },
    /// Offline, the files that are neither in the cache nor in a mirror, with their URLs.
    #[error("missing (offline, and not in the cache or a mirror):\n{}", .0.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    Missing(Vec<store::MissingFile>),
    /// An archive has an entry with an absolute path, a `..` component or a link: nothing of it
    /// is unpacked.
    #[error(
        "archive {archive} has an unsafe entry `{entry}` (absolute, `..`, or a link): refusing to unpack it; \
         the archive is not what the manifest describes"
    )]
    UnsafeArchiveEntry {
        /// The archive file.
        archive: PathBuf,
        /// The unsafe entry's path, as the archive names it.
        entry: String,
    },
    /// An archive lacks a member the manifest lists.
    #[error("archive {archive} has no member `{member}`")]
    MissingMember {
        /// The archive file.
        archive: PathBuf,
        /// The absent member's path inside the archive.
        member: String,
    },
    /// A task's split has another number of examples than its canonical (or given) size.
    #[error("{file}: split `{split}` should have {expected} examples, found {actual}")]
    SplitSize {
        /// The file the split was parsed from.
        file: PathBuf,
        /// The split's name (e.g. `train`, `dev_matched`, `r1_dev`).
        split: String,
        /// The number of examples the split should have.
        expected: usize,
        /// The number of examples parsed.
        actual: usize,
    },
    /// A line of a task or corpus file that cannot be parsed.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file being parsed.
        file: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// Something wrong in a local task's files ([`local`]): an unknown format, a missing column, a
    /// label outside the declared list, an empty split, a repeated id or a malformed row.
    #[error("{}{}: {field}: {message}", file.display(), line.map(|line| format!(":{line}")).unwrap_or_default())]
    TaskFile {
        /// The file at fault.
        file: PathBuf,
        /// The 1-based line; `None` when the problem is the whole file or split.
        line: Option<usize>,
        /// The declaration field or column at fault (e.g. the label column, `dev_fraction`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A text file that is not UTF-8 (or UTF-16 with a byte-order mark), by the line of its first
    /// bad byte, with the encoding it looks like and how to convert it ([`text`]).
    #[error("{}{}: {message}", file.display(), line.map(|line| format!(":{line}")).unwrap_or_default())]
    Encoding {
        /// The file.
        file: PathBuf,
        /// The physical line (1-based) of the first bad byte; `None` for the whole file.
        line: Option<usize>,
        /// What was found and what to do.
        message: String,
    },
    /// A local task declaration that cannot work (e.g. three text columns, a `dev_fraction`
    /// outside (0, 1)), or a corpus given the wrong number of assets.
    #[error("{field}: {message}")]
    TaskDeclaration {
        /// The declaration field at fault (`corpus` for a corpus).
        field: String,
        /// What is wrong, and what would work.
        message: String,
    },
    /// A hub checkpoint cannot be pinned ([`pin`]).
    #[error(transparent)]
    Pin(#[from] pin::PinError),
}

/// A file that is not what the manifest says, already moved out of the way.
#[derive(Debug)]
pub struct Mismatch {
    /// `sha256` or `size`.
    pub what: &'static str,
    /// The id of the asset the file belongs to.
    pub asset: String,
    /// The file's name, or `<archive>:<member>` for an archive member.
    pub file: String,
    /// Where the file came from: its URL, `mirror <path>`, or `archive from <origin>`.
    pub origin: String,
    /// The expected sha256, or size as `<n> bytes`, from the manifest or the lock file.
    pub expected: String,
    /// The file's actual sha256, or size as `<n> bytes`.
    pub actual: String,
    /// Where the file was moved to, under `<home>/assets/quarantine/`.
    pub quarantined: PathBuf,
}

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
