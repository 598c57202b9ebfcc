//! `bench-suite pretrain`: a pre-training file into checked settings, a progress bar with tokens
//! per second and ETA, held-out losses logged at every checkpoint, the record as JSON.

use std::path::PathBuf;
use trainer::interrupt::Interrupter;

use anyhow::{Context, Result};
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use trainer::pretrain::{self, Finished, PretrainSettings, RunLimits, UpdateReport};

/// MLM pre-training from scratch (RoBERTa's recipe) from a YAML file; resumable: the same command
/// continues an interrupted run, and reuses a finished one.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pre-training file (YAML): model (an HF config map or a config.json path), tokenizer,
    /// corpus (task-text, c4-en, c4-en:<shards>, or a .txt/.jsonl/.json.gz file), updates,
    /// checkpoint_every, and optionally
    /// max_len, batch_size, micro_batch_size, lr, warmup_updates, weight_decay, adam_beta2,
    /// adam_eps, max_grad_norm, mask_probability, seed, heldout_fraction, heldout_sequences,
    /// precision.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// The results folder; the pre-training goes to <OUT>/pretraining/<key>/.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    out: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// A read-only folder to take assets from before the network (repeatable).
    #[arg(long, value_name = "DIR")]
    mirror: Vec<PathBuf>,
    /// Never touch the network.
    #[arg(long)]
    offline: bool,
    /// Stop after this many updates in this process, with the state saved (a test knob; the
    /// same command continues).
    #[arg(long, value_name = "N", hide = true)]
    max_updates_this_process: Option<usize>,
}

pub fn run(args: Args, interrupter: Interrupter) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("read {}", args.spec.display()))?;
    let settings: PretrainSettings =
        serde_norway::from_str(&text).with_context(|| format!("pre-training file {}", args.spec.display()))?;
    let base = args.spec.parent().map(PathBuf::from).unwrap_or_default();
    let device = subspace::device::parse_device(&args.device)?;
    let mut store_config = StoreConfig::from_env()?;
    store_config.mirrors.extend(args.mirror);
    store_config.offline |= args.offline;
    let store = Store::new(store_config, Manifest::embedded())?;
    let bars = indicatif::MultiProgress::new();
    crate::logging::draw_above(&bars);
    let packing = bars.add(indicatif::ProgressBar::new_spinner());
    packing.set_style(
        indicatif::ProgressStyle::with_template("packing {msg} {pos} documents {elapsed_precise}").expect("valid"),
    );
    packing.set_message(settings.corpus.clone());
    let prepared = bench_suite::reference::resolve_pretraining(&settings, &base, &store, &args.out, device)
        .and_then(|resolved| resolved.pack(&store, &interrupter, &mut |documents| packing.set_position(documents)))
        .with_context(|| format!("pre-training file {}", args.spec.display()))?;
    packing.finish_and_clear();
    let data = &prepared.packed.description;
    tracing::info!(
        "pre-training {} in {}: corpus {} ({} training tokens in {} sequences, {} held out), {} updates of {} sequences",
        prepared.spec.key(),
        prepared.dir.display(),
        data.corpus,
        data.train.tokens,
        data.train.sequences,
        data.heldout.tokens,
        prepared.spec.updates,
        prepared.spec.batch_size,
    );
    let progress = bars.add(indicatif::ProgressBar::new(prepared.spec.updates as u64));
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} updates {elapsed_precise} eta {eta}")
            .expect("valid template"),
    );
    // One process per pre-training: a second one waits here (its key's lock, which the kernel
    // drops if the holder dies), then finds the work done or resumes it.
    let locks = args.out.join("locks");
    std::fs::create_dir_all(&locks).with_context(|| format!("create {}", locks.display()))?;
    let what = format!("pre-training {}", prepared.spec.key());
    let stop = || interrupter.is_requested();
    let every = std::time::Duration::from_secs(30);
    let Some(_lock) = results::ResultsDir::at(&args.out).lock_or_stop(
        &format!("pretraining-{}", prepared.spec.key()),
        &what,
        every,
        &stop,
    )?
    else {
        return Err(trainer::interrupt::Terminated::Lock { what }.into());
    };
    let limits = RunLimits { max_updates_this_process: args.max_updates_this_process, interrupter };
    let finished =
        pretrain::pretrain(&prepared, device, limits, bench_suite::code_revision(), &mut |report: UpdateReport| {
            progress.set_position(report.update as u64);
            progress.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tokens/s",
                report.loss, report.lr, report.tokens_per_s
            ));
            if let Some(heldout) = report.heldout_loss {
                tracing::info!(
                    "update {}/{}: held-out MLM loss {heldout:.4}, training loss {:.4}, {:.0} tokens/s",
                    report.update,
                    report.updates,
                    report.loss,
                    report.tokens_per_s
                );
            }
        })
        .with_context(|| format!("pre-training {}", prepared.spec.key()))?;
    progress.finish_and_clear();
    match finished {
        Finished::Completed(record) => println!("{}", serde_json::to_string_pretty(&record)?),
        Finished::Stopped { update } => {
            eprintln!("stopped after update {update} (--max-updates-this-process); the same command continues")
        }
    }
    Ok(())
}
