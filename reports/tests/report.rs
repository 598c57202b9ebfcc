//! The report of the fixture results (`tests/fixtures/make_fixtures.py` wrote them, with known
//! answers): snapshots of the rendered markdown and CSV (refresh with `UPDATE_EXPECT=1`), the
//! d90 and bracket equal to what the searches recorded, determinism, `check` and `compare`.

use std::path::{Path, PathBuf};

use expect_test::expect_file;
use reports::{Paper, Report, Source, build, build_from, compare, records};
use results::Architecture;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

fn report() -> Report {
    let records = records::load(&fixtures()).unwrap();
    build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap()
}

fn text(report: &Report, name: &str) -> String {
    String::from_utf8(report.files[name].clone()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reports-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A scratch results folder holding a copy of the fixture's search and run records.
fn fixture_copy(name: &str) -> PathBuf {
    let dir = scratch(name);
    for sub in ["searches", "runs"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(fixtures().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn rendered_report_matches_its_snapshots() {
    let report = report();
    expect_file!["snapshots/README.md"].assert_eq(&text(&report, "README.md"));
    expect_file!["snapshots/table1.csv"].assert_eq(&text(&report, "table1.csv"));
    expect_file!["snapshots/orderings.csv"].assert_eq(&text(&report, "orderings.csv"));
    expect_file!["snapshots/generalization.csv"].assert_eq(&text(&report, "generalization.csv"));
    expect_file!["snapshots/claims.csv"].assert_eq(&text(&report, "claims.csv"));
    let names: Vec<&str> = report.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "baselines.csv",
            "claims.csv",
            "compression.csv",
            "figure1.csv",
            "figure1__all-MiniLM-L6-v2__sst2.svg",
            "figure1__bert-base-uncased__mrpc.svg",
            "figure1__electra-base-discriminator__sst2.svg",
            "figure1__pretrained_mini_1000__sst2.svg",
            "figure1__pretrained_mini_500__sst2.svg",
            "figure1__roberta-base__mrpc.svg",
            "generalization.csv",
            "generalization.svg",
            "inventory.csv",
            "model_size.csv",
            "model_size.svg",
            "orderings.csv",
            "pretraining.csv",
            "size_trends.csv",
            "table1.csv",
            "trajectory.csv",
            "trajectory__mini__said.svg",
            "trajectory_trends.csv"
        ]
    );
    expect_file!["snapshots/trajectory.csv"].assert_eq(&text(&report, "trajectory.csv"));
    expect_file!["snapshots/pretraining.csv"].assert_eq(&text(&report, "pretraining.csv"));
    // The unable checkpoint is a mark on the update axis, the two d90 values points of the line.
    let figure = text(&report, "trajectory__mini__said.svg");
    assert!(figure.starts_with("<svg") && figure.contains("pre-training update"), "{figure}");
    assert!(text(&report, "figure1__roberta-base__mrpc.svg").starts_with("<svg"));
}

/// Every d90 and bracket in `table1.csv` is the one its search recorded.
#[test]
fn table1_shows_what_the_searches_recorded() {
    let searches = records::load(&fixtures()).unwrap().searches;
    let table = text(&report(), "table1.csv");
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|header| header == name).unwrap();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let search = searches
            .iter()
            .find(|s| {
                s.plan.model == record[column("model")]
                    && s.plan.task == record[column("task")]
                    && s.plan.method.name == record[column("method")]
            })
            .unwrap();
        let vacuous = search.baseline.target.is_some_and(|target| target <= search.baseline.majority_accuracy);
        let (d90, low) = match search.outcome {
            records::Outcome::Found { d90, bracket: (low, _) } if !vacuous => {
                (d90.to_string(), low.map_or(String::new(), |l| l.to_string()))
            }
            _ => (String::new(), String::new()),
        };
        assert_eq!(record[column("d90")], d90);
        if vacuous {
            assert_eq!(&record[column("outcome")], "unable", "a target at or below the majority class");
        }
        assert_eq!(record[column("bracket_low")], low);
        rows += 1;
    }
    assert_eq!(rows, searches.len());
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let mut records = records::load(&fixtures()).unwrap();
    let first = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    records.searches.reverse();
    records.runs.rotate_left(5);
    let shuffled = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    assert_eq!(first, shuffled);
    assert_eq!(first, report());
}

#[test]
fn check_and_compare_fail_on_planted_differences_only() {
    let report = report();
    let dir = scratch("check");
    report.write(&dir).unwrap();
    assert_eq!(report.check(&dir), Vec::<String>::new());
    // A planted difference in line 3 of table1.csv.
    let path = dir.join("table1.csv");
    let original = std::fs::read_to_string(&path).unwrap();
    let planted = original.replacen("per_layer,cuda,6,896,896,", "per_layer,cuda,6,896,897,", 1);
    assert_ne!(original, planted);
    std::fs::write(&path, &planted).unwrap();
    let differences = report.check(&dir);
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(differences[0].contains("table1.csv:3: differs"), "{}", differences[0]);
    // A stale figure is a difference too.
    std::fs::write(&path, &original).unwrap();
    std::fs::write(dir.join("figure1__gone.svg"), "<svg/>").unwrap();
    assert!(report.check(&dir)[0].contains("figure1__gone.svg: not produced"), "{:?}", report.check(&dir));

    // compare: the same report has nothing beyond tolerance; a moved d90 is listed.
    let other = scratch("other");
    report.write(&other).unwrap();
    assert_eq!(compare(&dir, &other, 0.0).unwrap(), Vec::<String>::new());
    std::fs::write(other.join("table1.csv"), &planted).unwrap();
    let moved = compare(&dir, &other, 0.0).unwrap();
    assert!(moved.iter().any(|line| line == "FacebookAI/roberta-base mrpc said: d90 897 -> 896"), "{moved:?}");
    // 1 in 896 is within a 1% tolerance.
    assert!(compare(&dir, &other, 0.01).unwrap().iter().all(|line| !line.contains("d90 897")));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

/// Every committed results folder (`runs/<name>` as git tracks it: the presets' and the specs')
/// has its committed report (`reports/<name>`), and the report is what the results give (the same
/// check as `cargo xtask report --preset <name> --check`).
#[test]
fn committed_preset_reports_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let presets = results::committed_results(root).unwrap();
    for preset in ["quick", "miniature", "quick-seeds-3-5", "quick-constant-lr"] {
        assert!(presets.iter().any(|name| name == preset), "runs/{preset} is missing: {presets:?}");
    }
    for preset in &presets {
        let runs = format!("runs/{preset}");
        // As the binary reads them: the searches its plan lists (and how many have no record yet).
        let records = records::load_planned(&root.join(&runs), preset).unwrap();
        // A results folder of a spec (bench-suite/specs/) is regenerated with --spec, not --preset.
        let spec = format!("bench-suite/specs/{preset}.yaml");
        let source = if root.join(&spec).exists() { Source::Spec(&spec) } else { Source::Preset(preset) };
        let report = build_from(&source, &runs, &records, &Paper::embedded()).unwrap();
        let differences = report.check(&root.join("reports").join(preset));
        let source = source.argument();
        assert!(differences.is_empty(), "regenerate with `cargo xtask report {source}`:\n{}", differences.join("\n"));
    }
}

/// A reproduction stopped part way (runs resume by key, over several sittings): the plan lists
/// searches with no record yet, and the report says how many, at its top.
#[test]
fn a_report_of_an_unfinished_reproduction_says_so() {
    let dir = fixture_copy("unfinished");
    let all = records::load(&dir).unwrap();
    let mut keys: Vec<String> = all.searches.iter().map(|search| search.key.clone()).collect();
    keys.push("s00000000000dead".to_owned());
    results::ResultsDir::at(&dir).save_plan("mine", None, &keys).unwrap();
    let mine = records::load_planned(&dir, "mine").unwrap();
    assert_eq!((mine.unfinished, mine.left_out), (1, 0));
    let readme = text(&build("mine", "unfinished", &mine, &Paper::embedded()).unwrap(), "README.md");
    let says = format!(
        "**Unfinished: this report covers {} of the {} searches that `reproduce` of `mine` planned in this folder; \
         the other 1 have no record yet**",
        keys.len() - 1,
        keys.len()
    );
    assert!(readme.contains(&says), "{readme}");
    // A finished one says nothing of the kind.
    keys.pop();
    results::ResultsDir::at(&dir).save_plan("mine", None, &keys).unwrap();
    let mine = records::load_planned(&dir, "mine").unwrap();
    let readme = text(&build("mine", "unfinished", &mine, &Paper::embedded()).unwrap(), "README.md");
    assert!(mine.unfinished == 0 && !readme.contains("Unfinished"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `cargo xtask report --spec FILE` hands the binary the spec's absolute path: the report names
/// it relative to the project root, as the committed reports do, wherever the checkout lies.
#[test]
fn a_spec_given_by_its_absolute_path_is_named_from_the_project_root() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = scratch("absolute-spec");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_reports"))
        .current_dir(root)
        .arg("--spec")
        .arg(root.join("bench-suite/specs/mrpc-cpu.yaml"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("- spec: `bench-suite/specs/mrpc-cpu.yaml`"), "{readme}");
    assert!(readme.contains("`cargo xtask report --spec bench-suite/specs/mrpc-cpu.yaml`"));
    assert!(!readme.contains(&root.display().to_string()));
    std::fs::remove_dir_all(&out).unwrap();
}

/// Orderings compare d90s through their intervals: a RoBERTa-Large SAID search identical to
/// RoBERTa-Base's (the same crossings on every resample) gives a ratio of 1 with an interval that
/// contains it, so `large_le_base` is inconclusive, never a tie counted as held; the unable BERT-Base
/// DID cell appears in no ordering; ELECTRA's per-example SAID and DID decide SAID <= DID (held),
/// RoBERTa's seed-only ones the other way (not held).
#[test]
fn orderings_read_their_own_intervals_and_leave_unable_cells_out() {
    let mut records = records::load(&fixtures()).unwrap();
    let searches = &mut records.searches;
    let mut large = searches
        .iter()
        .find(|s| s.plan.model == "FacebookAI/roberta-base" && s.plan.method.mode == results::Mode::Said)
        .unwrap()
        .clone();
    large.key = "s0000000000000ff".to_owned();
    large.plan.model = "FacebookAI/roberta-large".to_owned();
    large.signature = large.signature.replace("roberta-base", "roberta-large");
    large.architecture =
        Some(Architecture { model_type: "roberta".to_owned(), num_hidden_layers: 24, hidden_size: 1024 });
    searches.push(large);
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let orderings = text(&report, "orderings.csv");
    let row = |ordering: &str, cell: &str| -> String {
        orderings
            .lines()
            .find(|line| line.starts_with(ordering) && line.contains(cell))
            .unwrap_or_else(|| panic!("no {ordering} row for {cell}: {orderings}"))
            .to_owned()
    };
    let large_base = row("large_le_base", "RoBERTa / mrpc");
    assert!(large_base.contains(r#",1.00,"[1.00, 1.00]",0.500,yes,inconclusive,"#), "{large_base}");
    assert!(!orderings.contains("bert-base-uncased (did)"), "{orderings}");
    assert!(row("said_le_did", "electra").contains(",held,"), "{orderings}");
    assert!(row("said_le_did", "roberta-base").contains(",not held,"), "{orderings}");
    let claims = text(&report, "claims.csv");
    assert!(claims.contains(r#""(b) SAID d90 <= DID d90 (same model, task and map)",inconclusive,"#), "{claims}");
}

/// Family and size come from the architecture a record states, never from the model's name: an
/// ALBERT whose name contains "bert" is no BERT, and a model named "large" with a Base shape is
/// Base. A record that states none (written before records did) has neither.
#[test]
fn family_and_size_come_from_the_record_not_the_name() {
    let mut records = records::load(&fixtures()).unwrap();
    let (searches, runs) = (&mut records.searches, &records.runs);
    let base = searches.iter().find(|s| s.plan.model == "google-bert/bert-base-uncased").unwrap().clone();
    let mut albert = base.clone();
    albert.key = "s0000000000000aa".to_owned();
    albert.plan.model = "albert/albert-large-v2".to_owned();
    albert.architecture =
        Some(Architecture { model_type: "albert".to_owned(), num_hidden_layers: 12, hidden_size: 768 });
    searches.push(albert);
    let frame = reports::searches_frame(searches, runs, &reports::measure(searches, runs)).unwrap();
    let column = |name: &str| -> Vec<Option<String>> {
        let values = frame.column(name).unwrap().str().unwrap();
        (0..values.len()).map(|row| values.get(row).map(str::to_owned)).collect()
    };
    let (keys, families, sizes) = (column("key"), column("family"), column("size"));
    let of = |key: &str| {
        let row = keys.iter().position(|k| k.as_deref() == Some(key)).unwrap();
        (families[row].clone(), sizes[row].clone())
    };
    let named = |family: &str, size: &str| (Some(family.to_owned()), Some(size.to_owned()));
    assert_eq!(of("s0000000000000aa"), named("ALBERT", "Base"));
    assert_eq!(of("s000000000000005"), named("BERT", "L6-H384"));
    assert_eq!(of("s000000000000001"), named("RoBERTa", "Base"));
    assert_eq!(of("s000000000000004"), (None, None));
}

/// Two models with one name but two identities (two local folders called `tiny-model`, two commits
/// of a hub repository) are two models in every table, told apart by their revision; one name with
/// one identity keeps its plain name.
#[test]
fn namesakes_with_other_identities_stay_apart() {
    let mut records = records::load(&fixtures()).unwrap();
    let searches = &mut records.searches;
    let original = searches.iter().find(|s| s.key == "s000000000000003").unwrap().clone();
    let mut edited = original.clone();
    edited.key = "s0000000000000ed".to_owned();
    edited.model_revision = Some("feedbeef0000".to_owned());
    edited.signature = format!("{}@feedbeef0000", edited.signature);
    edited.outcome = results::Outcome::Found { d90: 1389, bracket: (Some(1200), 1389) };
    searches.iter_mut().find(|s| s.key == "s000000000000003").unwrap().model_revision = Some("abc1234".to_owned());
    searches.push(edited);
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let table = text(&report, "table1.csv");
    assert!(table.contains("google-bert/bert-base-uncased@abc1234,mrpc,said"), "{table}");
    assert!(table.contains("google-bert/bert-base-uncased@feedbeef0000,mrpc,said"), "{table}");
    assert!(table.contains("FacebookAI/roberta-base,mrpc,said"), "{table}");
}

/// Adds a copy of the search `key` as a `size` experiment's search under `new_key` (what the
/// runner writes when a size sweep repeats another experiment's search).
fn repeat_in_size_experiment(records: &mut records::Records, key: &str, new_key: &str) {
    let mut again = records.searches.iter().find(|s| s.key == key).unwrap().clone();
    again.key = new_key.to_owned();
    again.plan.experiment = "size".to_owned();
    again.plan.kind = results::ExperimentKind::Size;
    records.searches.push(again);
}

/// The size figure takes one point per model from `d90` and `size` searches, never a trajectory's
/// checkpoints; the trajectory table takes only trajectory searches.
#[test]
fn size_and_trajectory_sections_take_their_own_searches() {
    let mut records = records::load(&fixtures()).unwrap();
    repeat_in_size_experiment(&mut records, "s000000000000001", "s0000000000000s1");
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let sizes = text(&report, "model_size.csv");
    assert_eq!(sizes.lines().filter(|line| line.contains("roberta-base")).count(), 1, "{sizes}");
    assert!(!sizes.contains("pretrained:mini"), "{sizes}");
    let trajectory = text(&report, "trajectory.csv");
    assert_eq!(trajectory.lines().count(), 4, "{trajectory}");
}

/// A search that a second experiment repeats (the same runs read the same way: a trajectory's
/// last checkpoint in a size sweep) is one measurement: one row of Table 1, figure 1, the
/// generalization, orderings and compression tables, whichever experiment's copy sorts first;
/// the trajectory keeps its own. The same signature over other runs (an experiment that
/// overrides a training knob the signature leaves out) is another measurement and keeps its rows.
#[test]
fn a_search_two_experiments_share_is_one_measurement() {
    let shared_tables = ["table1.csv", "compression.csv", "generalization.csv", "figure1.csv", "orderings.csv"];
    let before = report();
    let mut records = records::load(&fixtures()).unwrap();
    // The size experiment's copy sorts before the trajectory's own (`...t9`).
    repeat_in_size_experiment(&mut records, "s0000000000000t9", "s0000000000000a9");
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    for table in shared_tables {
        assert_eq!(text(&report, table), text(&before, table), "{table}");
    }
    assert_eq!(text(&report, "trajectory.csv"), text(&before, "trajectory.csv"));
    assert!(
        text(&report, "trajectory.csv").contains("mini,sst2,said,1000,found,818,"),
        "{}",
        text(&report, "trajectory.csv")
    );
    assert!(text(&report, "README.md").contains("(11 distinct measurements"), "{}", text(&report, "README.md"));

    let mut records = records::load(&fixtures()).unwrap();
    let mut other_runs = records.searches.iter().find(|s| s.key == "s000000000000001").unwrap().clone();
    other_runs.key = "s0000000000000b1".to_owned();
    other_runs.plan.experiment = "max-len-64".to_owned();
    other_runs.probes[0].runs[0] = "r00000000000ffff".to_owned();
    records.searches.push(other_runs);
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let table = text(&report, "table1.csv");
    assert_eq!(
        table.lines().filter(|line| line.starts_with("FacebookAI/roberta-base,mrpc,said,")).count(),
        2,
        "{table}"
    );
}

/// Claim (a) reads each d90's interval against D/100, as a comparison reads its own: a cell is
/// `held` when the interval's upper end lies below the line, whether or not the d90 is determined
/// (ELECTRA's SAID with its probes below 896 removed is a bound, `<=896`, on every resample); a cell
/// whose interval is open above (ELECTRA's DID without its successful probes) or that has no
/// interval (one seed without per-example outcomes) decides nothing, and the claim is then
/// `inconclusive`.
#[test]
fn claim_a_reads_every_interval_against_the_line() {
    let claim_a = |records: &records::Records| -> String {
        let report = build("fixture", "tests/fixtures/results", records, &Paper::embedded()).unwrap();
        text(&report, "claims.csv").lines().find(|line| line.starts_with("(a)")).unwrap().to_owned()
    };
    let mut records = records::load(&fixtures()).unwrap();
    let electra = |records: &mut records::Records, mode: results::Mode| -> usize {
        records
            .searches
            .iter()
            .position(|s| s.plan.model == "google/electra-base-discriminator" && s.plan.method.mode == mode)
            .unwrap()
    };
    let said = electra(&mut records, results::Mode::Said);
    records.searches[said].probes.retain(|probe| probe.d >= 896);
    let did = electra(&mut records, results::Mode::Did);
    records.searches[did].probes.retain(|probe| !probe.success);
    let row = claim_a(&records);
    assert!(
        row.contains("electra-base-discriminator sst2 said: d90 <=896 [<=896, <=896] vs D/100 = 1088931 (held)"),
        "{row}"
    );
    assert!(
        row.contains("electra-base-discriminator sst2 did: d90 >896 [>896, >896] vs D/100 = 1088931 (inconclusive)"),
        "{row}"
    );
    assert!(
        row.contains("all-MiniLM-L6-v2 sst2 did: d90 <=100 (no interval) vs D/100 = 1094837 (inconclusive)"),
        "{row}"
    );
    assert!(row.contains(",inconclusive,"), "{row}");
    // With only the cells whose intervals decide, the claim holds.
    let mut deciding = records::load(&fixtures()).unwrap();
    deciding.searches.retain(|s| s.plan.model == "google/electra-base-discriminator");
    let said = electra(&mut deciding, results::Mode::Said);
    deciding.searches[said].probes.retain(|probe| probe.d >= 896);
    let row = claim_a(&deciding);
    assert!(row.contains(",held,"), "{row}");
    assert!(row.contains("said: d90 <=896 [<=896, <=896]"), "{row}");
}

/// A run its search rests on whose record is gone (deleted, as an old report advised for a
/// truncated one, or set aside as unreadable) is named at the top of the report, with how many
/// of the runs the searches expect are there; and rows of one cell that differ in device say so
/// in a column of their own (the fixture has CPU and GPU searches).
#[test]
fn missing_runs_are_named_and_devices_have_a_column() {
    let mut records = records::load(&fixtures()).unwrap();
    let expected: std::collections::BTreeSet<String> =
        records.searches.iter().flat_map(|search| search.run_keys()).map(str::to_owned).collect();
    let complete = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    assert!(!text(&complete, "README.md").contains("Incomplete results"));
    let gone = records.searches[0].probes[0].runs[0].clone();
    records.runs.retain(|run| run.key != gone);
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let readme = text(&report, "README.md");
    let count = format!(
        "**Incomplete results: 1 of the {} runs the searches rest on have no readable record**",
        expected.len()
    );
    assert!(readme.contains(&count), "{readme}");
    assert!(readme.contains(&format!("- `runs/{gone}.json` (search {} of `", records.searches[0].key)), "{readme}");
    let header = text(&report, "table1.csv").lines().next().unwrap().to_owned();
    assert!(header.starts_with("model,task,method,map,device,seeds,"), "{header}");
}

/// A report covers the searches its spec planned in the folder (`plans/<name>*.json`, which
/// `reproduce` writes), not another spec's searches that share the folder; and two searches of
/// one cell made in other precisions or by other code revisions get columns of their own
/// instead of two rows alike.
#[test]
fn a_report_covers_its_specs_searches_and_tells_revisions_apart() {
    let dir = fixture_copy("planned");
    let all = records::load(&dir).unwrap();
    let keys: Vec<String> = all.searches.iter().take(3).map(|search| search.key.clone()).collect();
    let folder = results::ResultsDir::at(&dir);
    folder.save_plan("mine", Some("shard-0-of-2"), &keys[..2]).unwrap();
    folder.save_plan("mine", Some("shard-1-of-2"), &keys[2..]).unwrap();
    folder.save_plan("other", None, &[all.searches[4].key.clone()]).unwrap();
    let mine = records::load_planned(&dir, "mine").unwrap();
    assert_eq!(mine.searches.iter().map(|search| search.key.clone()).collect::<Vec<_>>(), keys);
    assert_eq!(mine.left_out, all.searches.len() - 3);
    let expected: std::collections::BTreeSet<&str> = mine.searches.iter().flat_map(|s| s.run_keys()).collect();
    assert!(mine.runs.iter().all(|run| expected.contains(run.key.as_str())));
    let report = build("mine", "planned", &mine, &Paper::embedded()).unwrap();
    let readme = text(&report, "README.md");
    assert!(readme.contains(&format!("{} other search(es) in the folder, not in that plan", mine.left_out)));
    // A whole run of the plan replaces its shards' files.
    folder.save_plan("mine", None, &keys[..1]).unwrap();
    assert_eq!(folder.planned("mine").unwrap().unwrap().len(), 1);
    assert_eq!(folder.planned("other").unwrap().unwrap().len(), 1);
    assert_eq!(folder.planned("none").unwrap(), None);
    // The same cell searched again in bf16 by a later code revision: columns of their own tell
    // the rows apart.
    let mut records = records::load(&fixtures()).unwrap();
    let mut again = records.searches[0].clone();
    again.key = "s0000000000000ff".to_owned();
    again.plan.training.precision = results::Precision::Bf16;
    again.provenance.code = "fedcba987654".to_owned();
    records.searches.push(again);
    let report = build("fixture", "tests/fixtures/results", &records, &Paper::embedded()).unwrap();
    let table1 = text(&report, "table1.csv");
    let header = table1.lines().next().unwrap();
    assert!(header.starts_with("model,task,method,map,device,precision,code,seeds,"), "{table1}");
    assert!(table1.contains(",bf16,fedcba987654,"), "{table1}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A published trajectory (the MultiBERTs, by update) and a size sweep over hub checkpoints, as
/// bench-suite's loopback-hub test ran them (`bench-suite/tests/hub.rs` wrote
/// `tests/fixtures/hub`, tiny checkpoints on a tiny task): the report orders the trajectory by
/// update under the experiment's name with update 0 as the precondition's reference, and lists
/// every model of the size sweep with its commit.
#[test]
fn a_published_trajectory_and_a_hub_size_sweep_are_reported() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hub");
    let records = records::load_planned(&folder, "paper").unwrap();
    assert_eq!(records.searches.len(), 22);
    let report = build("paper", "tests/fixtures/hub", &records, &Paper::embedded()).unwrap();
    let readme = String::from_utf8(report.files["README.md"].clone()).unwrap();
    // The trajectory: the five MultiBERTs checkpoints in update order under the experiment's name,
    // its verdict row, and its figure.
    let rows: Vec<&str> =
        readme.lines().filter(|line| line.starts_with("| multiberts | pairs | said_per_tensor | ")).collect();
    let updates: Vec<&str> = rows[..5].iter().map(|row| row.split(" | ").nth(3).unwrap()).collect();
    assert_eq!(updates, ["0", "60000", "80000", "100000", "120000"], "{readme}");
    assert!(rows[5].contains("0 of 4"), "the trend is over the updates after 0: {}", rows[5]);
    assert!(report.files.contains_key("trajectory__multiberts__said_per_tensor.svg"));
    // The size sweep: each checkpoint named with its commit in the provenance.
    for model in [
        "facebook/bart-large@cb48c13",
        "google/electra-small-discriminator@fa8239a",
        "FacebookAI/xlm-roberta-base@42f548f",
        "google-t5/t5-large@150ebc2",
    ] {
        assert!(readme.contains(&format!("`{model}`")), "{model}: {readme}");
    }
    assert!(readme.contains("| size | pairs | said_per_tensor | "), "{readme}");
}
