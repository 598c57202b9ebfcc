//! How a search's records are read for the bootstrap (`Search::from_record`), on the reports'
//! fixture results (`reports/tests/fixtures`): per-example when every run that counts kept its
//! predictions over one dev split, else seed-only with the reason (the old-record fallback, or no
//! run that counts).

use std::collections::BTreeMap;
use std::path::Path;

use d90::bootstrap::{Reading, Search};
use results::{ResultsDir, RunRecord, SearchRecord};

fn fixtures() -> (Vec<SearchRecord>, Vec<RunRecord>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/fixtures/results");
    let folder = ResultsDir::at(&dir);
    (folder.searches().unwrap(), folder.runs().unwrap())
}

fn read(search: &SearchRecord, runs: &[RunRecord]) -> (Search, Reading) {
    let by_key: BTreeMap<&str, &RunRecord> = runs.iter().map(|run| (run.key.as_str(), run)).collect();
    Search::from_record(search, |key| by_key.get(key).copied())
}

fn seed_only(reading: &Reading) -> &str {
    match reading {
        Reading::SeedOnly(why) => why,
        Reading::PerExample => panic!("read per-example"),
    }
}

#[test]
fn per_example_records_and_every_fallback() {
    let (searches, runs) = fixtures();
    let said = searches.iter().find(|s| s.key == "s0000000000000e1").unwrap();
    let (search, reading) = read(said, &runs);
    assert_eq!(reading, Reading::PerExample);
    assert_eq!(search.examples.as_ref().map(|(n, _)| *n), Some(400));
    assert_eq!(search.baseline.len(), 3);
    assert!(search.probes.iter().flat_map(|p| &p.seeds).all(|seed| seed.evaluations.len() == 1));
    // Two evaluations per baseline run (one per epoch), every one a candidate.
    assert!(search.baseline.iter().all(|seed| seed.evaluations.len() == 2));
    // The same search read seed-only has the same estimate and other resamples.
    let seeds_alone = Search { examples: None, ..search.clone() };
    assert_eq!(search.estimate(), seeds_alone.estimate());
    assert_ne!(search.crossings(50), seeds_alone.crossings(50));

    // An older search whose runs kept no predictions.
    let old = searches.iter().find(|s| s.key == "s000000000000001").unwrap();
    assert!(seed_only(&read(old, &runs).1).contains("no per-example outcomes"));

    // A run missing from the folder.
    let missing: Vec<RunRecord> = runs.iter().filter(|run| run.key != said.probes[0].runs[0]).cloned().collect();
    assert!(seed_only(&read(said, &missing).1).contains("not in the results folder"));

    // A run over other examples (another hash).
    let mut other_split = runs.clone();
    let run = other_split.iter_mut().find(|run| run.key == said.probes[1].runs[2]).unwrap();
    run.result.dev_examples.as_mut().unwrap().ids_sha256 = "ffffffffffffffff".to_owned();
    let (search, reading) = read(said, &other_split);
    assert!(seed_only(&reading).contains("different dev examples"));
    assert!(search.examples.is_none() && search.probes.iter().flat_map(|p| &p.seeds).all(|s| s.evaluations.is_empty()));

    // An evaluation without its predictions.
    let mut unlabelled = runs.clone();
    let run = unlabelled.iter_mut().find(|run| run.key == said.baseline.runs[0]).unwrap();
    run.result.evaluations[0].splits.get_mut("validation").unwrap().predicted = None;
    assert!(seed_only(&read(said, &unlabelled).1).contains("lacks its predicted labels"));

    // No run that counts (every one predicted one class, as a baseline below the majority class
    // does): said so, not blamed on the records' age.
    let mut one_class = runs.clone();
    for run in one_class.iter_mut() {
        if let Some(best) = run.result.best.as_mut() {
            best.predicts_one_class = true;
        }
    }
    let why = seed_only(&read(said, &one_class).1).to_owned();
    assert!(why.contains("no run of the plan's seeds counts") && !why.contains("written before"), "{why}");

    // Baseline runs of other seeds than the plan's: the baseline is one seed at its median.
    let mut reseeded = runs.clone();
    for run in reseeded.iter_mut().filter(|run| said.baseline.runs.contains(&run.key)) {
        run.spec.train.seeds.data = 7;
    }
    let (search, reading) = read(said, &reseeded);
    assert!(seed_only(&reading).contains("do not cover the plan's seeds"));
    assert_eq!(search.baseline.len(), 1);
    assert_eq!(search.target(), said.baseline.score.map(|score| 0.9 * score));
}
