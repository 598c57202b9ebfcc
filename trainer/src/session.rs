//! The resumable skeleton that fine-tuning ([`crate::train`]) and MLM pre-training
//! ([`crate::pretrain`]) share: taking the process's turn, resuming from a run folder, counting
//! the steps and seconds of this process against those before it, saving the state when it is due
//! or when the interrupter asks, and stopping at a per-process step limit with the state saved.
//!
//! What a step is stays the caller's: a fine-tuning step or a pre-training update. The saved state
//! is the caller's type ([`SavedState`]); its tensors are the optimiser's, written by
//! [`optim::save_run_state`] (`<prefix>-<step>.safetensors`, committed by `state.json`).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::interrupt::Interrupter;
use crate::optim::{self, AdamW};

/// Training runs (fine-tuning or pre-training) in one process take turns: dropout draws from
/// torch's process-wide generator, reseeded every step.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A run's resumable state as its loop keeps it: the session reads its step and seconds, and
/// stamps both into what it saves.
pub trait SavedState: Clone + Serialize + DeserializeOwned {
    /// Steps (or updates) done.
    fn step(&self) -> usize;
    /// Seconds spent on the run up to this state, over every process.
    fn elapsed_s(&self) -> f64;
    /// The file of the run folder that holds this state's tensors.
    fn tensors_file(&self) -> &str;
    /// This state as saved after `elapsed_s` seconds, its tensors in `tensors_file`.
    fn saved(&self, elapsed_s: f64, tensors_file: String) -> Self;
}

/// What the loop does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Go on with the next step.
    Continue,
    /// The interrupter asked the run to stop; its state is saved when it has a folder.
    Interrupted,
}

/// One process's part of a run: its turn, its clock and its limits.
pub struct Session<'a> {
    dir: Option<&'a Path>,
    prefix: &'static str,
    max_steps_this_process: Option<usize>,
    interrupter: &'a Interrupter,
    started: Instant,
    elapsed_before: f64,
    steps_before: usize,
    _turn: MutexGuard<'static, ()>,
}

impl<'a> Session<'a> {
    /// Waits for this process's turn and starts the clock. `dir` is the run folder (none: nothing
    /// is saved or resumed), `prefix` names its tensor files.
    pub fn begin(
        dir: Option<&'a Path>,
        prefix: &'static str,
        max_steps_this_process: Option<usize>,
        interrupter: &'a Interrupter,
    ) -> Session<'a> {
        let turn = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        Session {
            dir,
            prefix,
            max_steps_this_process,
            interrupter,
            started: Instant::now(),
            elapsed_before: 0.0,
            steps_before: 0,
            _turn: turn,
        }
    }

    /// The state saved in the run folder, its tensors and moments read into `optimiser`, or
    /// `fresh()` when there is none; `true` when resumed. `check` says why a saved state belongs
    /// to another run (an error naming the folder).
    pub fn resume<S: SavedState>(
        &mut self,
        optimiser: &mut AdamW,
        check: impl FnOnce(&S) -> Result<(), String>,
        fresh: impl FnOnce() -> S,
    ) -> Result<(S, bool), Error> {
        let saved = match self.dir {
            Some(dir) => optim::load_run_state(dir, optimiser, |state: &S| state.tensors_file().to_owned(), check)?,
            None => None,
        };
        let resumed = saved.is_some();
        let state = saved.unwrap_or_else(fresh);
        self.elapsed_before = state.elapsed_s();
        self.steps_before = state.step();
        Ok((state, resumed))
    }

    /// Whether this process has done its share of steps (the state at `step` is to be saved and
    /// the run stopped).
    pub fn limit_reached(&self, step: usize) -> bool {
        self.max_steps_this_process.is_some_and(|max| step - self.steps_before >= max)
    }

    /// Steps done by this process when the run is at `step`.
    pub fn steps_this_process(&self, step: usize) -> usize {
        step - self.steps_before
    }

    /// Seconds spent on the run, over every process.
    pub fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    /// Seconds spent by this process.
    pub fn elapsed_this_process_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Saves `state` with the optimiser's tensors and moments (nothing without a run folder).
    pub fn save<S: SavedState>(&self, optimiser: &AdamW, state: &S) -> Result<(), Error> {
        let Some(dir) = self.dir else { return Ok(()) };
        let elapsed_s = self.elapsed_s();
        optim::save_run_state(dir, self.prefix, optimiser, state.step(), |tensors_file| {
            state.saved(elapsed_s, tensors_file)
        })
    }

    /// After a step: saves the state when `due` or when the interrupter asks to stop, and says
    /// whether to go on.
    pub fn end_step<S: SavedState>(&self, optimiser: &AdamW, state: &S, due: bool) -> Result<Next, Error> {
        let interrupted = self.interrupter.is_requested();
        if due || interrupted {
            self.save(optimiser, state)?;
        }
        Ok(if interrupted { Next::Interrupted } else { Next::Continue })
    }

    /// Whether a stopped run's state is kept (it has a run folder).
    pub fn saves(&self) -> bool {
        self.dir.is_some()
    }
}
