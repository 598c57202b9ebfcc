//! `bench-suite finetune`: fine-tune one checkpoint on one task once (full, DID or SAID), with the
//! data and checkpoint taken from the verified cache, a mirror or the network.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bench_suite::checkpoint;
use bench_suite::device::parse_device;
use bench_suite::model::{Config, SequenceClassifier};
use bench_suite::random;
use bench_suite::tokenize::TextEncoder;
use bench_suite::train::{LabelledExample, Mode, Seeds, StepReport, TrainConfig, TrainData, train};
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use datasets::tasks::{Metric, Task};
use serde::Serialize;
use tch::nn;

pub const USAGE: &str = "usage: bench-suite finetune --model ASSET --task TASK --mode full|did|said [--d N] [--lr X]
       [--epochs N] [--batch-size N] [--max-len N] [--max-train-examples N] [--device cpu|cuda[:N]]
       [--seed N] [--scope global|per_tensor] [--run-dir DIR] [--mirror DIR]... [--offline]";

struct Args {
    model: String,
    task: Task,
    mode: Mode,
    d: usize,
    lr: Option<f64>,
    epochs: usize,
    batch_size: usize,
    max_len: usize,
    max_train_examples: Option<usize>,
    device: String,
    seed: u64,
    scope: bench_suite::fastfood::Scope,
    run_dir: Option<PathBuf>,
    mirrors: Vec<PathBuf>,
    offline: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        model: String::new(),
        task: Task::Sst2,
        mode: Mode::Full,
        d: 0,
        lr: None,
        epochs: 3,
        batch_size: 32,
        max_len: 128,
        max_train_examples: None,
        device: "cpu".to_owned(),
        seed: 0,
        scope: bench_suite::fastfood::Scope::Global,
        run_dir: None,
        mirrors: Vec::new(),
        offline: false,
    };
    let mut task = None;
    let mut mode = None;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--offline" {
            parsed.offline = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.parse::<usize>().with_context(|| format!("{flag}: `{value}` is not a whole number"));
        match flag.as_str() {
            "--model" => parsed.model = value.clone(),
            "--task" => task = Some(Task::from_name(value)?),
            "--mode" => {
                mode = Some(match value.as_str() {
                    "full" => Mode::Full,
                    "did" => Mode::Did,
                    "said" => Mode::Said,
                    other => bail!("--mode: `{other}` is not full, did or said"),
                })
            }
            "--d" => parsed.d = number()?,
            "--lr" => parsed.lr = Some(value.parse().with_context(|| format!("--lr: `{value}` is not a number"))?),
            "--epochs" => parsed.epochs = number()?,
            "--batch-size" => parsed.batch_size = number()?,
            "--max-len" => parsed.max_len = number()?,
            "--max-train-examples" => parsed.max_train_examples = Some(number()?),
            "--device" => parsed.device = value.clone(),
            "--seed" => parsed.seed = number()? as u64,
            "--scope" => {
                parsed.scope = match value.as_str() {
                    "global" => bench_suite::fastfood::Scope::Global,
                    "per_tensor" => bench_suite::fastfood::Scope::PerTensor,
                    other => bail!("--scope: `{other}` is not global or per_tensor"),
                }
            }
            "--run-dir" => parsed.run_dir = Some(value.into()),
            "--mirror" => parsed.mirrors.push(value.into()),
            other => bail!("unknown flag `{other}`\n{USAGE}"),
        }
    }
    if parsed.model.is_empty() {
        bail!("--model is required\n{USAGE}");
    }
    parsed.task = task.with_context(|| format!("--task is required\n{USAGE}"))?;
    parsed.mode = mode.with_context(|| format!("--mode is required\n{USAGE}"))?;
    if parsed.mode != Mode::Full && parsed.d == 0 {
        bail!("--mode {:?} needs --d (the subspace dimension)", parsed.mode);
    }
    Ok(parsed)
}

#[derive(Serialize)]
struct Output {
    model: String,
    task: String,
    train_examples: usize,
    device: String,
    #[serde(flatten)]
    result: bench_suite::train::RunResult,
    peak_resident_bytes: Option<u64>,
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let device = parse_device(&args.device)?;
    let mut store_config = StoreConfig::from_env()?;
    store_config.mirrors.extend(args.mirrors.iter().cloned());
    store_config.offline |= args.offline;
    let tokenized_cache = store_config.home.join("tokenized");
    let store = Store::new(store_config, Manifest::embedded())?;
    let model_files = store.ensure(&args.model).with_context(|| format!("fetch {}", args.model))?;
    let task_files = store.ensure(args.task.asset_id()).with_context(|| format!("fetch {}", args.task.name()))?;
    let task_data = args.task.load(&task_files)?;

    let config_path = model_files.file("config.json");
    let config = Config::from_json(&std::fs::read_to_string(&config_path)?)
        .with_context(|| format!("read {}", config_path.display()))?;
    let encoder = TextEncoder::from_file(&model_files.file("tokenizer.json"), args.max_len)?;
    let tokenize = |name: &str, limit: Option<usize>| -> Result<Vec<LabelledExample>> {
        let examples =
            task_data.split(name).with_context(|| format!("task {} has no split {name}", args.task.name()))?;
        let mut chosen: Vec<usize> = (0..examples.len()).collect();
        if let Some(limit) = limit.filter(|&limit| limit < examples.len()) {
            // A seeded random subset, the same for every mode and learning rate.
            let mut rng = random::keyed_rng("finetune v1", args.seed, name, 0);
            for idx in (1..chosen.len()).rev() {
                chosen.swap(idx, random::bounded(&mut rng, idx as u64 + 1) as usize);
            }
            chosen.truncate(limit);
            chosen.sort_unstable();
        }
        let texts: Vec<(&str, Option<&str>)> =
            chosen.iter().map(|&idx| (examples[idx].text_a.as_str(), examples[idx].text_b.as_deref())).collect();
        let encoded = encoder.encode_all(&texts, Some(&tokenized_cache))?;
        Ok(encoded
            .into_iter()
            .zip(&chosen)
            .map(|(encoded, &idx)| LabelledExample { encoded, label: examples[idx].label })
            .collect())
    };
    let train_set = tokenize("train", args.max_train_examples)?;
    let dev_sets: Vec<(String, Vec<LabelledExample>)> = args
        .task
        .dev_splits()
        .iter()
        .map(|name| Ok((name.to_string(), tokenize(name, None)?)))
        .collect::<Result<_>>()?;

    let vs = nn::VarStore::new(device);
    let model = SequenceClassifier::new(vs.root(), &config, args.task.labels().len() as i64);
    let report = checkpoint::load(
        &vs,
        &model_files.file("model.safetensors"),
        config.model_type.prefix(),
        "classifier",
        args.seed,
        config.initializer_range,
    )?;
    eprintln!(
        "loaded {} tensors; initialised {} (seed {}); unused {}",
        report.loaded,
        report.initialised.join(", "),
        args.seed,
        if report.unused.is_empty() { "none".to_owned() } else { report.unused.join(", ") }
    );

    let default_lr = match args.mode {
        Mode::Full => 2e-5,
        Mode::Did | Mode::Said => 1e-2,
    };
    let mut train_config = TrainConfig::new(args.mode, args.d, args.lr.unwrap_or(default_lr));
    train_config.scope = args.scope;
    train_config.epochs = args.epochs;
    train_config.batch_size = args.batch_size;
    train_config.seeds = Seeds::all(args.seed);
    train_config.checkpoint_every = args.run_dir.as_ref().map(|_| 50);
    let data = TrainData {
        train: &train_set,
        dev: dev_sets.iter().map(|(name, examples)| (name.clone(), examples.as_slice())).collect(),
        with_f1: args.task.metrics().contains(&Metric::F1),
        pad_id: config.pad_token_id as u32,
    };
    let progress = indicatif::ProgressBar::new(0);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} steps {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    let mut on_step = |report: StepReport| {
        progress.set_length(report.total_steps as u64);
        progress.set_position(report.step as u64);
        progress.set_message(format!("loss {:.4} lr {:.2e}", report.loss, report.lr));
    };
    let result = train(&vs, &model, &data, &train_config, args.run_dir.as_deref(), &mut on_step)?;
    progress.finish_and_clear();
    let output = Output {
        model: args.model,
        task: args.task.name().to_owned(),
        train_examples: train_set.len(),
        device: args.device,
        result,
        peak_resident_bytes: peak_resident_bytes(),
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..].trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kib| kib * 1024)
}
