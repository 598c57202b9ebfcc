//! The experiment runner end to end through the `bench-suite reproduce` binary (each run in its
//! own process, as users run it): the `smoke` preset, a rerun that reuses everything, resumption
//! after `kill -9` at random moments, two processes sharing a results folder, sharding, and the
//! errors found before any training.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bench_suite::experiment::runner::{Shard, select};
use bench_suite::experiment::{PRESETS, preset, spec};
use results::{ResultsDir, RunRecord, SearchRecord};

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench-suite"));
    // Keep the user's cache out of the tests: the smoke preset needs no files.
    command.env("INTRINSIC_BENCH_HOME", scratch("home"));
    command
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-suite-experiment-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reproduce(args: &[&str]) -> Output {
    let output = binary().arg("reproduce").args(args).output().unwrap();
    assert!(output.status.success(), "reproduce {args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn write_spec(name: &str, text: &str) -> PathBuf {
    let path = scratch("specs").join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs and searches of a results folder, with what differs between processes (wall time,
/// memory, host, time of day, how many steps this process did) cleared.
fn comparable(dir: &Path) -> (Vec<RunRecord>, Vec<SearchRecord>) {
    let results = ResultsDir::new(dir).unwrap();
    let mut runs = results.runs().unwrap();
    for run in &mut runs {
        run.result.wall_time_s = 0.0;
        run.result.steps_this_process = 0;
        run.peak_resident_bytes = None;
        run.provenance.finished_at = 0;
    }
    let mut searches = results.searches().unwrap();
    for search in &mut searches {
        search.provenance.finished_at = 0;
    }
    (runs, searches)
}

/// Whether a run in `dir`'s `work/` has saved its state (a SIGTERM then stops it mid-run).
fn has_run_state(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("work"))
        .map(|dirs| dirs.filter_map(Result::ok).any(|dir| dir.path().join("state.json").exists()))
        .unwrap_or(false)
}

/// Everything visible in the results folder is a whole, parseable record; no work or partial
/// files are left once the command has finished.
fn check_clean(dir: &Path) {
    for sub in ["runs", "searches"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.ends_with(".json") && !name.starts_with('.'), "stray file {}", path.display());
        }
    }
    assert_eq!(std::fs::read_dir(dir.join("work")).unwrap().count(), 0, "work folders left behind");
}

#[test]
fn smoke_runs_reuses_and_survives_kill_9() {
    let out = scratch("smoke");
    let _ = std::fs::remove_dir_all(&out);
    let first = reproduce(&["--preset", "smoke", "--out", out.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&first.stdout).into_owned();
    eprintln!("{table}");
    assert!(table.contains("d90 (smoke)") && table.contains("said") && table.contains("did"), "{table}");
    check_clean(&out);
    let (runs, searches) = comparable(&out);
    assert_eq!(searches.len(), 2);
    // The baseline and the head-only control are shared by both searches: one run each.
    assert_eq!(runs.iter().filter(|run| run.spec.train.mode == results::Mode::Full).count(), 1);
    let head: Vec<&RunRecord> = runs.iter().filter(|run| run.spec.train.mode == results::Mode::HeadOnly).collect();
    assert_eq!(head.len(), 1);
    // The tiny BERT's head: pooler 32 x 32 + 32 and classifier 32 x 2 + 2.
    assert_eq!(head[0].result.trainable_parameters, 32 * 32 + 32 + 32 * 2 + 2);
    for search in &searches {
        let control = search.control.as_ref().expect("smoke names a control");
        assert_eq!(
            (control.runs.as_slice(), control.trainable_parameters),
            (&[head[0].key.clone()][..], head[0].result.trainable_parameters)
        );
        // Scored as a probe: a run that predicts one class does not count.
        let constant = head[0].result.best.as_ref().is_some_and(|best| best.predicts_one_class);
        assert_eq!(control.score, head[0].best_score.filter(|_| !constant));
        let reaches = control.score.zip(search.baseline.target).is_some_and(|(score, target)| score >= target);
        assert_eq!(search.head_reaches_target(), Some(reaches));
    }
    for search in &searches {
        assert!(search.baseline.score.is_some_and(|score| score > search.baseline.majority_accuracy));
        let keys: Vec<&String> = search.probes.iter().flat_map(|probe| &probe.runs).collect();
        assert!(keys.iter().all(|key| runs.iter().any(|run| &&run.key == key)), "every probe's runs are on disk");
    }

    // The same command again trains nothing.
    let again = reproduce(&["--preset", "smoke", "--out", out.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(log.matches("(reused)").count(), 2, "{log}");
    assert!(!log.contains(" s)"), "a run trained again:\n{log}");
    assert_eq!(comparable(&out), (runs.clone(), searches.clone()));

    // Killed with SIGKILL at seeded random moments, then run to the end: the same numbers.
    let killed = scratch("killed");
    let _ = std::fs::remove_dir_all(&killed);
    let mut rng = subspace::random::keyed_rng("experiment test", 0, "kill times", 0);
    for _ in 0..4 {
        let delay_ms = 300 + subspace::random::bounded(&mut rng, 2500);
        let mut child = binary()
            .args(["reproduce", "--preset", "smoke", "--out", killed.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever is visible after a kill parses.
        let results = ResultsDir::new(&killed).unwrap();
        results.runs().unwrap();
        results.searches().unwrap();
    }
    reproduce(&["--preset", "smoke", "--out", killed.to_str().unwrap()]);
    check_clean(&killed);
    let (killed_runs, killed_searches) = comparable(&killed);
    assert_eq!(killed_runs.len(), runs.len(), "no duplicate or missing run");
    for (a, b) in killed_runs.iter().zip(&runs) {
        assert_eq!(a.key, b.key);
        assert_eq!(a.result.evaluations, b.result.evaluations, "{}", a.signature);
        assert_eq!(a.best_score, b.best_score);
    }
    let outcomes = |searches: &[SearchRecord]| {
        searches.iter().map(|search| (search.outcome.clone(), search.probes.clone())).collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&killed_searches), outcomes(&searches));

    // SIGTERM (a scheduler's preemption, `scancel`, a time limit): the run in progress ends after
    // its step with its state saved, the process exits 143, and the same command finishes the job
    // with the same numbers.
    let terminated = scratch("terminated");
    let _ = std::fs::remove_dir_all(&terminated);
    let child = binary()
        .args(["reproduce", "--preset", "smoke", "--out", terminated.to_str().unwrap()])
        // A pause is reported in one line, without the backtrace a real error carries.
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let has_checkpoint = || has_run_state(&terminated);
    let waited = std::time::Instant::now();
    while !has_checkpoint() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{log}");
    assert!(log.contains("terminated (SIGTERM) after step") && log.contains("the same command resumes"), "{log}");
    assert!(log.contains("Stopped: ") && !log.contains("backtrace"), "{log}");
    assert!(has_checkpoint(), "the interrupted run left its checkpoint");
    reproduce(&["--preset", "smoke", "--out", terminated.to_str().unwrap()]);
    check_clean(&terminated);
    let (terminated_runs, terminated_searches) = comparable(&terminated);
    assert_eq!(terminated_runs.len(), runs.len());
    for (a, b) in terminated_runs.iter().zip(&runs) {
        assert_eq!((&a.key, &a.result.evaluations), (&b.key, &b.result.evaluations), "{}", a.signature);
    }
    assert_eq!(outcomes(&terminated_searches), outcomes(&searches));

    // Two processes sharing one results folder (as one per GPU would): each run trains once.
    let shared = scratch("shared");
    let _ = std::fs::remove_dir_all(&shared);
    let spawn = || {
        binary()
            .args(["reproduce", "--preset", "smoke", "--out", shared.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let logs: Vec<String> = [first, second]
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stderr).into_owned()
        })
        .collect();
    let trained: usize = logs.iter().map(|log| log.lines().filter(|line| line.ends_with(" s)")).count()).sum();
    assert_eq!(trained, runs.len(), "every run trained exactly once across the two processes:\n{}", logs.join("\n"));
    let (shared_runs, shared_searches) = comparable(&shared);
    assert_eq!(outcomes(&shared_searches), outcomes(&searches));
    assert_eq!(shared_runs.len(), runs.len());
    for dir in [&out, &killed, &terminated, &shared] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `--jobs 2`: a probe's runs train side by side in worker processes (one CPU thread each here),
/// with records equal to those of one at a time with one thread (every field but wall time, memory
/// and finishing time); SIGTERM stops the workers after their step (exit 143) and the same command
/// finishes with the same numbers. (With two threads instead of one, torch's CPU kernels round
/// some sums differently: this model's logged training loss then moves in the 8th digit.)
#[test]
fn jobs_train_side_by_side_with_the_same_records() {
    let spec = write_spec(
        "jobs.yaml",
        &preset("smoke")
            .unwrap()
            .1
            .replace("seeds: [0]", "seeds: [0, 1]")
            .replace("methods: [said, did]", "methods: [said]"),
    );
    let spec = spec.to_str().unwrap();
    let (one, two, stopped) = (scratch("jobs-1"), scratch("jobs-2"), scratch("jobs-stopped"));
    for dir in [&one, &two, &stopped] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let one_thread = binary()
        .args(["reproduce", "--spec", spec, "--out", one.to_str().unwrap()])
        .env("OMP_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(one_thread.status.success(), "{}", String::from_utf8_lossy(&one_thread.stderr));
    let side_by_side = reproduce(&["--spec", spec, "--out", two.to_str().unwrap(), "--jobs", "2"]);
    check_clean(&two);
    let expected = comparable(&one);
    assert!(expected.0.len() >= 6, "a baseline and probes of two seeds each");
    assert_eq!(comparable(&two), expected, "{}", String::from_utf8_lossy(&side_by_side.stderr));

    let child = binary()
        .args(["reproduce", "--spec", spec, "--out", stopped.to_str().unwrap(), "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let has_state = || has_run_state(&stopped);
    let waited = std::time::Instant::now();
    while !has_state() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{log}");
    assert!(log.contains("terminated (SIGTERM)") && !log.contains("backtrace"), "{log}");
    reproduce(&["--spec", spec, "--out", stopped.to_str().unwrap(), "--jobs", "2"]);
    check_clean(&stopped);
    assert_eq!(comparable(&stopped), expected);
    for dir in [&one, &two, &stopped] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `lr_extend`: SAID on the smoke task over two rates below the one that learns (0.05). First
/// without it, then with it in the same folder (two workers): a probe where some seed's best run
/// lies at an end of its rates trains one more rate beyond that end, one step of the grid's ratio,
/// until every seed's best lies inside or three rounds are done; only the new rates train, the
/// runs stay seed-major, rate-minor, and a rerun trains nothing.
#[test]
fn a_probe_extends_its_rates_until_they_bracket_each_seeds_best() {
    use bench_suite::experiment::search::{GridEdge, best_rate_edges};
    let smoke = preset("smoke")
        .unwrap()
        .1
        .replace("methods: [said, did]", "methods: [said]")
        .replace("seeds: [0]", "seeds: [0, 1]");
    let grid = "said: {method: said, lr: [0.005, 0.0158]";
    let plain = write_spec("extend-not.yaml", &smoke.replace("said: {method: said, lr: [0.05]", grid));
    let extended = write_spec(
        "extend.yaml",
        &smoke.replace("said: {method: said, lr: [0.05]}", &format!("{grid}, lr_extend: 3}}")),
    );
    let out = scratch("extend");
    let _ = std::fs::remove_dir_all(&out);
    reproduce(&["--spec", plain.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    // (d, rate, seed) of every SAID run the plain search trained: none trains again.
    let field = |text: &str, name: &str| -> String {
        let value = text.split('|').find_map(|part| part.strip_prefix(name)).unwrap_or_default();
        value.split(':').next().unwrap().to_owned()
    };
    let trained_before: Vec<(String, String, String)> = comparable(&out)
        .0
        .iter()
        .filter(|run| run.spec.train.mode == results::Mode::Said)
        .map(|run| (field(&run.signature, "d:"), field(&run.signature, "lr:"), field(&run.signature, "seed:")))
        .collect();
    assert!(!trained_before.is_empty());
    let args = ["--spec", extended.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"];
    let log = String::from_utf8_lossy(&reproduce(&args).stderr).into_owned();
    check_clean(&out);
    // A generalization run (`train-eval`) trains a probe's run again on purpose.
    let trained: Vec<&str> =
        log.lines().filter(|line| line.ends_with(" s)") && !line.contains("|train-eval:")).collect();
    assert!(!trained.is_empty(), "nothing extended:\n{log}");
    for line in &trained {
        let run = (field(line, "d:"), field(line, "lr:"), field(line, "seed:"));
        assert!(line.starts_with("    said|") && !trained_before.contains(&run), "trained again: {line}");
    }
    let (runs, searches) = comparable(&out);
    let search = searches.iter().find(|search| search.signature.contains("lr-extend:3")).expect("the extended search");
    let counting = |run: &RunRecord| {
        let counts = !run.diverged && run.result.best.as_ref().is_some_and(|best| !best.predicts_one_class);
        run.best_score.filter(|_| counts)
    };
    let mut extended_probes = 0;
    for probe in &search.probes {
        let records: Vec<&RunRecord> =
            probe.runs.iter().map(|key| runs.iter().find(|run| &run.key == key).expect("on disk")).collect();
        let n_rates = records.len() / 2;
        assert_eq!(records.len(), 2 * n_rates);
        let rates: Vec<f64> = records[..n_rates].iter().map(|run| run.spec.train.lr).collect();
        for (i, run) in records.iter().enumerate() {
            assert_eq!((run.spec.train.seeds.data, run.spec.train.lr), ([0, 1][i / n_rates], rates[i % n_rates]));
        }
        // The grid's two rates, then steps of its ratio (3.16) either way, at most one per end
        // and round, so at most three at an end.
        let low_added = rates.iter().position(|&rate| rate == 0.005).expect("the grid's rates stay");
        assert_eq!(rates[low_added + 1], 0.0158);
        let high_added = n_rates - low_added - 2;
        assert!(low_added <= 3 && high_added <= 3, "d = {}: {rates:?}", probe.d);
        assert!(rates.windows(2).all(|pair| (pair[1] / pair[0] - 3.16).abs() < 1e-9), "{rates:?}");
        let scored: Vec<(u64, f64, Option<f64>)> =
            records.iter().map(|run| (run.spec.train.seeds.data, run.spec.train.lr, counting(run))).collect();
        // It stops where the rates bracket every seed's best, or after three rounds (each adding
        // a rate at one end or both).
        let edges = best_rate_edges(&scored);
        let added = low_added + high_added;
        assert!(edges.is_empty() || added >= 3, "d = {}: seeds' bests at {edges:?} of {rates:?}", probe.d);
        // A rate was added at one end only where some seed's best lay at that end before it.
        if added > 0 && (low_added == 0 || high_added == 0) {
            extended_probes += 1;
            let (before, towards) =
                if high_added > 0 { (&rates[..n_rates - 1], GridEdge::High) } else { (&rates[1..], GridEdge::Low) };
            let scored_before: Vec<(u64, f64, Option<f64>)> =
                scored.iter().filter(|(_, rate, _)| before.contains(rate)).copied().collect();
            assert!(best_rate_edges(&scored_before).contains(&towards), "d = {}: {rates:?}", probe.d);
        }
    }
    assert!(extended_probes > 0, "no probe extended its rates: {:?}", search.probes);
    // The same command again trains nothing.
    let again = reproduce(&args);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(!log.contains(" s)"), "a run trained again:\n{log}");
    assert_eq!(comparable(&out), (runs, searches));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn shards_partition_the_searches() {
    let (file, text) = preset("paper").unwrap();
    let plan = spec::parse(text, &file).unwrap();
    // table1: 4 models x 2 tasks x 6 methods (SAID and DID, each with three maps); trajectory: 21
    // checkpoints (every 10k of 200k updates, from 0) x 6 tasks; size: 21 models on MRPC;
    // multiberts: 5 checkpoints x 2 tasks.
    let total = 48 + 21 * 6 + 21 + 5 * 2;
    assert_eq!(plan.searches.len(), total);
    let all = select(&plan, &[], None).unwrap();
    for count in 1..=7 {
        let mut seen = Vec::new();
        for index in 0..count {
            let shard = select(&plan, &[], Some(Shard { index, count })).unwrap();
            assert!(shard.len() >= total / count && shard.len() <= total.div_ceil(count));
            seen.extend(shard.into_iter().map(|search| search.plan));
        }
        assert_eq!(seen.len(), all.len(), "n = {count}: no search twice");
        for search in &all {
            assert!(seen.contains(&search.plan), "n = {count}: every search in some shard");
        }
    }
    assert!(Shard::parse("4/4").is_err() && Shard::parse("1").is_err() && Shard::parse("0/2").is_ok());
    let err = select(&plan, &["table2".to_owned()], None).unwrap_err();
    assert!(err.to_string().contains("no experiment named `table2`"), "{err}");
}

#[test]
fn shipped_presets_parse() {
    for (name, _) in PRESETS {
        let (file, text) = preset(name).unwrap();
        let plan = spec::parse(text, &file).unwrap_or_else(|err| panic!("{err}"));
        assert!(!plan.searches.is_empty(), "{name}");
    }
}

/// Errors that need the model's shapes or the assets, found before any training.
#[test]
fn impossible_requests_fail_before_training() {
    let base = "\
description: bad
search: {d_min: 100, d_max: 30000}
methods:
  full: {method: full, lr: [1.0e-3]}
  did: {method: did, lr: [0.2]}
experiments:
  - name: x
    models: [synthetic/tiny-bert]
    tasks: [synthetic]
    methods: [did]
";
    let fails = |name: &str, text: &str, extra: &[&str]| {
        let path = write_spec(name, text);
        let out = scratch(&format!("out-{name}"));
        let output = binary()
            .args(["reproduce", "--spec", path.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let _ = std::fs::remove_dir_all(&out);
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // d_max above D = 20,642.
    let err = fails("dmax.yaml", base, &[]);
    assert!(err.contains("dmax.yaml:2: search.d_max: 30000 exceeds D = 20642"), "{err}");
    // An asset missing offline, named with its line.
    let text = base.replace("d_max: 30000", "d_max: 1000").replace(
        "models: [synthetic/tiny-bert]\n    tasks: [synthetic]",
        "models: [FacebookAI/roberta-base]\n    tasks: [mrpc]",
    );
    let err = fails("offline.yaml", &text, &["--offline"]);
    assert!(err.contains("offline.yaml:8: experiments[0].models[0]: `FacebookAI/roberta-base`: missing"), "{err}");
    // A synthetic model on a real task.
    let text = base.replace("d_max: 30000", "d_max: 1000").replace("tasks: [synthetic]", "tasks: [sst2]");
    let err = fails("mix.yaml", &text, &[]);
    assert!(err.contains("experiments[0].models[0]") && err.contains("synthetic task only"), "{err}");
}

/// SAID with `d <= m`: MiniLM has 105 tensors with its head, so per-tensor scales leave no
/// `theta` at d = 100 (needs the shared mirror for the checkpoint's config).
#[test]
fn said_with_d_at_most_m_is_refused() {
    let Some(mirror) = crate::support::mirror("the d <= m refusal on MiniLM") else {
        return;
    };
    let text = "\
description: bad
search: {d_min: 100, d_max: 1000}
methods:
  full: {method: full, lr: [1.0e-3]}
  said: {method: said, lr: [0.2], grouping: per_tensor}
experiments:
  - name: x
    models: [sentence-transformers/all-MiniLM-L6-v2]
    tasks: [sst2]
    methods: [said]
";
    let path = write_spec("said.yaml", text);
    let out = scratch("out-said");
    let output = Command::new(env!("CARGO_BIN_EXE_bench-suite"))
        .args(["reproduce", "--spec", path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--offline"])
        .arg("--mirror")
        .arg(mirror)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("said.yaml:2: search.d_min: SAID needs d > m: d = 100"), "{err}");
}
