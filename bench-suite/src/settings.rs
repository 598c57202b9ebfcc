//! Training settings as a user gives them, declared once: [`TrainingSpec`] is at the same time a
//! spec's `training:` map (top level and per experiment, serde) and `finetune`'s command-line
//! flags (clap, `--batch-size` for `batch_size`); its field docs are both the spec's and
//! `--help`'s. Every field is optional: [`TrainingSpec::resolve`] fills the paper's defaults
//! ([`results::Training::PAPER`], the one place they are written) and checks every value, once,
//! into the keyed [`Training`] of the `results` schema. An error names the field
//! ([`FieldError`]); a spec turns it into a YAML path and line, the command line into a flag.
//!
//! The shape follows HF `TrainingArguments` read by `HfArgumentParser` (one dataclass for the
//! command line and the file) and rust-analyzer's `config_data!` (a field list from which the
//! layered merge is generated).

use serde::{Deserialize, Serialize};

use results::{Precision, Training};

/// A setting that cannot be used, by its field name (`batch_size`); the caller knows whether it
/// came from a spec (`training.batch_size` at a line) or a flag (`--batch-size`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {value}: {message}")]
pub struct FieldError {
    /// The field's name, as the spec spells it.
    pub field: &'static str,
    /// The value given, as text.
    pub value: String,
    /// What is wrong and what to use instead.
    pub message: String,
}

/// Declares [`TrainingSpec`] from one list of fields, with the merge and the "was it set" lookup
/// generated from the same list, so a new knob is one entry here and one line of `resolve`.
macro_rules! training_spec {
    ($($(#[$attr:meta])* $field:ident: $ty:ty,)*) => {
        /// Training settings a spec or a command line gives; absent fields take the experiment's,
        /// then the spec's, then the paper's ([`Training::PAPER`]).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct TrainingSpec {
            $($(#[$attr])* #[arg(long)] pub $field: Option<$ty>,)*
        }

        impl TrainingSpec {
            /// The field names, as a spec spells them.
            pub const FIELDS: &[&str] = &[$(stringify!($field)),*];

            /// These settings over `base`: each field this one sets, else `base`'s.
            pub fn or(&self, base: &TrainingSpec) -> TrainingSpec {
                TrainingSpec { $($field: self.$field.or(base.$field)),* }
            }

            /// The paper's value of the field named `field` as `--help` shows it; `None` where
            /// absence has a meaning of its own, which the field's doc gives.
            pub fn paper_default(field: &str) -> Option<String> {
                match field {
                    $(stringify!($field) => Training::PAPER.$field.shown(),)*
                    _ => None,
                }
            }

            /// Whether this layer sets the field named `field`.
            pub fn is_set(&self, field: &str) -> bool {
                match field {
                    $(stringify!($field) => self.$field.is_some(),)*
                    _ => false,
                }
            }
        }
    };
}

training_spec! {
    /// Epochs over the training split.
    epochs: usize,
    /// Examples per batch.
    batch_size: usize,
    /// Tokens per example after truncation.
    max_len: usize,
    /// Train on a seeded random subset of this many examples, the same for every run
    /// [default: the whole split].
    max_train_examples: usize,
    /// The fraction of the steps over which the learning rate warms up linearly.
    warmup_ratio: f64,
    /// AdamW's decoupled weight decay, not applied to biases and norms.
    weight_decay: f64,
    /// Clip the gradient's global norm to this.
    max_grad_norm: f64,
    /// Evaluate every this many steps as well as at the end of every epoch [default: epochs only].
    eval_every: usize,
    /// Save the run's state every this many steps, so a killed run resumes from it.
    checkpoint_every: usize,
    /// `f32`, `bf16` autocast for the encoder (weights, optimiser and projection stay f32), or
    /// `auto`: bf16 where the device has bf16 units (a CPU with AVX-512 BF16, a CUDA device),
    /// f32 elsewhere (on other CPUs bf16 is emulated and about ten times slower than f32).
    #[arg(value_enum)]
    precision: PrecisionChoice,
    /// Length-bucketed batches: sort by length within chunks of this many batches, then shuffle
    /// the batches; 0 for plain shuffled batches.
    length_buckets: usize,
    /// Training accuracy for the generalization gap on the first this many training examples, 0
    /// for none [default: all of them].
    train_eval_examples: usize,
}

/// The precision a spec or `--precision` asks for: one of [`Precision`]'s, or `auto`, which
/// [`TrainingSpec::resolve`] turns into one for the device (the key records the one chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PrecisionChoice {
    /// Everything in f32.
    #[value(alias = "fp32")]
    F32,
    /// bf16 autocast for the encoder.
    Bf16,
    /// bf16 where [`native_bf16`] says the device computes in it, f32 elsewhere.
    Auto,
}

impl PrecisionChoice {
    /// The precision runs on `device` (`cpu`, `cuda`, `cuda:N`) use.
    pub fn on(self, device: &str) -> Precision {
        match self {
            PrecisionChoice::F32 => Precision::F32,
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Auto if native_bf16(device) => Precision::Bf16,
            PrecisionChoice::Auto => Precision::F32,
        }
    }
}

/// Whether `device` has bf16 arithmetic units, so that bf16 autocast is faster than f32: an
/// x86-64 CPU with AVX-512 BF16 (Intel Cooper Lake and Sapphire Rapids on, whose AMX also implies
/// it; AMD Zen 4 on), or a CUDA device (every GPU since Ampere, sm_80; on an older one set the
/// precision explicitly). Other CPUs emulate bf16 matrix products: measured on a 2-core AMD EPYC
/// (Zen 3, AVX2) a SAID run of quick took 681 s in bf16 against 64 s in f32.
pub fn native_bf16(device: &str) -> bool {
    if device.starts_with("cuda") {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How `--help` shows a default of [`Training::PAPER`].
trait Shown {
    fn shown(&self) -> Option<String>;
}

impl Shown for usize {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Shown for f64 {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Shown for Precision {
    fn shown(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> Option<String> {
        self.as_ref().and_then(Shown::shown)
    }
}

impl TrainingSpec {
    /// The settings with the paper's defaults filled in and every value checked, with the
    /// training subset drawn by `subset_seed`. Counts are at least 1, the warmup ratio and the
    /// weight decay lie in [0, 1], the clipping norm is non-negative and finite. `device` is
    /// where the runs train (`cpu`, `cuda`, `cuda:N`), for `precision: auto`.
    pub fn resolve(&self, subset_seed: u64, device: &str) -> Result<Training, FieldError> {
        let paper = Training::PAPER;
        let count = |field: &'static str, value: Option<usize>, what: &str| -> Result<Option<usize>, FieldError> {
            match value {
                Some(0) => Err(FieldError { field, value: "0".to_owned(), message: format!("{what}; use 1 or more") }),
                value => Ok(value),
            }
        };
        let within = |field: &'static str, value: Option<f64>, max: f64| -> Result<Option<f64>, FieldError> {
            match value {
                Some(value) if !(value.is_finite() && (0.0..=max).contains(&value)) => Err(FieldError {
                    field,
                    value: value.to_string(),
                    message: format!(
                        "is outside [0, {}]",
                        if max == f64::MAX { "inf)".to_owned() } else { max.to_string() }
                    ),
                }),
                value => Ok(value),
            }
        };
        Ok(Training {
            epochs: count("epochs", self.epochs, "training needs at least 1 epoch")?.unwrap_or(paper.epochs),
            batch_size: count("batch_size", self.batch_size, "a batch holds at least 1 example")?
                .unwrap_or(paper.batch_size),
            max_len: count("max_len", self.max_len, "an example keeps at least 1 token")?.unwrap_or(paper.max_len),
            max_train_examples: count(
                "max_train_examples",
                self.max_train_examples,
                "training needs at least 1 example",
            )?
            .or(paper.max_train_examples),
            subset_seed,
            warmup_ratio: within("warmup_ratio", self.warmup_ratio, 1.0)?.unwrap_or(paper.warmup_ratio),
            weight_decay: within("weight_decay", self.weight_decay, 1.0)?.unwrap_or(paper.weight_decay),
            max_grad_norm: within("max_grad_norm", self.max_grad_norm, f64::MAX)?.unwrap_or(paper.max_grad_norm),
            eval_every: count("eval_every", self.eval_every, "evaluations are at least 1 step apart")?
                .or(paper.eval_every),
            checkpoint_every: count("checkpoint_every", self.checkpoint_every, "saves are at least 1 step apart")?
                .unwrap_or(paper.checkpoint_every),
            precision: self.precision.map_or(paper.precision, |choice| choice.on(device)),
            // 0 turns bucketing off.
            length_buckets: match self.length_buckets {
                Some(0) => None,
                Some(buckets) => Some(buckets),
                None => paper.length_buckets,
            },
            train_eval_examples: self.train_eval_examples.or(paper.train_eval_examples),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_is_the_papers_setup() {
        assert_eq!(TrainingSpec::default().resolve(0, "cpu").unwrap(), Training::PAPER);
    }

    #[test]
    fn length_buckets_are_on_by_default_and_0_turns_them_off() {
        assert_eq!(TrainingSpec::default().resolve(0, "cpu").unwrap().length_buckets, Some(16));
        let off = TrainingSpec { length_buckets: Some(0), ..Default::default() };
        assert_eq!(off.resolve(0, "cpu").unwrap().length_buckets, None);
        let four = TrainingSpec { length_buckets: Some(4), ..Default::default() };
        assert_eq!(four.resolve(0, "cpu").unwrap().length_buckets, Some(4));
    }

    #[test]
    fn the_nearer_layer_wins_field_by_field() {
        let base = TrainingSpec { epochs: Some(2), batch_size: Some(8), ..TrainingSpec::default() };
        let own = TrainingSpec { epochs: Some(5), ..TrainingSpec::default() };
        let merged = own.or(&base);
        assert_eq!((merged.epochs, merged.batch_size), (Some(5), Some(8)));
        assert!(own.is_set("epochs") && !own.is_set("batch_size") && !own.is_set("no_such_field"));
        for field in TrainingSpec::FIELDS {
            assert!(!TrainingSpec::default().is_set(field), "{field}");
        }
    }

    #[test]
    fn help_shows_the_papers_values() {
        assert_eq!(TrainingSpec::paper_default("batch_size").as_deref(), Some("32"));
        assert_eq!(TrainingSpec::paper_default("warmup_ratio").as_deref(), Some("0.06"));
        assert_eq!(TrainingSpec::paper_default("precision").as_deref(), Some("f32"));
        assert_eq!(TrainingSpec::paper_default("max_train_examples"), None);
    }

    #[test]
    fn auto_precision_is_bf16_only_where_the_device_computes_in_it() {
        let auto = TrainingSpec { precision: Some(PrecisionChoice::Auto), ..Default::default() };
        let cpu = if native_bf16("cpu") { Precision::Bf16 } else { Precision::F32 };
        assert_eq!(auto.resolve(0, "cpu").unwrap().precision, cpu);
        assert_eq!(auto.resolve(0, "cuda:1").unwrap().precision, Precision::Bf16);
        for (choice, precision) in [(PrecisionChoice::F32, Precision::F32), (PrecisionChoice::Bf16, Precision::Bf16)] {
            let spec = TrainingSpec { precision: Some(choice), ..Default::default() };
            assert_eq!(spec.resolve(0, "cpu").unwrap().precision, precision);
            assert_eq!(spec.resolve(0, "cuda").unwrap().precision, precision);
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            native_bf16("cpu"),
            std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| info
                .lines()
                .find(|line| line.starts_with("flags"))
                .is_some_and(|flags| flags.split_whitespace().any(|flag| flag == "avx512_bf16")))
        );
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let refused = |spec: TrainingSpec, field: &str, message: &str| {
            let err = spec.resolve(0, "cpu").unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.to_string().contains(message), "{err}");
        };
        refused(TrainingSpec { batch_size: Some(0), ..Default::default() }, "batch_size", "batch_size 0: a batch");
        refused(TrainingSpec { epochs: Some(0), ..Default::default() }, "epochs", "use 1 or more");
        refused(TrainingSpec { warmup_ratio: Some(1.5), ..Default::default() }, "warmup_ratio", "outside [0, 1]");
        refused(TrainingSpec { weight_decay: Some(f64::NAN), ..Default::default() }, "weight_decay", "outside");
        refused(TrainingSpec { max_grad_norm: Some(-1.0), ..Default::default() }, "max_grad_norm", "outside [0, inf)");
        refused(TrainingSpec { checkpoint_every: Some(0), ..Default::default() }, "checkpoint_every", "at least 1");
    }
}
