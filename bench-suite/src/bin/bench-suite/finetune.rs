//! `bench-suite finetune`: flags into a `FinetuneRequest`, a progress bar, the result as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_suite::finetune::{FinetuneRequest, finetune};
use bench_suite::train::StepReport;
use results::{Compat, LambdaGrouping, Mode, Precision, Scope};

/// One fine-tuning run (the defaults are the paper's setup, as `TrainConfig::new`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A checkpoint of the manifest by its asset id (e.g. FacebookAI/roberta-base), a hub
    /// checkpoint pinned by commit (org/name@<40 hex>), a local HF-format folder (config.json,
    /// model.safetensors or pytorch_model.bin, tokenizer.json or BERT's vocab.txt) by a path
    /// starting with ./, ../ or /, or a synthetic
    /// model (synthetic/tiny-bert, with --task synthetic).
    #[arg(long, value_name = "ASSET|FOLDER")]
    model: String,
    /// A task of the manifest (mrpc, qqp, sst2, mnli, anli, yelp_polarity), or a task file
    /// (.yaml: train/dev files, text and label columns; see the README).
    #[arg(long, value_name = "NAME|FILE")]
    task: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// The subspace dimension (DID and SAID).
    #[arg(long, default_value_t = defaults().d)]
    d: usize,
    /// The learning rate [default: the mode's, see `finetune`].
    #[arg(long, value_name = "X")]
    lr: Option<f64>,
    #[arg(long, default_value_t = defaults().epochs)]
    epochs: usize,
    #[arg(long, default_value_t = defaults().batch_size)]
    batch_size: usize,
    /// Tokens per example after truncation.
    #[arg(long, default_value_t = defaults().max_len)]
    max_len: usize,
    /// Train on a seeded subset of this many examples.
    #[arg(long, value_name = "N")]
    max_train_examples: Option<usize>,
    /// Length-bucketed batches: chunks of this many batches sorted by length.
    #[arg(long, value_name = "N")]
    length_buckets: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value_t = defaults().device)]
    device: String,
    #[arg(long, default_value_t = defaults().seed)]
    seed: u64,
    /// The Fastfood map's scope (DID and SAID).
    #[arg(long, value_enum, default_value_t = defaults().scope)]
    scope: Scope,
    /// `aghajanyan`: the authors' code, defects included.
    #[arg(long, value_enum, default_value_t = defaults().compat)]
    compat: Compat,
    /// SAID's scale grouping [default: per_layer; per_tensor with --compat aghajanyan].
    #[arg(long, value_enum)]
    grouping: Option<LambdaGrouping>,
    #[arg(long, value_enum, default_value_t = defaults().precision)]
    precision: Precision,
    /// Checkpoint here, and resume from what is here.
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// A read-only folder to take assets from before the network (repeatable).
    #[arg(long, value_name = "DIR")]
    mirror: Vec<PathBuf>,
    /// Never touch the network.
    #[arg(long)]
    offline: bool,
}

/// The request's own defaults (the paper's setup), which `--help` shows: written once, in
/// [`FinetuneRequest::new`].
fn defaults() -> FinetuneRequest {
    FinetuneRequest::new("", "sst2", Mode::Full, 0)
}

impl Args {
    fn request(self) -> FinetuneRequest {
        let mut request = FinetuneRequest::new(&self.model, &self.task, self.mode, self.d);
        request.lr = self.lr;
        request.epochs = self.epochs;
        request.batch_size = self.batch_size;
        request.max_len = self.max_len;
        request.max_train_examples = self.max_train_examples;
        request.length_buckets = self.length_buckets;
        request.device = self.device;
        request.seed = self.seed;
        request.scope = self.scope;
        request.compat = self.compat;
        request.grouping = self.grouping;
        request.precision = self.precision;
        request.run_dir = self.run_dir;
        request.mirrors = self.mirror;
        request.offline = self.offline;
        request
    }
}

pub fn run(args: Args) -> Result<()> {
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
    .with_context(|| format!("fine-tune {} on {}", request.model, request.task))?;
    progress.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
