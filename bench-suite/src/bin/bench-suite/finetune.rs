//! `bench-suite finetune`: flags into a `FinetuneRequest`, a progress bar, the result as JSON.

use anyhow::{Context, Result, bail};
use bench_suite::fastfood::Scope;
use bench_suite::finetune::{FinetuneRequest, finetune};
use bench_suite::precision::Precision;
use bench_suite::subspace::{Compat, LambdaGrouping};
use bench_suite::train::{Mode, StepReport};
use datasets::tasks::Task;

pub const USAGE: &str = "usage: bench-suite finetune --model ASSET --task TASK --mode full|did|said [--d N] [--lr X]
       [--epochs N] [--batch-size N] [--max-len N] [--max-train-examples N] [--length-buckets N] [--device cpu|cuda[:N]]
       [--seed N] [--scope global|per_tensor] [--compat none|aghajanyan] [--grouping per_layer|per_tensor] [--precision f32|bf16] [--run-dir DIR] [--mirror DIR]... [--offline]";

fn parse(args: &[String]) -> Result<FinetuneRequest> {
    let mut request = FinetuneRequest::new("", Task::Sst2, Mode::Full, 0);
    let (mut model, mut task, mut mode) = (None, None, None);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--offline" {
            request.offline = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.parse::<usize>().with_context(|| format!("{flag}: `{value}` is not a whole number"));
        match flag.as_str() {
            "--model" => model = Some(value.clone()),
            "--task" => task = Some(Task::from_name(value)?),
            "--mode" => {
                mode = Some(match value.as_str() {
                    "full" => Mode::Full,
                    "did" => Mode::Did,
                    "said" => Mode::Said,
                    other => bail!("--mode: `{other}` is not full, did or said"),
                })
            }
            "--d" => request.d = number()?,
            "--lr" => request.lr = Some(value.parse().with_context(|| format!("--lr: `{value}` is not a number"))?),
            "--epochs" => request.epochs = number()?,
            "--batch-size" => request.batch_size = number()?,
            "--max-len" => request.max_len = number()?,
            "--max-train-examples" => request.max_train_examples = Some(number()?),
            "--length-buckets" => request.length_buckets = Some(number()?),
            "--device" => request.device = value.clone(),
            "--seed" => request.seed = number()? as u64,
            "--scope" => {
                request.scope = match value.as_str() {
                    "global" => Scope::Global,
                    "per_tensor" => Scope::PerTensor,
                    other => bail!("--scope: `{other}` is not global or per_tensor"),
                }
            }
            "--compat" => {
                request.compat = match value.as_str() {
                    "none" => Compat::None,
                    "aghajanyan" => Compat::Aghajanyan,
                    other => bail!("--compat: `{other}` is not none or aghajanyan"),
                }
            }
            "--grouping" => {
                request.grouping = Some(match value.as_str() {
                    "per_layer" => LambdaGrouping::PerLayer,
                    "per_tensor" => LambdaGrouping::PerTensor,
                    other => bail!("--grouping: `{other}` is not per_layer or per_tensor"),
                })
            }
            "--precision" => {
                request.precision =
                    Precision::parse(value).with_context(|| format!("--precision: `{value}` is not f32 or bf16"))?
            }
            "--run-dir" => request.run_dir = Some(value.into()),
            "--mirror" => request.mirrors.push(value.into()),
            other => bail!("unknown flag `{other}`\n{USAGE}"),
        }
    }
    request.model = model.with_context(|| format!("--model is required\n{USAGE}"))?;
    request.task = task.with_context(|| format!("--task is required\n{USAGE}"))?;
    request.mode = mode.with_context(|| format!("--mode is required\n{USAGE}"))?;
    Ok(request)
}

pub fn run(args: &[String]) -> Result<()> {
    let request = parse(args)?;
    let progress = indicatif::ProgressBar::new(0);
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
    .with_context(|| format!("fine-tune {} on {}", request.model, request.task.name()))?;
    progress.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
