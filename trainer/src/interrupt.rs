//! Stopping a run from outside, through a handle instead of a process-wide flag (burn's
//! `TrainingInterrupter`, HF's `TrainerControl.should_training_stop`): the binary registers an
//! [`Interrupter`]'s flag for SIGTERM (a scheduler's preemption, `scancel`, a time limit) and
//! passes the handle to the runner, the trainer and pre-training, which check it after every
//! step. What ends that way is one error, [`Terminated`], that every layer carries as a variant
//! and hands back from a typed `terminated()` (the trainer's [`Error`](crate::Error), and
//! bench-suite's `Error`); the binary exits 143 when it asked for a stop and a
//! `Terminated` ended the work (an error after the request is still an error).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared request to stop. Clones share the request; a fresh one is never set.
#[derive(Debug, Clone, Default)]
pub struct Interrupter(Arc<AtomicBool>);

impl Interrupter {
    /// Asks every loop holding this handle (or a clone) to stop after its current step.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for a signal handler to set (`signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// What an interruption ended: the same command resumes from where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Terminated {
    /// A fine-tuning run, after `step`; `saved` when its state is in its run folder.
    #[error(
        "terminated (SIGTERM) after step {step}{}",
        if *.saved { "; its state is saved: the same command resumes from there" } else { "" }
    )]
    Run {
        /// The last step trained.
        step: usize,
        /// Whether the run's state was saved (a run folder exists).
        saved: bool,
    },
    /// A pre-training, after `update`, with its state saved.
    #[error("terminated (SIGTERM) after update {update}; its state is saved: the same command resumes from there")]
    Pretraining {
        /// The last update made.
        update: usize,
    },
    /// A wait for pre-trainings another process runs.
    #[error(
        "terminated (SIGTERM) while waiting for pre-training {names}, which another process runs; nothing of it \
         started here, and the same command resumes"
    )]
    Waiting {
        /// The pre-trainings waited for, comma-separated.
        names: String,
    },
    /// A wait for the lock of a run or search that another process works on.
    #[error(
        "terminated (SIGTERM) while waiting for {what}, which another process works on; nothing of it started \
         here, and the same command resumes"
    )]
    Lock {
        /// What was waited for (`run <signature>`, `search <key>`).
        what: String,
    },
    /// Packing a pre-training corpus (nothing half-packed is kept).
    #[error(
        "terminated (SIGTERM) while packing corpus {corpus}; nothing half-packed is kept, and the same command packs \
         it again"
    )]
    Packing {
        /// The corpus being packed.
        corpus: String,
    },
    /// Runs training side by side in worker processes (`--jobs`), each stopped after its step.
    #[error(
        "terminated (SIGTERM) with {runs} run(s) training side by side (a run stops after its step with its state \
         saved): the same command resumes from there"
    )]
    SideBySide {
        /// The runs that were training.
        runs: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reaches_every_clone() {
        let interrupter = Interrupter::default();
        let clone = interrupter.clone();
        assert!(!clone.is_requested());
        interrupter.request();
        assert!(clone.is_requested() && interrupter.flag().load(Ordering::SeqCst));
    }
}
