//! Warnings and notes of the libraries (`tracing` events: a mirror's wrong file, a Fastfood
//! fallback, ...) on stderr, drawn above the progress bars rather than through them, and, for a
//! shard of a SLURM array, also appended to that shard's own log file.
//!
//! The level is `RUST_LOG`'s (e.g. `RUST_LOG=debug`), `info` by default.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use indicatif::MultiProgress;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The progress bars events are drawn above, once `reproduce` has made them.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Events go to stderr, and to `shard_log` (appended, created with its folder) when given.
pub fn init(shard_log: Option<&Path>) -> Result<()> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(|| StderrAboveBars)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .with_filter(filter());
    let file = match shard_log {
        Some(path) => {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).with_context(|| format!("create {}", folder.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open the shard log {}", path.display()))?;
            Some(tracing_subscriber::fmt::layer().with_writer(Mutex::new(file)).with_ansi(false))
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file.map(|layer| layer.with_filter(filter())))
        .try_init()
        .context("set up logging")
}

/// From now on, events are drawn above these bars (one set per process: the first call wins).
pub fn draw_above(bars: &MultiProgress) {
    let _ = BARS.set(bars.clone());
}

struct StderrAboveBars;

impl Write for StderrAboveBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match BARS.get() {
            Some(bars) if !bars.is_hidden() => bars.suspend(|| io::stderr().write_all(buf)).map(|()| buf.len()),
            _ => io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
