//! `bench-suite finetune`: flags into a `FinetuneRequest`, a progress bar, the result as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_suite::Error;
use bench_suite::finetune::{FinetuneRequest, finetune};
use bench_suite::settings::TrainingSpec;
use results::{Compat, LambdaGrouping, Mode, Scope};
use trainer::interrupt::Interrupter;
use trainer::train::StepReport;

/// One fine-tuning run (the defaults are the paper's setup, `results::Training::PAPER`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A checkpoint of the manifest by its asset id (e.g. FacebookAI/roberta-base), a hub
    /// checkpoint pinned by commit (org/name@<40 hex>), a local HF-format folder (config.json,
    /// model.safetensors or pytorch_model.bin, tokenizer.json or BERT's vocab.txt) by a path
    /// starting with ./, ../ or /, or a synthetic model (synthetic/tiny-bert, with --task
    /// synthetic).
    #[arg(long, value_name = "ASSET|FOLDER")]
    model: String,
    /// A task of the manifest (mrpc, qqp, sst2, mnli, anli, yelp_polarity), or a task file
    /// (.yaml: train/dev files, text and label columns; see the README).
    #[arg(long, value_name = "NAME|FILE")]
    task: String,
    /// Full fine-tuning, DID (theta_0 + P theta_d), SAID (per-group scaled), or the task head alone
    /// (head_only: the encoder frozen at theta_0).
    #[arg(long, value_enum)]
    mode: Mode,
    /// The subspace dimension (DID and SAID).
    #[arg(long, default_value_t = 0)]
    d: usize,
    /// The learning rate [default: 2e-5 for full, 0.3 for DID and SAID, 1e-3 for head_only].
    #[arg(long, value_name = "X")]
    lr: Option<f64>,
    /// The Fastfood map's scope (DID and SAID) [default: global; per_tensor with --compat
    /// aghajanyan].
    #[arg(long, value_enum)]
    scope: Option<Scope>,
    /// `aghajanyan`: the authors' code, defects included.
    #[arg(long, value_enum, default_value_t = Compat::None)]
    compat: Compat,
    /// SAID's scale grouping [default: per_layer; per_tensor with --compat aghajanyan].
    #[arg(long, value_enum)]
    grouping: Option<LambdaGrouping>,
    /// The training settings a spec's `training:` also takes.
    #[command(flatten)]
    training: TrainingSpec,
    /// Every seed of the run: data order, dropout, the fresh head, the projection.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Save the run's state here, and resume from what is here.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// A read-only folder to take assets from before the network (repeatable).
    #[arg(long, value_name = "DIR")]
    mirror: Vec<PathBuf>,
    /// Never touch the network.
    #[arg(long)]
    offline: bool,
}

impl Args {
    fn request(self) -> FinetuneRequest {
        let mut request = FinetuneRequest::new(&self.model, &self.task, self.mode, self.d);
        request.lr = self.lr;
        request.scope = self.scope;
        request.compat = self.compat;
        request.grouping = self.grouping;
        request.training = self.training;
        request.seed = self.seed;
        request.device = self.device;
        request.run_dir = self.run_dir;
        request.mirrors = self.mirror;
        request.offline = self.offline;
        request
    }
}

/// The library names a setting by its field (`batch_size`); on the command line it is a flag.
fn flag_error(err: Error) -> anyhow::Error {
    match err {
        Error::Value { setting, value, message } => {
            anyhow::anyhow!("--{} {value}: {message}", setting.replace('_', "-"))
        }
        other => other.into(),
    }
}

pub fn run(args: Args, interrupter: &Interrupter) -> Result<()> {
    let request = args.request();
    let bars = indicatif::MultiProgress::new();
    crate::logging::draw_above(&bars);
    let progress = bars.add(indicatif::ProgressBar::new(0));
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} steps {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    let output = finetune(
        &request,
        interrupter,
        &mut |report| {
            eprintln!(
                "loaded {} tensors; initialised {} (seed {}); unused: {}",
                report.loaded,
                report.initialised.join(", "),
                request.seed,
                if report.unused.is_empty() { "none".to_owned() } else { report.unused.join(", ") }
            )
        },
        &mut |step: StepReport| {
            progress.set_length(step.total_steps as u64);
            progress.set_position(step.step as u64);
            progress.set_message(format!("loss {:.4} lr {:.2e}", step.loss, step.lr));
        },
    )
    .map_err(flag_error)
    .with_context(|| format!("fine-tune {} on {}", request.model, request.task))?;
    progress.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
