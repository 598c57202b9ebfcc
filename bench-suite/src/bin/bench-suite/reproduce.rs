//! `bench-suite reproduce`: a preset (or a spec file) through the runner, with progress bars over
//! searches and steps, then the d90 table.

use std::path::PathBuf;
use trainer::interrupt::Interrupter;
use trainer::pretrain::CorpusNeed;

use anyhow::{Context, Result};
use bench_suite::experiment::runner::{
    Event, PreparedSearch, RunOne, Runner, RunnerOptions, Shard, Surveyed, WorkerCommand, select,
};
use bench_suite::experiment::spec::PlannedSearch;
use bench_suite::experiment::{PRESETS, preset, results_dir, results_name, spec};
use bench_suite::reference::{Checkpoint, Subject};
use bench_suite::settings;
use datasets::manifest::Manifest;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use results::{Outcome, ResultsDir, SearchRecord};

/// Which searches to run, where, and where their results go.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A preset shipped with the suite [default: quick].
    #[arg(long, value_parser = preset_names(), conflicts_with = "spec")]
    preset: Option<String>,
    /// A spec file (YAML, as the presets in bench-suite/presets/) instead of a preset.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Only these experiments of the spec (comma-separated names).
    #[arg(long, value_name = "EXP,...", value_delimiter = ',', value_parser = clap::builder::NonEmptyStringValueParser::new())]
    only: Vec<String>,
    /// cpu, cuda or cuda:N [default: the spec's device].
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// A read-only folder to take assets from before the network (repeatable).
    #[arg(long, value_name = "DIR")]
    mirror: Vec<PathBuf>,
    /// Never touch the network: assets come from the cache or a mirror.
    #[arg(long)]
    offline: bool,
    /// Run only shard i of n (0-based; SLURM array tasks).
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// The results folder [default: runs/<preset, or the spec file's stem>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Check the plan against the assets, print it, and run nothing.
    #[arg(long)]
    check_only: bool,
    /// Train up to N runs of a probe at once, each in its own process with 1/N of the CPU
    /// threads (results, keys and resumption as one at a time).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Internal: train the one run this file orders (written by a `--jobs` parent) and exit.
    #[arg(long, value_name = "FILE", hide = true)]
    run_one: Option<PathBuf>,
}

fn preset_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(PRESETS.iter().map(|(name, _)| *name))
}

/// The log file of a shard (`<results>/logs/shard-<i>-of-<n>.log`), so that each task of a
/// SLURM array keeps its own; `None` without `--shard`, and with `--check-only` (which writes
/// nothing into the results folder).
pub fn shard_log(args: &Args) -> Result<Option<PathBuf>> {
    let Some(shard) = args.shard.filter(|_| !args.check_only) else { return Ok(None) };
    let out = resolve(args)?.options.out;
    Ok(Some(out.join("logs").join(format!("shard-{}-of-{}.log", shard.index, shard.count))))
}

/// The arguments resolved: the spec's text and name, the runner's options.
struct Resolved {
    spec_file: PathBuf,
    spec_text: String,
    name: String,
    options: RunnerOptions,
}

fn resolve(args: &Args) -> Result<Resolved> {
    let name = results_name(args.preset.as_deref(), args.spec.as_deref());
    let (spec_file, spec_text) = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read spec {}", path.display()))?;
            (path.clone(), text)
        }
        None => {
            let (file, text) = preset(&name).with_context(|| format!("no preset `{name}`"))?;
            (file, text.to_owned())
        }
    };
    let worker = std::env::current_exe().ok().map(|program| WorkerCommand {
        program,
        // This command line again: the worker selects and prepares what the parent did.
        args: std::env::args_os().skip(1).collect(),
    });
    let options = RunnerOptions {
        device: args.device.clone(),
        mirrors: args.mirror.clone(),
        offline: args.offline,
        out: args.out.clone().unwrap_or_else(|| results_dir(&name)),
        jobs: usize::from(args.jobs),
        worker,
    };
    Ok(Resolved { spec_file, spec_text, name, options })
}

/// The precisions the searches train in, and why where it is bf16 by the device (`precision:
/// auto` shows only in what it chose: `f32` on a CPU without bf16 units).
fn precisions(prepared: &[PreparedSearch], device: &str) -> String {
    let mut names: Vec<String> = prepared.iter().map(|search| search.plan.training.precision.to_string()).collect();
    names.sort();
    names.dedup();
    let bf16_units = if settings::native_bf16(device) { "has" } else { "has no" };
    format!("{} (this device {bf16_units} bf16 units)", names.join(" and "))
}

pub fn run(cli: Args, interrupter: Interrupter) -> Result<()> {
    let args = resolve(&cli)?;
    let plan = spec::parse_on(&args.spec_text, &args.spec_file, cli.device.as_deref())?;
    let selected = select(&plan, &cli.only, cli.shard)?;
    let mut runner = Runner::new(&plan, &args.options, interrupter)?;
    if let Some(order_path) = &cli.run_one {
        let order: RunOne = serde_json::from_str(
            &std::fs::read_to_string(order_path).with_context(|| format!("read {}", order_path.display()))?,
        )
        .with_context(|| format!("parse {}", order_path.display()))?;
        let search = selected
            .get(order.search_index)
            .with_context(|| format!("{}: no search {} in this selection", order_path.display(), order.search_index))?;
        let prepared = runner.prepare(std::slice::from_ref(search))?;
        runner.run_ordered(&prepared[0], order)?;
        return Ok(());
    }
    if cli.check_only {
        return check_only(&args.name, &mut runner, &selected, cli.shard);
    }
    let prepared = runner.prepare(&selected)?;
    eprintln!(
        "{}: {} searches{} on {} in {}, results in {}",
        args.name,
        prepared.len(),
        cli.shard.map_or(String::new(), |shard| format!(" (shard {}/{})", shard.index, shard.count)),
        runner.device(),
        precisions(&prepared, runner.device()),
        args.options.out.display()
    );
    // What this spec asked for, for its report (not another spec's searches in the folder).
    let part = match (cli.shard, cli.only.is_empty()) {
        (Some(shard), _) => Some(format!("shard-{}-of-{}", shard.index, shard.count)),
        // A long selection is named by a hash of its names (file names have 255 bytes).
        (None, false) if cli.only.join("-").len() <= 100 => Some(format!("only-{}", cli.only.join("-"))),
        (None, false) => Some(format!("only-{}", results::hash_key(&cli.only))),
        (None, true) => None,
    };
    let keys: Vec<String> = prepared.iter().map(|search| search.key.clone()).collect();
    results::ResultsDir::new(&args.options.out)?.save_plan(&args.name, part.as_deref(), &keys)?;

    let multi = MultiProgress::new();
    crate::logging::draw_above(&multi);
    let searches_bar = multi.add(ProgressBar::new(prepared.len() as u64));
    searches_bar.set_style(
        ProgressStyle::with_template("searches {bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("valid template"),
    );
    let run_bar = multi.add(ProgressBar::new(0));
    run_bar.set_style(
        ProgressStyle::with_template("  run {bar:30} {pos}/{len} steps eta {eta} {msg}").expect("valid template"),
    );
    let say = |line: String| {
        if multi.is_hidden() {
            eprintln!("{line}");
        } else {
            multi.println(line).expect("print above the bars");
        }
    };
    let mut current = String::new();
    // Searches are counted as they start (a pre-training's searches come before the plan's
    // earlier searches that need none), with the plan's number beside.
    let mut started = 0usize;
    let records = runner.run(&prepared, &mut |event| match event {
        Event::Planned { .. } => {}
        Event::SearchStarted { index, search } => {
            current = format!("{} {} {}", search.plan.model, search.plan.task, search.plan.method.name);
            searches_bar.set_message(current.clone());
            started += 1;
            say(format!("[{started}/{}] {current} (search {} of the plan)", prepared.len(), index + 1));
        }
        Event::RunStarted { signature } => {
            run_bar.reset();
            run_bar.set_message(short_signature(signature));
        }
        Event::Step(step) => {
            run_bar.set_length(step.total_steps as u64);
            run_bar.set_position(step.step as u64);
        }
        Event::PretrainingStarted { name, key, updates } => {
            say(format!("pre-training {name} ({key}): {updates} updates"));
            run_bar.reset();
            run_bar.set_length(updates as u64);
            run_bar.set_message(format!("pre-training {name}"));
        }
        Event::PretrainingUpdate(report) => {
            run_bar.set_position(report.update as u64);
            if let Some(heldout) = report.heldout_loss {
                say(format!(
                    "    update {}/{}: held-out MLM loss {heldout:.4} ({:.0} tokens/s)",
                    report.update, report.updates, report.tokens_per_s
                ));
            }
        }
        Event::PretrainingHeld { name, waiting } => say(if waiting {
            format!("pre-training {name} is running in another process: waiting for it")
        } else {
            format!("pre-training {name} is running in another process: its searches come after other work")
        }),
        Event::PretrainingFinished { name, record, reused } => {
            let how = if reused { "reused".to_owned() } else { format!("{:.0} s", record.wall_time_s) };
            say(format!(
                "    pre-training {name}: {} checkpoints, {} parameters ({how})",
                record.checkpoints.len(),
                record.parameters
            ));
        }
        Event::RunFinished { record, reused } => {
            let score = record.best_score.map_or("none".to_owned(), |score| format!("{score:.4}"));
            let how = if reused { "reused".to_owned() } else { format!("{:.0} s", record.result.wall_time_s) };
            let diverged = if record.diverged { " DIVERGED" } else { "" };
            say(format!("    {}: best {score}{diverged} ({how})", short_signature(&record.signature)));
        }
        Event::SearchFinished { record, reused, .. } => {
            searches_bar.inc(1);
            say(format!("    => {}{}", outcome_text(record), if reused { " (reused)" } else { "" }));
        }
    })?;
    run_bar.finish_and_clear();
    searches_bar.finish_and_clear();
    println!("{}", table(&args.name, &records));
    let all = ResultsDir::new(&args.options.out)?.searches()?.len();
    if all != records.len() {
        println!("({} of the {all} searches in {} shown: this selection)", records.len(), args.options.out.display());
    }
    Ok(())
}

/// `--check-only`: every search with its model, commit, task and method, and D, m and the grid
/// where the model's files are here; the pre-trainings with what of their corpora is not here;
/// then what must still be fetched, with its size where the manifest gives it (corpus files
/// included, which the check never fetches). Writes nothing; succeeds offline with nothing fetched.
fn check_only(name: &str, runner: &mut Runner, selected: &[PlannedSearch], shard: Option<Shard>) -> Result<()> {
    let surveyed = runner.survey(selected)?;
    let ready: Vec<PreparedSearch> = surveyed
        .iter()
        .filter_map(|search| match search {
            Surveyed::Ready(prepared) => Some(prepared.as_ref().clone()),
            Surveyed::Missing { .. } => None,
        })
        .collect();
    eprintln!(
        "{name}: {} searches{} on {}{}, {} with every file here",
        surveyed.len(),
        shard.map_or(String::new(), |shard| format!(" (shard {}/{})", shard.index, shard.count)),
        runner.device(),
        if ready.is_empty() { String::new() } else { format!(" in {}", precisions(&ready, runner.device())) },
        ready.len()
    );
    // The corpora the pre-trainings read: not fetched by a check (C4's shards are tens of GB).
    let corpora = runner.corpus_needs(selected)?;
    let files = |n: usize| if n == 1 { "1 corpus file".to_owned() } else { format!("{n} corpus files") };
    let corpus_state = |name: &str, keyed: bool| match corpora.get(name) {
        Some(CorpusNeed::Finished) => "no corpus file needed (it has finished)".to_owned(),
        Some(CorpusNeed::Packed) => "no corpus file needed (its corpus is packed in the cache)".to_owned(),
        Some(CorpusNeed::LocalFile) => "its corpus is a local file".to_owned(),
        None => "its corpus was not checked".to_owned(),
        Some(CorpusNeed::Files(missing)) if missing.is_empty() => {
            "its corpus files are in the cache or a mirror".to_owned()
        }
        Some(CorpusNeed::Files(missing)) if keyed => format!("{} to fetch", files(missing.len())),
        Some(CorpusNeed::Files(missing)) => format!(
            "up to {} to fetch (none if its corpus is packed in the cache or it has finished)",
            files(missing.len())
        ),
    };
    for (name, pretraining) in runner.pretrainings() {
        let spec = &pretraining.spec;
        eprintln!(
            "  pre-training {name} ({}): {} {}x{} encoder on {}, {} updates of {} x {} tokens, checkpoints at {}; {}",
            spec.key(),
            pretraining.config.model_type.name(),
            pretraining.config.num_hidden_layers,
            pretraining.config.hidden_size,
            spec.corpus,
            spec.updates,
            spec.batch_size,
            spec.max_len,
            pretraining.checkpoint_updates().iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
            corpus_state(name, true)
        );
    }
    for name in corpora.keys().filter(|name| !runner.pretrainings().any(|(keyed, _)| keyed == name.as_str())) {
        eprintln!("  pre-training {name}: keyed once its tokenizer is here; {}", corpus_state(name, false));
    }
    let manifest = Manifest::embedded();
    let mut to_fetch: Vec<datasets::store::MissingFile> = Vec::new();
    for (planned, search) in selected.iter().zip(&surveyed) {
        let plan = &planned.plan;
        // A checkpoint with its commit.
        let model = match &planned.subject {
            Subject::Text { model: Checkpoint::Hub(asset), .. } => asset.id.clone(),
            Subject::Text { model: Checkpoint::Manifest(id), .. } => match manifest.asset(id).map(|asset| &asset.hf) {
                Ok(Some(hf)) => format!("{id}@{}", hf.revision),
                _ => id.clone(),
            },
            _ => plan.model.clone(),
        };
        let head = format!("  {} {model} {} {}", plan.experiment, plan.task, plan.method.name);
        match search {
            Surveyed::Ready(search) => eprintln!(
                "{head} ({}): D = {}, m = {}, {} grid values [{}, {}]",
                search.model_revision,
                search.total_parameters,
                search.scales,
                search.grid.len(),
                search.grid.first().unwrap_or(&0),
                search.grid.last().unwrap_or(&0)
            ),
            Surveyed::Missing { files, shapes } => {
                let assets: std::collections::BTreeSet<&str> = files.iter().map(|file| file.asset.as_str()).collect();
                let assets = assets.into_iter().collect::<Vec<_>>().join(" and ");
                match shapes {
                    Some((total, scales)) => eprintln!("{head}: D = {total}, m = {scales}; to fetch: {assets}"),
                    None => eprintln!("{head}: D and m once {assets} is fetched"),
                }
                for file in files {
                    if !to_fetch.contains(file) {
                        to_fetch.push(file.clone());
                    }
                }
            }
        }
    }
    let corpus_files: Vec<&datasets::store::MissingFile> = corpora
        .values()
        .flat_map(|need| match need {
            CorpusNeed::Files(missing) => missing.as_slice(),
            _ => &[],
        })
        .collect();
    for file in &corpus_files {
        if !to_fetch.contains(file) {
            to_fetch.push((*file).clone());
        }
    }
    if to_fetch.is_empty() {
        return Ok(());
    }
    let size_of = |file: &datasets::store::MissingFile| {
        manifest.asset(&file.asset).ok()?.files.iter().find(|listed| listed.name == file.file)?.size
    };
    let known: u64 = to_fetch.iter().filter_map(size_of).sum();
    let (unknown_corpus, unknown_hub): (Vec<_>, Vec<_>) =
        to_fetch.iter().filter(|file| size_of(file).is_none()).partition(|file| corpus_files.contains(file));
    eprintln!(
        "to fetch before these searches can run: {} files, {}{}{}",
        to_fetch.len(),
        human_bytes(known),
        match unknown_hub.len() {
            0 => String::new(),
            n => format!(
                " and {n} files of hub commits whose sizes the hub gives when first asked (run without --offline, \
                 or put the files in a --mirror folder)"
            ),
        },
        match unknown_corpus.len() {
            0 => String::new(),
            n => format!(
                " and {n} corpus files whose sizes are learned on their first download (fetched when their \
                 pre-training starts, not by this check)"
            ),
        }
    );
    for file in &to_fetch {
        let size = match size_of(file) {
            Some(size) => human_bytes(size),
            None if corpus_files.contains(&file) => "size learned on download".to_owned(),
            None => "size from the hub".to_owned(),
        };
        eprintln!("  {} / {} ({size}): {}", file.asset, file.file, file.urls.join(" or "));
    }
    Ok(())
}

/// A byte count in the largest unit that keeps it at least 1 (decimal: kB, MB, GB).
fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// The signature without the parts every run of a preset shares.
fn short_signature(signature: &str) -> String {
    signature
        .split('|')
        .filter(|part| {
            !["metric:", "data:", "torch:", "code:", "compat:none", "scope:global"].iter().any(|p| part.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn outcome_text(record: &SearchRecord) -> String {
    let monotone = match record.monotone {
        Some(false) => ", NOT monotone",
        _ => "",
    };
    match &record.outcome {
        Outcome::Found { d90, bracket: (below, _) } => format!(
            "d90 = {d90} (bracket [{}, {d90}], on the curve {}, {} probes{monotone}; intervals: the report)",
            below.map_or("<".to_owned() + &record.grid[0].to_string(), |below| below.to_string()),
            curve_text(record),
            record.probes.len()
        ),
        Outcome::Bound { at_most } => {
            format!(
                "d90 <= {at_most}: the smallest d searched already succeeds ({} probes{monotone})",
                record.probes.len()
            )
        }
        Outcome::NotReached { largest_tried } => format!("target not reached up to d = {largest_tried}{monotone}"),
        Outcome::Unable { reason } => format!("unable to compute: {reason}"),
    }
}

/// Where the isotonic curve of the probes' median scores crosses the target (`d90::curve`);
/// its interval needs the runs, so the report gives it.
fn curve_text(record: &SearchRecord) -> String {
    let (search, _) = d90::bootstrap::Search::from_record(record, |_| None);
    search.estimate().map_or("-".to_owned(), |crossing| crossing.label())
}

/// The d90 table printed at the end (the reports crate renders the full report).
pub fn table(name: &str, records: &[SearchRecord]) -> String {
    let mut lines = vec![
        format!("d90 ({name})"),
        format!(
            "{:<24} {:<6} {:<10} {:>8} {:>8} {:>8} {:>9} {:>16} {:>16} {:>6}",
            "model", "task", "method", "baseline", "target", "majority", "d90", "bracket", "curve d90", "probes"
        ),
    ];
    for record in records {
        let plan = &record.plan;
        let model = plan.model.rsplit('/').next().unwrap_or(&plan.model);
        let number = |value: Option<f64>| value.map_or("-".to_owned(), |value| format!("{value:.4}"));
        let (d90, bracket) = match &record.outcome {
            Outcome::Found { d90, bracket: (below, _) } => (
                d90.to_string(),
                format!("[{}, {d90}]", below.map_or(format!("<{}", record.grid[0]), |below| below.to_string())),
            ),
            Outcome::Bound { at_most } => (format!("<={at_most}"), "-".to_owned()),
            Outcome::NotReached { largest_tried } => (format!(">{largest_tried}"), "-".to_owned()),
            Outcome::Unable { .. } => ("unable".to_owned(), "-".to_owned()),
        };
        lines.push(format!(
            "{:<24} {:<6} {:<10} {:>8} {:>8} {:>8} {:>9} {:>16} {:>16} {:>6}",
            model,
            plan.task,
            plan.method.name,
            number(record.baseline.score),
            number(record.baseline.target),
            format!("{:.4}", record.baseline.majority_accuracy),
            d90,
            bracket,
            curve_text(record),
            record.probes.len()
        ));
        if let Outcome::Unable { reason } = &record.outcome {
            lines.push(format!("    unable: {reason}"));
        }
        if record.monotone == Some(false) {
            lines.push("    note: success was not monotone in d (a failure above a success)".to_owned());
        }
    }
    lines.join("\n")
}
