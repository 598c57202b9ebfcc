//! What fine-tuning and pre-training share: AdamW, the linear schedule with warmup, global-norm
//! clipping, and the run folder's saved state with one commit point.
//!
//! AdamW is `torch.optim.AdamW` (decoupled weight decay `theta -= lr * wd * theta` before the
//! Adam update, bias-corrected moments); fine-tuning uses its defaults (betas 0.9/0.999, eps 1e-8),
//! RoBERTa's pre-training 0.9/0.98 and 1e-6 (Liu et al. 2019, section 3.1).
//!
//! A saved run state is the optimiser's tensors and moments in a file named by the step, then a JSON
//! state naming that file, renamed into place: a process killed at any moment leaves the previous
//! saved state or this one, never one step's tensors with another step's state.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tch::{Device, Kind, Tensor};

use crate::Error;

/// AdamW's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Decay rate of the first moment (the gradient's running mean).
    pub beta1: f64,
    /// Decay rate of the second moment (the squared gradient's running mean).
    pub beta2: f64,
    /// Added to the second moment's square root in the denominator, for stability.
    pub eps: f64,
}

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults, which HF's `Trainer` uses for fine-tuning.
    pub const TORCH: AdamConfig = AdamConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    /// RoBERTa's pre-training (Liu et al. 2019, section 3.1: beta2 0.98 for stability with large
    /// batches, eps 1e-6).
    pub const ROBERTA: AdamConfig = AdamConfig { beta1: 0.9, beta2: 0.98, eps: 1e-6 };
}

/// The tensors an optimiser updates, with their decay flags, learning-rate factors and Adam
/// moments.
pub struct AdamW {
    /// The tensors updated in place: shallow clones of a model's variables, or copies of a
    /// subspace's `theta` and `lambda` (which the trainer writes back after every step).
    pub tensors: Vec<Tensor>,
    decay: Vec<bool>,
    /// Multiplies the step's learning rate for each tensor (SAID's scales may have their own).
    lr_factors: Vec<f64>,
    first_moment: Vec<Tensor>,
    second_moment: Vec<Tensor>,
    config: AdamConfig,
}

impl AdamW {
    /// `tensors` are updated in place (pass shallow clones of a model's variables to train them).
    pub fn new(tensors: Vec<Tensor>, decay: Vec<bool>, lr_factors: Vec<f64>, config: AdamConfig) -> AdamW {
        let zeros = |tensors: &[Tensor]| tensors.iter().map(Tensor::zeros_like).collect();
        AdamW { first_moment: zeros(&tensors), second_moment: zeros(&tensors), tensors, decay, lr_factors, config }
    }

    /// The number of elements the optimiser updates.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }

    /// One AdamW step with gradients `grads` (one per tensor); `step` counts from 1. A tensor whose
    /// gradient is undefined (the loss does not reach it, as XLNet's query-stream `mask_emb` in
    /// classification) is left as it is, moments and decay included, as `torch.optim.AdamW` skips a
    /// parameter whose `grad` is None.
    pub fn step(&mut self, grads: &[Tensor], lr: f64, weight_decay: f64, step: usize) {
        let _guard = tch::no_grad_guard();
        let AdamConfig { beta1, beta2, eps } = self.config;
        let bias1 = 1.0 - beta1.powi(step as i32);
        let bias2 = 1.0 - beta2.powi(step as i32);
        let moments = self.first_moment.iter_mut().zip(self.second_moment.iter_mut());
        for ((((tensor, grad), &decay), (first, second)), &factor) in
            self.tensors.iter_mut().zip(grads).zip(&self.decay).zip(moments).zip(&self.lr_factors)
        {
            if !grad.defined() {
                continue;
            }
            let lr = lr * factor;
            if decay && weight_decay > 0.0 {
                let _ = tensor.g_mul_scalar_(1.0 - lr * weight_decay);
            }
            let _ = first.g_mul_scalar_(beta1);
            let _ = first.g_add_(&(grad * (1.0 - beta1)));
            let _ = second.g_mul_scalar_(beta2);
            let _ = second.g_add_(&(grad * grad * (1.0 - beta2)));
            let denominator = (&*second / bias2).sqrt() + eps;
            let update = (&*first / denominator) * (lr / bias1);
            let _ = tensor.g_sub_(&update);
        }
    }
}

/// Scales `grads` in place so that their global norm is at most `max_norm` (no clipping when
/// `max_norm` is 0); returns the norm before clipping. Undefined gradients (tensors the loss does
/// not reach) are left out, as `torch.nn.utils.clip_grad_norm_` leaves out a None `grad`.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> f64 {
    let total: f64 = grads
        .iter()
        .filter(|grad| grad.defined())
        .map(|grad| grad.square().sum(Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt();
    if max_norm > 0.0 && total > max_norm {
        let scale = max_norm / (total + 1e-6);
        for grad in grads.iter_mut().filter(|grad| grad.defined()) {
            *grad = &*grad * scale;
        }
    }
    total
}

/// HF's `get_linear_schedule_with_warmup` (and fairseq's `polynomial_decay` with power 1): the
/// learning rate of step `step` (from 0), rising linearly from 0 to `lr` over `warmup_steps`,
/// then falling linearly to 0 at `total_steps`.
pub fn linear_schedule(lr: f64, step: usize, total_steps: usize, warmup_steps: usize) -> f64 {
    if step < warmup_steps {
        return lr * step as f64 / warmup_steps.max(1) as f64;
    }
    lr * (total_steps.saturating_sub(step)) as f64 / (total_steps.saturating_sub(warmup_steps)).max(1) as f64
}

/// Saves a run state with one commit point: the optimiser's tensors and moments go to a file
/// named by the step (`<prefix>-<step>.safetensors`, written under a temporary name and
/// renamed), then `state.json`, made by `state` from that file's name, is renamed into place.
/// Tensor files that no committed state names are removed afterwards (and by the next save, if
/// the process dies first). Both files are synced before the rename that commits them, so a power
/// loss cannot leave a committed state naming a file whose data never reached the disk.
pub fn save_run_state<S: Serialize>(
    dir: &Path,
    prefix: &str,
    optimizer: &AdamW,
    step: usize,
    state: impl FnOnce(String) -> S,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|err| Error::run_state(dir, err))?;
    let mut named = Vec::new();
    for (idx, ((tensor, first), second)) in
        optimizer.tensors.iter().zip(&optimizer.first_moment).zip(&optimizer.second_moment).enumerate()
    {
        named.push((format!("{idx}.value"), tensor.to_device(Device::Cpu)));
        named.push((format!("{idx}.m"), first.to_device(Device::Cpu)));
        named.push((format!("{idx}.v"), second.to_device(Device::Cpu)));
    }
    let tensors_file = format!("{prefix}-{step}.safetensors");
    let tensors_path = dir.join(&tensors_file);
    let partial = dir.join(format!("{tensors_file}.partial"));
    Tensor::write_safetensors(&named, &partial).map_err(|err| Error::run_state(&partial, err))?;
    std::fs::File::open(&partial).and_then(|file| file.sync_all()).map_err(|err| Error::run_state(&partial, err))?;
    std::fs::rename(&partial, &tensors_path).map_err(|err| Error::run_state(&tensors_path, err))?;
    // The commit point: `state.json`, naming the tensors file, replaced whole (synced, renamed).
    results::write_atomically(&dir.join("state.json"), &state(tensors_file.clone()))
        .map_err(|err| Error::run_state(&err.path, err.source))?;
    let entries = std::fs::read_dir(dir).map_err(|err| Error::run_state(dir, err))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_tensors_file(prefix, &name) && name != tensors_file {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// A run-state tensor file of `prefix`: `<prefix>-<step>.safetensors`, its `.partial`, or the
/// single `<prefix>.safetensors` of states saved before files were named by step.
fn is_tensors_file(prefix: &str, name: &str) -> bool {
    let name = name.strip_suffix(".partial").unwrap_or(name);
    let Some(rest) = name.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(".safetensors")) else {
        return false;
    };
    rest.is_empty()
        || rest.strip_prefix('-').is_some_and(|step| !step.is_empty() && step.bytes().all(|byte| byte.is_ascii_digit()))
}

/// Reads the saved run state of `dir`, if it has one: its state (checked by `check`, which says why a
/// state belongs to another run) and, into `optimizer`, the tensors and moments of the file the
/// state names (`tensors_file`).
pub fn load_run_state<S: DeserializeOwned>(
    dir: &Path,
    optimizer: &mut AdamW,
    tensors_file: impl FnOnce(&S) -> String,
    check: impl FnOnce(&S) -> Result<(), String>,
) -> Result<Option<S>, Error> {
    let state_path = dir.join("state.json");
    let Ok(text) = std::fs::read_to_string(&state_path) else { return Ok(None) };
    let state: S = serde_json::from_str(&text).map_err(|err| Error::run_state(&state_path, err))?;
    check(&state).map_err(|message| Error::run_state(&state_path, message))?;
    let tensors_path = dir.join(tensors_file(&state));
    let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(&tensors_path)
        .map_err(|err| Error::run_state(&tensors_path, err))?
        .into_iter()
        .collect();
    let _guard = tch::no_grad_guard();
    for idx in 0..optimizer.tensors.len() {
        for (suffix, target) in [
            ("value", &mut optimizer.tensors[idx]),
            ("m", &mut optimizer.first_moment[idx]),
            ("v", &mut optimizer.second_moment[idx]),
        ] {
            let name = format!("{idx}.{suffix}");
            let tensor =
                saved.get(&name).ok_or_else(|| Error::run_state(&tensors_path, format!("no tensor `{name}`")))?;
            if tensor.size() != target.size() {
                return Err(Error::run_state(
                    &tensors_path,
                    format!("`{name}` has shape {:?}, expected {:?}", tensor.size(), target.size()),
                ));
            }
            target.copy_(&tensor.to_device(target.device()));
        }
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_files_are_recognised_by_prefix_and_step() {
        for (name, expected) in [
            ("trainable-12.safetensors", true),
            ("trainable-12.safetensors.partial", true),
            ("trainable.safetensors", true),
            ("trainable-.safetensors", false),
            ("trainable-1a.safetensors", false),
            ("model-12.safetensors", false),
            ("state.json", false),
        ] {
            assert_eq!(is_tensors_file("trainable", name), expected, "{name}");
        }
    }

    #[test]
    fn the_schedule_warms_up_then_decays_to_zero() {
        let rates: Vec<f64> = (0..=10).map(|step| linear_schedule(1.0, step, 10, 4)).collect();
        assert_eq!(rates[..5], [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(rates[10], 0.0);
        assert!((rates[7] - 0.5).abs() < 1e-12);
    }
}
