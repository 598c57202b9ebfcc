//! `bench-suite bench-train-step`: the time of a SAID and a DID training step against a full
//! fine-tuning step, measured in one process on the same model and batches; and the peak resident
//! memory of a short run of each mode, each in a fresh child process (within one process, memory
//! freed by one mode stays resident and would flatter the next).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use encoders::checkpoint;
use encoders::models::{Config, SequenceClassifier};
use results::{Mode, Precision, TrainConfig};
use serde::Serialize;
use subspace::device::parse_device;
use subspace::random;
use tch::{Device, nn};
use trainer::interrupt::Interrupter;
use trainer::tokenize::Encoded;
use trainer::train::{LabelledExample, TrainData, train};

use crate::measure::{median, peak_rss};

/// The models the benchmark knows: the real MiniLM-L6 checkpoint, a randomly initialised
/// RoBERTa-base, a tiny random encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchModel {
    Minilm,
    RobertaBaseRandom,
    TinyRandom,
}

/// Every mode's training step on one model and the same batches.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value_t = BenchModel::Minilm)]
    pub model: BenchModel,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Tokens per sequence (random full-length sequences).
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Steps timed after two warm-up steps.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// The subspace dimension of the SAID and DID steps.
    #[arg(long, default_value_t = 1000)]
    pub d: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Also time the SAID and DID steps with the Fastfood engines `tch_ops` and `anchor` (the
    /// authors' per-stage FWHT) besides the device's default (`fused` on CUDA).
    #[arg(long)]
    pub compare_engines: bool,
    /// A read-only folder to take the checkpoint from before the network (repeatable).
    #[arg(long, value_name = "DIR")]
    pub mirror: Vec<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Internal: run three steps of this mode in this process and print its peak memory (the
    /// benchmark starts itself with it, one child per mode).
    #[arg(long, value_enum, hide = true)]
    pub memory_only: Option<Mode>,
}

impl Args {
    /// The flags that make a child process measure the same thing.
    fn child_flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--model".to_owned(),
            value_name(&self.model),
            "--batch".to_owned(),
            self.batch.to_string(),
            "--seq".to_owned(),
            self.seq.to_string(),
            "--steps".to_owned(),
            self.steps.to_string(),
            "--d".to_owned(),
            self.d.to_string(),
            "--device".to_owned(),
            self.device.clone(),
            "--precision".to_owned(),
            value_name(&self.precision),
        ];
        for mirror in &self.mirror {
            flags.extend(["--mirror".to_owned(), mirror.display().to_string()]);
        }
        flags
    }
}

#[derive(Serialize)]
pub struct ModeRow {
    mode: Mode,
    /// The Fastfood engine of subspace modes (`default`: the device's own).
    engine: String,
    d: usize,
    median_step_s: f64,
    step_over_full: f64,
    /// Peak memory of a child process running three steps of this mode: resident memory on the
    /// CPU; on CUDA the device memory in use (driver's view: what PyTorch's caching allocator
    /// reserved, so its peak) above what the process held before building the model.
    peak_rss_bytes: Option<u64>,
    memory_over_full: Option<f64>,
}

#[derive(Serialize)]
pub struct Report {
    pub device: String,
    pub precision: Precision,
    model: String,
    parameters: usize,
    batch: usize,
    seq_len: usize,
    steps_timed: usize,
    rows: Vec<ModeRow>,
}

struct Setup {
    config: Config,
    checkpoint: Option<PathBuf>,
}

impl Setup {
    fn model(&self, device: Device) -> Result<(nn::VarStore, SequenceClassifier)> {
        let vs = nn::VarStore::new(device);
        let model = SequenceClassifier::new(vs.root(), &self.config, 2);
        if let Some(path) = &self.checkpoint {
            let prefix = self.config.model_type.prefix();
            checkpoint::load(
                &vs,
                path,
                prefix,
                checkpoint::Head::IfPresent(&["classifier"]),
                0,
                self.config.initializer_range,
            )?;
        }
        Ok((vs, model))
    }
}

pub fn run(args: &Args) -> Result<()> {
    let Some(report) = measure(args)? else { return Ok(()) };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Measures (or, as the memory child, prints one peak and returns `None`).
pub fn measure(args: &Args) -> Result<Option<Report>> {
    let (batch, seq_len, steps, d, precision) = (args.batch, args.seq, args.steps, args.d, args.precision);
    let device = parse_device(&args.device)?;
    let setup = match args.model {
        BenchModel::Minilm => {
            let mut store_config = StoreConfig::from_env()?;
            store_config.mirrors.extend(args.mirror.iter().cloned());
            let store = Store::new(store_config, Manifest::embedded())?;
            let files = store.ensure("sentence-transformers/all-MiniLM-L6-v2")?;
            let config = Config::from_json(&std::fs::read_to_string(files.file("config.json"))?)?;
            Setup { config, checkpoint: Some(files.file("model.safetensors")) }
        }
        BenchModel::RobertaBaseRandom => Setup {
            config: Config::from_json(
                r#"{"model_type": "roberta", "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 514,
                    "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5}"#,
            )?,
            checkpoint: None,
        },
        BenchModel::TinyRandom => Setup { config: bench_suite::synthetic::tiny_config("roberta"), checkpoint: None },
    };
    let max_positions = (setup.config.max_position_embeddings - 2) as usize;
    if seq_len > max_positions {
        bail!("--seq {seq_len} exceeds the model's {max_positions} positions");
    }
    // Random full-length sequences: the same batches for every mode.
    let mut rng = random::keyed_rng("bench train step", 0, "tokens", 0);
    let vocab = setup.config.vocab_size as u64;
    let examples: Vec<LabelledExample> = (0..batch * (steps + 3))
        .map(|idx| {
            let ids: Vec<u32> = (0..seq_len).map(|_| 5 + random::bounded(&mut rng, vocab - 5) as u32).collect();
            LabelledExample { encoded: Encoded { type_ids: vec![0; ids.len()], ids }, label: idx % 2 }
        })
        .collect();
    let data =
        TrainData { train: &examples, dev: Vec::new(), with_f1: false, pad_id: setup.config.pad_token_id as u32 };
    let modes = [(Mode::Full, 0, 2e-5), (Mode::Said, d, 0.3), (Mode::Did, d, 0.3)];
    let train_config = |mode, mode_d, lr, max_steps| {
        let mut config = TrainConfig::new(mode, mode_d, lr);
        config.batch_size = batch;
        config.epochs = 1;
        // The run stops before its epoch (and any evaluation) ends.
        config.max_steps_this_process = Some(max_steps);
        config.precision = precision;
        config
    };

    if let Some(only) = args.memory_only {
        let &(mode, mode_d, lr) =
            modes.iter().find(|(mode, _, _)| *mode == only).context("--memory-only: a mode the benchmark runs")?;
        // On CUDA the device memory in use, sampled after every step, above what the process held
        // before building the model; on the CPU the peak resident memory.
        let cuda = match device {
            Device::Cuda(ordinal) => Some(ordinal),
            _ => None,
        };
        let before = cuda.map(subspace::cuda::memory_in_use).transpose().map_err(anyhow::Error::msg)?;
        let mut peak = before.unwrap_or(0);
        let (vs, model) = setup.model(device)?;
        train(&vs, &model, &data, &train_config(mode, mode_d, lr, 3), None, &Interrupter::default(), &mut |_| {
            if let Some(ordinal) = cuda {
                tch::Cuda::synchronize(ordinal as i64);
                peak = peak.max(subspace::cuda::memory_in_use(ordinal).unwrap_or(0));
            }
        })?;
        match before {
            Some(before) => println!("{}", peak - before),
            None => println!("{}", peak_rss().context("no VmHWM in /proc/self/status")?),
        }
        return Ok(None);
    }

    let mut rows: Vec<ModeRow> = Vec::new();
    let mut parameters = 0;
    // Median seconds of `steps` steps after two warm-up steps, and the model's parameter count.
    let time_steps = |mode, mode_d, lr| -> Result<(f64, usize)> {
        let (vs, model) = setup.model(device)?;
        let mut stamps = vec![Instant::now()];
        train(
            &vs,
            &model,
            &data,
            &train_config(mode, mode_d, lr, steps + 2),
            None,
            &Interrupter::default(),
            &mut |_| stamps.push(Instant::now()),
        )?;
        let step_times: Vec<Duration> = stamps.windows(2).skip(2).map(|pair| pair[1] - pair[0]).collect();
        Ok((median(&step_times).as_secs_f64(), vs.variables().values().map(|tensor| tensor.numel()).sum()))
    };
    for (mode, mode_d, lr) in modes {
        let median_step_s;
        (median_step_s, parameters) = time_steps(mode, mode_d, lr)?;

        let output = std::process::Command::new(std::env::current_exe()?)
            .arg("bench-train-step")
            .args(args.child_flags())
            .args(["--memory-only", &value_name(&mode)])
            .output()
            .context("run the memory child")?;
        if !output.status.success() {
            bail!("memory child for {mode:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        let peak_rss_bytes = String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().ok();
        let full = rows.first();
        let memory_over_full = match (full.map(|full| full.peak_rss_bytes), peak_rss_bytes) {
            (Some(Some(full)), Some(this)) => Some(this as f64 / full as f64),
            (None, Some(_)) => Some(1.0),
            _ => None,
        };
        rows.push(ModeRow {
            mode,
            engine: "default".to_owned(),
            d: mode_d,
            median_step_s,
            step_over_full: full.map_or(1.0, |full| median_step_s / full.median_step_s),
            peak_rss_bytes,
            memory_over_full,
        });
        eprintln!("{mode:?}: median step {median_step_s:.3} s, peak memory {peak_rss_bytes:?}");
    }
    if args.compare_engines {
        let full_s = rows[0].median_step_s;
        for engine in ["tch_ops", "anchor"] {
            // SAFETY: set before any thread of ours reads the environment concurrently (the
            // projector reads it when it is built, on this thread).
            unsafe { std::env::set_var(subspace::fastfood::ENGINE_ENV, engine) };
            for &(mode, mode_d, lr) in &modes[1..] {
                let (median_step_s, _) = time_steps(mode, mode_d, lr)?;
                eprintln!("{mode:?} with {engine}: median step {median_step_s:.3} s");
                rows.push(ModeRow {
                    mode,
                    engine: engine.to_owned(),
                    d: mode_d,
                    median_step_s,
                    step_over_full: median_step_s / full_s,
                    peak_rss_bytes: None,
                    memory_over_full: None,
                });
            }
        }
        // SAFETY: as above.
        unsafe { std::env::remove_var(subspace::fastfood::ENGINE_ENV) };
    }
    Ok(Some(Report {
        device: args.device.clone(),
        precision,
        model: value_name(&args.model),
        parameters,
        batch,
        seq_len,
        steps_timed: steps,
        rows,
    }))
}

/// The command-line spelling of a value.
pub fn value_name<T: ValueEnum>(value: &T) -> String {
    value.to_possible_value().expect("no skipped values").get_name().to_owned()
}

pub fn print_report(report: &Report) {
    println!(
        "train step, {} ({} parameters), batch {} x {} tokens, {} {:?}, median of {} steps after 2 warm-up",
        report.model,
        report.parameters,
        report.batch,
        report.seq_len,
        report.device,
        report.precision,
        report.steps_timed
    );
    println!(
        "{:>6} {:>8} {:>8} {:>12} {:>10} {:>14} {:>10}",
        "mode", "engine", "d", "step s", "/ full", "peak MiB", "/ full"
    );
    for row in &report.rows {
        let mib = |bytes: u64| format!("{:.0}", bytes as f64 / (1 << 20) as f64);
        println!(
            "{:>6} {:>8} {:>8} {:>12.3} {:>10.3} {:>14} {:>10}",
            format!("{:?}", row.mode),
            row.engine,
            row.d,
            row.median_step_s,
            row.step_over_full,
            row.peak_rss_bytes.map_or("n/a".to_owned(), mib),
            row.memory_over_full.map_or("n/a".to_owned(), |ratio| format!("{ratio:.2}")),
        );
    }
}
