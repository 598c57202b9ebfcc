//! Parsers on small fixtures written in the exact upstream formats, every split-size error, and
//! (when `../shared/mirror` is present) the real MRPC, SST-2 and MiniLM files, offline.

use std::path::{Path, PathBuf};

use datasets::Error;
use datasets::store::AssetPaths;
use datasets::tasks::{Example, Metric, SplitSizes, Task};

fn asset(root: &Path, files: &[(&str, &str)], members: &[(&str, &str)]) -> AssetPaths {
    let paths = AssetPaths { id: "fixture".into(), root: root.to_path_buf(), origins: Vec::new() };
    for (name, text) in files {
        write(&paths.file(name), text);
    }
    for (path, text) in members {
        write(&paths.member(path), text);
    }
    paths
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn sizes(list: &[(&'static str, usize)]) -> SplitSizes {
    list.iter().copied().collect()
}

/// Loads with the given sizes, and checks that one example more or less in any split is an error
/// naming the file.
fn check_sizes(task: Task, paths: &AssetPaths, expected: &[(&'static str, usize)]) -> datasets::tasks::TaskData {
    let data = task.load_checked(paths, &sizes(expected)).unwrap();
    for (split, count) in expected {
        let mut wrong = sizes(expected);
        wrong.insert(split, count + 1);
        match task.load_checked(paths, &wrong) {
            Err(Error::SplitSize { file, split: named, expected: want, actual }) => {
                assert_eq!((named.as_str(), want, actual), (*split, count + 1, *count), "{task:?}");
                assert!(file.starts_with(&paths.root), "{}", file.display());
            }
            other => panic!("{task:?} {split}: expected a split-size error, got {other:?}"),
        }
    }
    data
}

fn example(a: &str, b: Option<&str>, label: usize) -> Example {
    Example { text_a: a.into(), text_b: b.map(Into::into), label }
}

#[test]
fn sst2_tsv_without_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let train = "sentence\tlabel\nhide new secretions from the parental units \t0\nit 's a \"charming\" and often affecting journey . \t1\n";
    let dev = "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n";
    let paths = asset(dir.path(), &[], &[("SST-2/train.tsv", train), ("SST-2/dev.tsv", dev)]);
    let data = check_sizes(Task::Sst2, &paths, &[("train", 2), ("dev", 1)]);
    assert_eq!(
        data.split("train").unwrap()[1],
        example("it 's a \"charming\" and often affecting journey . ", None, 1)
    );
    assert_eq!(data.majority_accuracy("train"), Some(0.5));
}

#[test]
fn mrpc_from_senteval_files_with_bom_and_glue_dev_ids() {
    let dir = tempfile::tempdir().unwrap();
    let header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
    let train = format!(
        "\u{feff}{header}1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \"the witness\" .\n\
         0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's in 1995 .\n\
         1\t1330381\t1330521\tThey had published an advertisement .\tOn June 10 , the ship 's owners had published an advertisement .\n"
    );
    let test = format!(
        "\u{feff}{header}1\t1089874\t1089925\tPCCW 's chief operating officer .\tCurrent Chief Operating Officer .\n"
    );
    let dev_ids = "2108705\t2108831\n";
    let paths = asset(
        dir.path(),
        &[("msr_paraphrase_train.txt", &train), ("msr_paraphrase_test.txt", &test), ("mrpc_dev_ids.tsv", dev_ids)],
        &[],
    );
    let data = check_sizes(Task::Mrpc, &paths, &[("train", 2), ("dev", 1), ("test", 1)]);
    assert_eq!(
        data.split("dev").unwrap(),
        [example("Yucaipa owned Dominick 's .", Some("Yucaipa bought Dominick 's in 1995 ."), 0)]
    );
    assert_eq!(data.split("train").unwrap()[0].text_a, "Amrozi accused his brother .", "the BOM must be stripped");
    assert_eq!(Task::Mrpc.metrics(), [Metric::Accuracy, Metric::F1]);
}

#[test]
fn qqp_and_mnli_tsv_by_header_names() {
    let dir = tempfile::tempdir().unwrap();
    let qqp_header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n";
    let qqp_train = format!(
        "{qqp_header}133273\t213221\t213222\tHow is the life of a math student?\tWhich level of prepration is enough?\t0\n"
    );
    let qqp_dev = format!(
        "{qqp_header}201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are hispanics so beautiful?\t0\n5\t6\t7\ta\tb\t1\n"
    );
    let mnli_header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
    let mnli_row = |label: &str| {
        format!(
            "0\t31193\t31193n\tgovernment\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tConceptually cream skimming has two basic dimensions .\tProduct and geography are what make cream skimming work .\t{label}\t{label}\n"
        )
    };
    let paths = asset(
        dir.path(),
        &[],
        &[
            ("QQP/train.tsv", &qqp_train),
            ("QQP/dev.tsv", &qqp_dev),
            ("MNLI/train.tsv", &format!("{mnli_header}{}{}", mnli_row("neutral"), mnli_row("contradiction"))),
            ("MNLI/dev_matched.tsv", &format!("{mnli_header}{}", mnli_row("entailment"))),
            ("MNLI/dev_mismatched.tsv", &format!("{mnli_header}{}", mnli_row("neutral"))),
        ],
    );
    let qqp = check_sizes(Task::Qqp, &paths, &[("train", 1), ("dev", 2)]);
    assert_eq!(qqp.split("dev").unwrap()[1], example("a", Some("b"), 1));
    let mnli = check_sizes(Task::Mnli, &paths, &[("train", 2), ("dev_matched", 1), ("dev_mismatched", 1)]);
    assert_eq!(mnli.split("train").unwrap().iter().map(|e| e.label).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(Task::Mnli.dev_splits(), ["dev_matched", "dev_mismatched"]);
}

#[test]
fn anli_rounds_combine() {
    let dir = tempfile::tempdir().unwrap();
    let row = |label: &str| {
        format!(
            "{{\"uid\": \"x\", \"context\": \"Linguistics is the \\\"scientific\\\" study.\", \"hypothesis\": \"Form matters.\", \"label\": \"{label}\", \"model_label\": \"n\", \"emturk\": false, \"genre\": \"\", \"reason\": \"\", \"tag\": \"\"}}\n"
        )
    };
    let mut members = Vec::new();
    for round in ["R1", "R2", "R3"] {
        for (split, label) in [("train", "e"), ("dev", "n"), ("test", "c")] {
            members.push((format!("anli_v1.0/{round}/{split}.jsonl"), row(label)));
        }
    }
    let members: Vec<(&str, &str)> = members.iter().map(|(path, text)| (path.as_str(), text.as_str())).collect();
    let paths = asset(dir.path(), &[], &members);
    let expected: Vec<(&'static str, usize)> =
        ["r1_train", "r1_dev", "r1_test", "r2_train", "r2_dev", "r2_test", "r3_train", "r3_dev", "r3_test"]
            .map(|key| (key, 1))
            .to_vec();
    let data = check_sizes(Task::Anli, &paths, &expected);
    assert_eq!(data.split("dev").unwrap().len(), 3);
    assert_eq!(
        data.split("test").unwrap()[0],
        example("Linguistics is the \"scientific\" study.", Some("Form matters."), 2)
    );
}

#[test]
fn yelp_csv_with_doubled_quotes_and_literal_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let train = "\"1\",\"Unfortunately, the frustration of being Dr. Goldberg's patient is a repeat.\\nThe \"\"best\"\" part.\"\n\"2\",\"Been going to Dr. Goldberg for over 10 years.\"\n";
    let test = "\"2\",\"Contrary to other reviews, I have zero complaints.\"\n";
    let paths = asset(
        dir.path(),
        &[],
        &[("yelp_review_polarity_csv/train.csv", train), ("yelp_review_polarity_csv/test.csv", test)],
    );
    let data = check_sizes(Task::YelpPolarity, &paths, &[("train", 2), ("test", 1)]);
    assert_eq!(
        data.split("train").unwrap()[0],
        example(
            "Unfortunately, the frustration of being Dr. Goldberg's patient is a repeat.\nThe \"best\" part.",
            None,
            0
        )
    );
    assert_eq!(Task::YelpPolarity.dev_splits(), ["test"]);
}

/// Zhang et al.'s own escapes as the upstream files spell them: a backslash-quote (written `\""`
/// inside a CSV field), a backslash-n, and backslashes that escape nothing, which stay text.
#[test]
fn yelp_csv_backslash_escapes_as_upstream_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let train = concat!(
        r#""2","He said \""best tacos in town\"" and he was right.\n\nFive stars.""#,
        "\n",
        r#""1","Path C:\dir was wrong \o/ and the end is a backslash \""#,
        "\n",
    );
    let test = "\"1\",\"Meh.\"\n";
    let paths = asset(
        dir.path(),
        &[],
        &[("yelp_review_polarity_csv/train.csv", train), ("yelp_review_polarity_csv/test.csv", test)],
    );
    let data = check_sizes(Task::YelpPolarity, &paths, &[("train", 2), ("test", 1)]);
    let train = data.split("train").unwrap();
    assert_eq!(train[0], example("He said \"best tacos in town\" and he was right.\n\nFive stars.", None, 1));
    assert_eq!(train[1], example("Path C:\\dir was wrong \\o/ and the end is a backslash \\", None, 0));
}

#[test]
fn malformed_rows_are_errors_that_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let paths = asset(
        dir.path(),
        &[],
        &[("SST-2/train.tsv", "sentence\tlabel\ngood\t1\nbad\t7\n"), ("SST-2/dev.tsv", "sentence\tlabel\n")],
    );
    match Task::Sst2.load_checked(&paths, &sizes(&[])) {
        Err(Error::Parse { file, line, message }) => {
            assert!(
                file.ends_with("SST-2/train.tsv") && line == 3 && message.contains('7'),
                "{file:?} {line} {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(Task::from_name("cola").unwrap_err().to_string().contains("sst2"));
}

/// The real files, offline from the shared mirror (run by `cargo xtask test` when it exists).
#[test]
fn real_mrpc_sst2_and_minilm_from_the_mirror() {
    let Some(mirror) = std::env::var_os("INTRINSIC_BENCH_TEST_MIRROR").map(PathBuf::from) else {
        eprintln!("INTRINSIC_BENCH_TEST_MIRROR not set: skipping the real-data test");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let config = datasets::store::StoreConfig {
        home: home.path().to_path_buf(),
        mirrors: vec![mirror],
        offline: true,
        lock_path: home.path().join("hashes.lock"),
        ..datasets::store::StoreConfig::from_env().unwrap()
    };
    let store = datasets::store::Store::new(config, datasets::manifest::Manifest::embedded()).unwrap();
    let sst2 = Task::Sst2.load(&store.ensure("glue-sst2").unwrap()).unwrap();
    let dev_majority = sst2.majority_accuracy("dev").unwrap();
    assert!((dev_majority - 444.0 / 872.0).abs() < 1e-12, "SST-2 dev majority {dev_majority}");
    let mrpc = Task::Mrpc.load(&store.ensure("glue-mrpc").unwrap()).unwrap();
    let mrpc_majority = mrpc.majority_accuracy("dev").unwrap();
    assert!((mrpc_majority - 279.0 / 408.0).abs() < 1e-12, "MRPC dev majority {mrpc_majority}");
    let minilm = store.ensure("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    assert_eq!(std::fs::metadata(minilm.file("model.safetensors")).unwrap().len(), 90_868_376);
    eprintln!(
        "real data: SST-2 {:?}, MRPC {:?}",
        sst2.splits.keys().collect::<Vec<_>>(),
        mrpc.splits.keys().collect::<Vec<_>>()
    );
}
