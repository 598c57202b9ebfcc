//! The process's request to stop, for the long work of this crate that is not training: hashing
//! a file and downloading one. A signal handler sets the flag ([`flag`]: the binaries register it
//! for SIGTERM beside the trainer's interrupter); the loops check it every chunk (1 MiB hashed,
//! 64 KiB downloaded) and end with [`Stopped`], within a second. A partial download is kept (the
//! next run resumes it); hashing writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

static FLAG: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// The flag itself, for a signal handler to set (`signal_hook::flag::register`).
pub fn flag() -> Arc<AtomicBool> {
    FLAG.clone()
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    FLAG.load(Ordering::SeqCst)
}

/// Long I/O ended because a stop was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "terminated (SIGTERM) while {what}; nothing half-done is used (a partial download is resumed), and the same \
     command goes on from there"
)]
pub struct Stopped {
    /// What was under way (`hashing <file>`, `downloading <file>`).
    pub what: String,
}
