//! `cargo xtask bench` (or `bench all`): every speed figure of the speed issue in one run and one
//! table, each next to what it is measured against, measured in that same run: a training step
//! and an epoch against HF transformers (when a Python with it is given), the projection against
//! its memory floor, runs per hour with one and two runs side by side, and f32 against bf16.
//! Each part is one of the suite's own commands (or `bench-suite/benches/hf_reference.py`), run
//! one after another on the release binary; their raw outputs and the table go to `--out`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub const USAGE: &str = "cargo xtask bench [all] --mirror DIR [--python PATH] [--out DIR] [--skip PART]...
  Runs, one after another on an otherwise idle machine, and prints one table:
    step        full, SAID and DID training steps of MiniLM-L6 (batch 32 x 128, random full-length
                sequences) and their peak memory; HF's full step on the same shape
    epoch       one epoch of full fine-tuning on 2,000 SST-2 sentences at max_len 128 with length
                buckets, against HF's default collator and its group_by_length sampler (same rows)
    projection  P and P^T of the global and per-tensor maps against a copy of the same bytes
    jobs        runs per hour of a small probe (1,000 sentences, one epoch) with --jobs 1 and 2
    precision   a one-epoch SAID run in f32 and in bf16 (bf16 only where the CPU has bf16 units)
  --mirror DIR   a folder with glue/SST-2/{train,dev}.tsv and the MiniLM-L6 checkpoint under
                 hf/sentence-transformers/all-MiniLM-L6-v2/<commit>/ (../shared/mirror here)
  --python PATH  a Python with torch==2.11.0 and transformers==4.57.1 for the HF columns
                 (default: python3; the HF columns say why they are empty when it lacks them)
  --out DIR      raw outputs and the table (default: target/bench-all)
  --skip PART    leave a part out (repeatable)";

const PARTS: [&str; 5] = ["step", "epoch", "projection", "jobs", "precision"];
const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

struct Options {
    mirror: PathBuf,
    /// The Python for the HF column, and whether the user named it (a named one that cannot run
    /// the reference is an error; the default `python3` only leaves the column empty).
    python: (String, bool),
    out: PathBuf,
    skip: Vec<String>,
}

fn parse(args: &[String], invoked_from: &Path, root: &Path) -> Result<Options> {
    let (mut mirror, mut python, mut out, mut skip) =
        (None, ("python3".to_owned(), false), root.join("target/bench-all"), vec![]);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || match &inline {
            Some(value) => Ok(value.clone()),
            None => args.next().cloned().with_context(|| format!("{flag} needs a value\nusage: {USAGE}")),
        };
        match flag {
            "--mirror" => mirror = Some(invoked_from.join(value()?)),
            // A path (it has a `/`) is the caller's; a bare name is looked up on PATH.
            "--python" => {
                let given = value()?;
                let path = if given.contains('/') { invoked_from.join(&given).display().to_string() } else { given };
                python = (path, true);
            }
            "--out" => out = invoked_from.join(value()?),
            "--skip" => {
                let part = value()?;
                if !PARTS.contains(&part.as_str()) {
                    bail!("--skip {part}: not a part (one of {})", PARTS.join(", "));
                }
                skip.push(part);
            }
            other => bail!("unknown argument `{other}`\nusage: {USAGE}"),
        }
    }
    let mirror = mirror.with_context(|| format!("--mirror DIR is required (../shared/mirror here)\nusage: {USAGE}"))?;
    Ok(Options { mirror, python, out, skip })
}

/// The mirror's MiniLM-L6 folder (one commit), for HF's `from_pretrained`.
fn minilm_folder(mirror: &Path) -> Result<PathBuf> {
    let parent = mirror.join("hf").join(MINILM);
    let commits: Vec<PathBuf> = std::fs::read_dir(&parent)
        .with_context(|| format!("{}: no MiniLM-L6 checkpoint in the mirror", parent.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("config.json").is_file())
        .collect();
    match commits.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{}: no commit folder with a config.json", parent.display()),
        several => bail!(
            "{}: {} commit folders; HF must load the checkpoint the suite loads: keep only the manifest's commit",
            parent.display(),
            several.len()
        ),
    }
}

/// SST-2's GLUE TSV rows (`sentence`, `label`; no quoting) as JSON lines; `keep` picks rows by index.
fn tsv_to_jsonl(tsv: &Path, jsonl: &Path, keep: impl Fn(usize) -> bool, limit: usize) -> Result<usize> {
    let text = std::fs::read_to_string(tsv).with_context(|| format!("read {}", tsv.display()))?;
    let mut lines = String::new();
    let mut count = 0;
    for (index, line) in text.lines().skip(1).enumerate() {
        if count == limit || !keep(index) {
            continue;
        }
        let (sentence, label) =
            line.rsplit_once('\t').with_context(|| format!("{}: row {} has no tab", tsv.display(), index + 2))?;
        let label: u8 = label.trim().parse().with_context(|| format!("{}: row {}: label", tsv.display(), index + 2))?;
        lines.push_str(&serde_json::json!({"sentence": sentence, "label": label}).to_string());
        lines.push('\n');
        count += 1;
    }
    std::fs::write(jsonl, lines).with_context(|| format!("write {}", jsonl.display()))?;
    Ok(count)
}

/// A task folder of `train` SST-2 training sentences (every 33rd row, so the subset spans the file)
/// and the whole dev split, in the suite's task-file format and as JSONL for HF.
fn write_task(mirror: &Path, dir: &Path, train: usize) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let sst2 = mirror.join("glue/SST-2");
    let got = tsv_to_jsonl(&sst2.join("train.tsv"), &dir.join("train.jsonl"), |index| index % 33 == 0, train)?;
    if got < train {
        bail!("{}: only {got} rows, {train} needed", sst2.join("train.tsv").display());
    }
    tsv_to_jsonl(&sst2.join("dev.tsv"), &dir.join("dev.jsonl"), |_| true, usize::MAX)?;
    let task = dir.join("task.yaml");
    std::fs::write(&task, "train: train.jsonl\ndev: dev.jsonl\ntext: [sentence]\nlabel: label\nlabels: [0, 1]\n")?;
    Ok(task)
}

/// Runs `command` as [`crate::run_checked`] does (SIGTERM and SIGINT go to it) with its stdout
/// kept in `saved` (the part's raw output, which stays in `--out`), and parses that as one JSON
/// value (the whole output, or else its last line that is one).
fn json_of(command: &mut Command, saved: &Path) -> Result<Value> {
    let file = std::fs::File::create(saved).with_context(|| format!("create {}", saved.display()))?;
    crate::run_checked(command.stdout(file))?;
    let stdout = std::fs::read_to_string(saved).with_context(|| format!("read {}", saved.display()))?;
    serde_json::from_str(&stdout)
        .ok()
        .or_else(|| stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok()))
        .with_context(|| format!("{} holds no JSON:\n{stdout}", saved.display()))
}

fn number(value: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(value, |value, key| value.get(key))?.as_f64()
}

/// One row of the table: what, ours, the reference, ours / reference, the goal.
struct Row([String; 5]);

fn row(
    what: impl Into<String>,
    ours: impl Into<String>,
    reference: impl Into<String>,
    ratio: Option<f64>,
    goal: &str,
) -> Row {
    Row([
        what.into(),
        ours.into(),
        reference.into(),
        ratio.map_or("n/a".to_owned(), |r| format!("{r:.2}")),
        goal.into(),
    ])
}

/// The table as Markdown.
fn markdown(rows: &[Row]) -> String {
    let mut text = String::from("| measure | ours | reference | ours / reference | goal |\n|---|---|---|---|---|\n");
    for Row(cells) in rows {
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    text
}

/// Whether this CPU computes in bf16: its `avx512_bf16` flag, the feature `precision: auto` tests
/// on x86-64 (`bench_suite::settings::native_bf16`, which xtask cannot link).
fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| info.split_whitespace().any(|flag| flag == "avx512_bf16"))
}

pub fn run(args: &[String], invoked_from: &Path) -> Result<()> {
    let root = crate::project_root();
    let options = parse(args, invoked_from, &root)?;
    let wants = |part: &str| !options.skip.iter().any(|skip| skip == part);
    let hf_model = minilm_folder(&options.mirror)?;
    for file in ["train.tsv", "dev.tsv"] {
        let path = options.mirror.join("glue/SST-2").join(file);
        if !path.is_file() {
            bail!("{}: missing (the mirror needs SST-2's GLUE files)", path.display());
        }
    }
    // HF's side: the reference script's `--help` imports everything it uses. A Python the user
    // named must run it; the default one only leaves the column empty, saying why.
    let script = root.join("bench-suite/benches/hf_reference.py");
    let (python, named) = &options.python;
    let hf_missing = match Command::new(python).arg(&script).arg("--help").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "{python} cannot run {}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
        )),
        Err(err) => Some(format!("{python}: {err}")),
    };
    match &hf_missing {
        Some(why) if *named => bail!("--python {why}\n(it needs pip install torch==2.11.0 transformers==4.57.1)"),
        Some(why) => eprintln!("HF column left empty: {why} (pass --python with torch==2.11.0 transformers==4.57.1)"),
        None => eprintln!("HF reference: {python} {}", script.display()),
    }
    let out = &options.out;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    // A table is only ever this run's: the last run's goes before any part starts.
    for stale in ["bench.md", "bench.json"] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let libtorch = crate::setup::ensure()?;
    crate::build_bench_suite_release(&libtorch)?;
    let binary = crate::release_binary(&root);
    let suite = |subcommand: &str| {
        let mut command = Command::new(&binary);
        command.envs(libtorch.cargo_env()).arg(subcommand);
        command
    };
    let mirror = options.mirror.display().to_string();
    // Both sides use libtorch's default thread count (the same library, the same machine).
    let hf = |what: &str| {
        let mut command = Command::new(python);
        command.arg(&script).args([what, "--model"]).arg(&hf_model);
        command
    };
    // The 2,000 sentences the epoch and precision parts both train on, written once.
    let sst2_2000 = match wants("epoch") || wants("precision") {
        true => Some(write_task(&options.mirror, &out.join("sst2-2000"), 2000)?),
        false => None,
    };
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let hf_empty = || format!("HF: {}", hf_missing.as_deref().unwrap_or(""));

    if wants("step") {
        let json = out.join("step.json");
        let args =
            ["--model", "minilm", "--batch", "32", "--seq", "128", "--steps", "6", "--mirror", &mirror, "--json"];
        crate::run_checked(suite("bench-train-step").args(args).arg(&json))?;
        let ours: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).context("bench-train-step wrote no JSON")?)?;
        let mode = |name: &str| {
            ours["rows"]
                .as_array()
                .and_then(|rows| rows.iter().find(|row| row["mode"] == name && row["engine"] == "default"))
                .cloned()
                .unwrap_or_default()
        };
        let full_s = number(&mode("full"), "median_step_s");
        let reference = match &hf_missing {
            None => Some(json_of(
                hf("step").args(["--batch", "32", "--seq", "128", "--steps", "6"]),
                &out.join("step-hf.json"),
            )?),
            Some(_) => None,
        };
        let hf_s = reference.as_ref().and_then(|value| number(value, "median_step_s"));
        rows.push(row(
            "full step, MiniLM-L6, 32 x 128 (s)",
            fmt(full_s, 3),
            hf_s.map_or_else(hf_empty, |s| format!("HF {s:.3}")),
            full_s.zip(hf_s).map(|(a, b)| a / b),
            "parity",
        ));
        for name in ["said", "did"] {
            let this = mode(name);
            rows.push(row(
                format!("{} step at d = 1000 (s)", name.to_uppercase()),
                fmt(number(&this, "median_step_s"), 3),
                format!("full {}", fmt(full_s, 3)),
                number(&this, "step_over_full"),
                "<= 1.10 (the models issue)",
            ));
        }
        let mib = |row: &Value| number(row, "peak_rss_bytes").map(|bytes| bytes / f64::from(1 << 20));
        rows.push(row(
            "SAID peak memory (MiB)",
            fmt(mib(&mode("said")), 0),
            format!("full {}", fmt(mib(&mode("full")), 0)),
            number(&mode("said"), "memory_over_full"),
            "<= 1.0 (the speed issue)",
        ));
        raw.insert("step".into(), serde_json::json!({"ours": ours, "hf": reference}));
    }

    if wants("epoch") {
        let task = sst2_2000.as_deref().expect("written when this part is wanted");
        // Training and one dev pass on both sides (no training-accuracy pass, as the presets).
        let args = [
            "--mode",
            "full",
            "--lr",
            "5e-5",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--max-len",
            "128",
            "--length-buckets",
            "16",
            "--train-eval-examples",
            "0",
            "--precision",
            "f32",
            "--mirror",
            &mirror,
            "--offline",
        ];
        let mut command = suite("finetune");
        command.args(["--model", MINILM, "--task"]).arg(task).args(args);
        let ours = json_of(&mut command, &out.join("epoch.json"))?;
        let (ours_s, ours_acc, ours_padding) =
            (number(&ours, "wall_time_s"), number(&ours, "best.score"), number(&ours, "padding_fraction"));
        let mut references = serde_json::Map::new();
        for (sampler, goal) in [("random", "<= 0.5"), ("group_by_length", "<= 1.0")] {
            let reference = match &hf_missing {
                None => Some(json_of(
                    hf("epoch")
                        .args(["--max-len", "128", "--batch", "32", "--lr", "5e-5", "--sampler", sampler, "--train"])
                        .arg(task.with_file_name("train.jsonl"))
                        .arg("--dev")
                        .arg(task.with_file_name("dev.jsonl")),
                    &out.join(format!("epoch-hf-{sampler}.json")),
                )?),
                Some(_) => None,
            };
            let hf_s = reference.as_ref().and_then(|value| Some(number(value, "train_s")? + number(value, "eval_s")?));
            let described = reference.as_ref().map_or_else(hf_empty, |value| {
                format!(
                    "HF, {sampler}: {} (padding {}, dev {})",
                    fmt(hf_s, 1),
                    percent(number(value, "padding_fraction")),
                    fmt(number(value, "dev_accuracy"), 4)
                )
            });
            rows.push(row(
                "epoch, 2,000 SST-2 sentences, max_len 128, training + one dev pass (s)",
                format!("{} (padding {}, dev {})", fmt(ours_s, 1), percent(ours_padding), fmt(ours_acc, 4)),
                described,
                ours_s.zip(hf_s).map(|(a, b)| a / b),
                goal,
            ));
            references.insert(sampler.into(), reference.unwrap_or_default());
        }
        raw.insert("epoch".into(), serde_json::json!({"ours": ours, "hf": references}));
    }

    if wants("projection") {
        let json = out.join("projection.json");
        crate::run_checked(suite("bench-fastfood").args(["--only", "step", "--json"]).arg(&json))?;
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        for case in report["step_projection"].as_array().into_iter().flatten() {
            let name = format!("{}, {}", case["model"].as_str().unwrap_or("?"), case["scope"].as_str().unwrap_or("?"));
            rows.push(row(
                format!("P and the weight write, {name} (ms)"),
                fmt(number(case, "write_weights_ms"), 1),
                format!("copy {}", fmt(number(case, "write_floor_ms"), 1)),
                number(case, "write_over_floor"),
                "<= 3",
            ));
            rows.push(row(
                format!("P^T of the gradients, {name} (ms)"),
                fmt(number(case, "gradients_ms"), 1),
                format!("copy {}", fmt(number(case, "gradients_floor_ms"), 1)),
                number(case, "gradients_over_floor"),
                "<= 3",
            ));
        }
        raw.insert("projection".into(), report);
    }

    if wants("jobs") {
        let task = write_task(&options.mirror, &out.join("sst2-1000"), 1000)?;
        let spec = out.join("jobs.yaml");
        std::fs::write(&spec, jobs_spec(&task))?;
        let mut per_hour = Vec::new();
        for jobs in ["1", "2"] {
            let folder = out.join(format!("jobs-{jobs}"));
            if folder.exists() {
                std::fs::remove_dir_all(&folder).with_context(|| format!("empty {}", folder.display()))?;
            }
            let start = Instant::now();
            let args = ["--jobs", jobs, "--mirror", &mirror, "--offline"];
            crate::run_checked(suite("reproduce").arg("--spec").arg(&spec).arg("--out").arg(&folder).args(args))?;
            let seconds = start.elapsed().as_secs_f64();
            let runs =
                std::fs::read_dir(folder.join("runs")).map_or(0, |dir| dir.filter(|entry| entry.is_ok()).count());
            per_hour.push((jobs, runs, seconds, runs as f64 * 3600.0 / seconds));
        }
        let one = per_hour[0].3;
        for &(jobs, runs, seconds, rate) in &per_hour {
            rows.push(row(
                format!("runs per hour, --jobs {jobs} ({runs} runs in {seconds:.0} s)"),
                format!("{rate:.0}"),
                format!("--jobs 1: {one:.0}"),
                Some(rate / one),
                "the default: the larger",
            ));
        }
        let measured: Vec<Value> = per_hour
            .iter()
            .map(|(jobs, runs, seconds, rate)| {
                serde_json::json!({"jobs": jobs, "runs": runs, "wall_s": seconds, "runs_per_hour": rate})
            })
            .collect();
        raw.insert("jobs".into(), Value::Array(measured));
    }

    if wants("precision") {
        let task = sst2_2000.as_deref().expect("written when this part is wanted");
        let said = |precision: &str| {
            let args = [
                "--mode",
                "said",
                "--d",
                "1861",
                "--lr",
                "0.22",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--max-len",
                "64",
                "--train-eval-examples",
                "0",
                "--precision",
                precision,
                "--mirror",
                &mirror,
                "--offline",
            ];
            let mut command = suite("finetune");
            command.args(["--model", MINILM, "--task"]).arg(task).args(args);
            json_of(&mut command, &out.join(format!("precision-{precision}.json")))
        };
        let seconds = |value: &Value| number(value, "wall_time_s");
        let accuracy = |value: &Value| number(value, "best.score");
        let f32_run = said("f32")?;
        let bf16_run = if cpu_has_bf16() { Some(said("bf16")?) } else { None };
        let ours = format!(
            "bf16 {}",
            bf16_run.as_ref().map_or("not run".to_owned(), |run| format!(
                "{} (dev {})",
                fmt(seconds(run), 1),
                fmt(accuracy(run), 4)
            ))
        );
        let reference = format!("f32 {} (dev {})", fmt(seconds(&f32_run), 1), fmt(accuracy(&f32_run), 4));
        let goal = if bf16_run.is_some() {
            "< 1 at the same dev"
        } else {
            "no bf16 units here: `precision: auto` trains in f32"
        };
        rows.push(row(
            "SAID run, d = 1861, one epoch, max_len 64 (s)",
            ours,
            reference,
            bf16_run.as_ref().and_then(|run| Some(seconds(run)? / seconds(&f32_run)?)),
            goal,
        ));
        raw.insert("precision".into(), serde_json::json!({"f32": f32_run, "bf16": bf16_run}));
    }

    let table = markdown(&rows);
    println!("\n{table}");
    for (name, text) in [("bench.json", serde_json::to_string_pretty(&Value::Object(raw))?), ("bench.md", table)] {
        let partial = out.join(format!("{name}.partial"));
        std::fs::write(&partial, text).with_context(|| format!("write {}", partial.display()))?;
        std::fs::rename(&partial, out.join(name)).with_context(|| format!("write {}", out.join(name).display()))?;
    }
    eprintln!("table and raw outputs in {}", out.display());
    Ok(())
}

fn fmt(value: Option<f64>, digits: usize) -> String {
    value.map_or("n/a".to_owned(), |value| format!("{value:.digits$}"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |value| format!("{:.0}%", 100.0 * value))
}

/// The runs-per-hour spec: a one-epoch full baseline at one rate and a SAID probe at d = 1861 over
/// two rates, two seeds each (6 runs), on `task`.
fn jobs_spec(task: &Path) -> String {
    format!(
        "description: cargo xtask bench's runs-per-hour workload (MiniLM-L6, 1,000 SST-2 sentences, one epoch)\n\
         device: cpu\n\
         seeds: [0, 1]\n\
         training:\n  epochs: 1\n  batch_size: 32\n  max_len: 64\n  length_buckets: 16\n  train_eval_examples: 0\n\
         \x20 precision: f32\n\
         search: {{mode: grid, d_min: 1861, d_max: 1861, threshold: 0.9}}\n\
         methods:\n  full: {{method: full, lr: [1.0e-4]}}\n  said: {{method: said, lr: [0.22, 0.66], scope: global}}\n\
         tasks:\n  sst2_1000: {{train: {}, dev: {}, text: [sentence], label: label, labels: [0, 1]}}\n\
         experiments:\n  - name: jobs\n    models: [{MINILM}]\n    tasks: [sst2_1000]\n    methods: [said]\n",
        task.with_file_name("train.jsonl").display(),
        task.with_file_name("dev.jsonl").display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-bench-all-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// GLUE's TSV has no quoting: a `"` or a `\` in a sentence is text, and the JSON line keeps it.
    #[test]
    fn sst2_rows_become_json_lines_with_every_character_kept() {
        let dir = scratch("tsv");
        let tsv = dir.join("train.tsv");
        std::fs::write(&tsv, "sentence\tlabel\na \"quoted\" word \\ \t1\nsecond\t0\nthird\t1\n").unwrap();
        let jsonl = dir.join("train.jsonl");
        assert_eq!(tsv_to_jsonl(&tsv, &jsonl, |index| index != 1, usize::MAX).unwrap(), 2);
        let rows: Vec<Value> =
            std::fs::read_to_string(&jsonl).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(rows[0]["sentence"], "a \"quoted\" word \\ ");
        assert_eq!(rows[0]["label"], 1);
        assert_eq!(rows[1]["sentence"], "third");
        assert_eq!(tsv_to_jsonl(&tsv, &jsonl, |_| true, 1).unwrap(), 1);
        std::fs::write(&tsv, "sentence\tlabel\nno label here\n").unwrap();
        let err = tsv_to_jsonl(&tsv, &jsonl, |_| true, usize::MAX).unwrap_err().to_string();
        assert!(err.contains("row 2 has no tab"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mirror_without_the_checkpoint_or_the_task_is_named() {
        let dir = scratch("mirror");
        let err = minilm_folder(&dir).unwrap_err().to_string();
        assert!(err.contains("no MiniLM-L6 checkpoint in the mirror"), "{err}");
        std::fs::create_dir_all(dir.join("glue/SST-2")).unwrap();
        std::fs::write(dir.join("glue/SST-2/train.tsv"), "sentence\tlabel\nonly\t1\n").unwrap();
        std::fs::write(dir.join("glue/SST-2/dev.tsv"), "sentence\tlabel\nx\t0\n").unwrap();
        let err = write_task(&dir, &dir.join("task"), 2).unwrap_err().to_string();
        assert!(err.contains("only 1 rows, 2 needed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Flags take `--flag VALUE` or `--flag=VALUE`; paths are the caller's; a Python named by
    /// path is the caller's too, a bare name is looked up on PATH.
    #[test]
    fn flags_are_read_from_the_callers_folder() {
        let (here, root) = (Path::new("/home/me/work"), Path::new("/repo"));
        let args: Vec<String> =
            ["--mirror=../mirror", "--python", "venv/bin/python", "--skip", "jobs"].map(String::from).to_vec();
        let options = parse(&args, here, root).unwrap();
        assert_eq!(options.mirror, here.join("../mirror"));
        assert_eq!(options.python, ("/home/me/work/venv/bin/python".to_owned(), true));
        assert_eq!(options.out, root.join("target/bench-all"));
        assert_eq!(options.skip, ["jobs"]);
        let bare = parse(&["--mirror", "m", "--python=python3.12"].map(String::from), here, root).unwrap();
        assert_eq!(bare.python, ("python3.12".to_owned(), true));
        for (args, says) in [
            (vec!["--python", "p"], "--mirror DIR is required"),
            (vec!["--mirror", "m", "--skip", "gpu"], "--skip gpu: not a part"),
            (vec!["--mirror"], "--mirror needs a value"),
            (vec!["--mirror", "m", "--fast"], "unknown argument `--fast`"),
        ] {
            let args: Vec<String> = args.into_iter().map(String::from).collect();
            let err = parse(&args, here, root).err().unwrap().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    /// A Python the user named that cannot run the HF reference stops the benchmark before
    /// anything is installed or built; so do a mirror's missing files.
    #[test]
    fn a_named_python_that_cannot_run_the_reference_is_refused_before_any_work() {
        let dir = scratch("python");
        let commit = dir.join("hf").join(MINILM).join("1110a243");
        std::fs::create_dir_all(&commit).unwrap();
        std::fs::write(commit.join("config.json"), "{}").unwrap();
        let mirror = dir.display().to_string();
        let run_with = |python: &str| {
            let args = ["--mirror", &mirror, "--python", python, "--out"].map(String::from);
            let mut args = args.to_vec();
            args.push(dir.join("out").display().to_string());
            run(&args, &dir).err().unwrap().to_string()
        };
        assert!(run_with("/no/such/python").contains("glue/SST-2/train.tsv: missing"));
        std::fs::create_dir_all(dir.join("glue/SST-2")).unwrap();
        for split in ["train", "dev"] {
            std::fs::write(dir.join(format!("glue/SST-2/{split}.tsv")), "sentence\tlabel\nok\t1\n").unwrap();
        }
        let err = run_with("/no/such/python");
        assert!(err.starts_with("--python /no/such/python:"), "{err}");
        assert!(!dir.join("out").exists(), "nothing written");
        std::fs::create_dir_all(dir.join("hf").join(MINILM).join("other")).unwrap();
        std::fs::write(dir.join("hf").join(MINILM).join("other/config.json"), "{}").unwrap();
        assert!(run_with("python3").contains("2 commit folders"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_table_has_one_row_per_measure_and_says_what_is_missing() {
        let rows = [row("step", "1.0", "HF 2.0", Some(0.5), "1.0"), row("bf16", "not run", "f32 3.0", None, "-")];
        let table = markdown(&rows);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| step | 1.0 | HF 2.0 | 0.50 | 1.0 |"), "{table}");
        assert!(table.contains("| bf16 | not run | f32 3.0 | n/a | - |"), "{table}");
        assert_eq!(number(&serde_json::json!({"best": {"score": 0.5}}), "best.score"), Some(0.5));
        assert_eq!(number(&serde_json::json!({"best": null}), "best.score"), None);
    }
}
