//! Local tasks: the three formats read alike, every bad input is refused naming the file, the
//! line and the field, the held-out split is seeded, and the identity follows the content.

use std::path::Path;

use datasets::Error;
use datasets::local::LocalTaskSpec;

fn spec(train: &str, dev: Option<&str>, text: &[&str]) -> LocalTaskSpec {
    LocalTaskSpec {
        train: train.into(),
        dev: dev.map(Into::into),
        dev_fraction: None,
        split_seed: None,
        text: text.iter().map(|column| (*column).to_owned()).collect(),
        label: "label".to_owned(),
        labels: None,
        id: None,
        metric: None,
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn task_file_error(err: Error) -> (String, Option<usize>, String, String) {
    match err {
        Error::TaskFile { file, line, field, message } => {
            (file.file_name().unwrap().to_string_lossy().into_owned(), line, field, message)
        }
        other => panic!("not a task-file error: {other}"),
    }
}

#[test]
fn csv_tsv_and_jsonl_read_the_same_task() {
    let dir = tempfile::tempdir().unwrap();
    // Quoted commas and doubled quotes in CSV, a BOM, extra columns ignored, numbers as labels.
    write(
        dir.path(),
        "train.csv",
        "\u{feff}id,sentence,label,extra\n1,\"good, really\",pos,x\n2,\"a \"\"bad\"\" one\",neg,y\n3,fine,pos,z\n",
    );
    write(dir.path(), "dev.csv", "id,sentence,label,extra\n4,meh,neg,w\n5,nice,pos,v\n");
    write(dir.path(), "train.tsv", "id\tsentence\tlabel\n1\tgood, really\tpos\n2\ta \"bad\" one\tneg\n3\tfine\tpos\n");
    write(dir.path(), "dev.tsv", "id\tsentence\tlabel\n4\tmeh\tneg\n5\tnice\tpos\n");
    write(
        dir.path(),
        "train.jsonl",
        "{\"id\": 1, \"sentence\": \"good, really\", \"label\": \"pos\"}\n{\"id\": 2, \"sentence\": \"a \\\"bad\\\" one\", \"label\": \"neg\"}\n\n{\"id\": 3, \"sentence\": \"fine\", \"label\": \"pos\"}\n",
    );
    write(
        dir.path(),
        "dev.jsonl",
        "{\"id\": 4, \"sentence\": \"meh\", \"label\": \"neg\"}\n{\"id\": 5, \"sentence\": \"nice\", \"label\": \"pos\"}\n",
    );
    let mut loaded = Vec::new();
    for ext in ["csv", "tsv", "jsonl"] {
        let mut spec = spec(&format!("train.{ext}"), Some(&format!("dev.{ext}")), &["sentence"]);
        spec.id = Some("id".to_owned());
        let task = spec.load("mine", dir.path()).unwrap();
        assert_eq!(task.labels, ["neg", "pos"], "sorted distinct labels");
        assert_eq!(task.train.len(), 3);
        assert_eq!(task.train[1].text_a, "a \"bad\" one");
        assert_eq!(task.train[1].label, 0);
        assert_eq!(task.dev[0].label, 0);
        assert!(!task.is_pair() && !task.with_f1());
        loaded.push((task.train, task.dev));
    }
    assert!(loaded.windows(2).all(|pair| pair[0] == pair[1]), "the formats read alike");
    // TSV has no quoting (as GLUE writes it): a quote is an ordinary character.
    write(dir.path(), "quotes.tsv", "sentence\tlabel\n\"quoted\" start\tpos\nan \"open quote\tneg\n");
    let quotes = spec("quotes.tsv", Some("dev.tsv"), &["sentence"]).load("mine", dir.path()).unwrap();
    assert_eq!(quotes.train[0].text_a, "\"quoted\" start");
    assert_eq!(quotes.train[1].text_a, "an \"open quote");
}

#[test]
fn bad_inputs_name_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.csv", "s1,s2,label\na,b,yes\nc,d,no\n");
    write(dir.path(), "dev.csv", "s1,s2,label\ne,f,maybe\ng,h,yes\n");
    write(dir.path(), "empty.csv", "s1,s2,label\n");
    write(
        dir.path(),
        "dup.jsonl",
        "{\"k\": \"1\", \"s1\": \"a\", \"s2\": \"b\", \"label\": \"yes\"}\n{\"k\": \"1\", \"s1\": \"c\", \"s2\": \"d\", \"label\": \"no\"}\n",
    );
    write(dir.path(), "ragged.csv", "s1,s2,label\na,b,yes\nc,no\n");
    write(dir.path(), "notjson.jsonl", "{\"s1\": \"a\", \"s2\": \"b\", \"label\": \"yes\"}\n[1, 2]\n");
    write(dir.path(), "train.txt", "whatever\n");
    let pair = |train: &str, dev: Option<&str>| spec(train, dev, &["s1", "s2"]);

    let (file, line, field, message) =
        task_file_error(pair("train.csv", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), line, field.as_str()), ("dev.csv", Some(2), "label"));
    assert!(message.contains("`maybe` is not one of the labels (no, yes)"), "{message}");

    let mut missing = pair("train.csv", Some("dev.csv"));
    missing.text = vec!["s1".to_owned(), "sentence2".to_owned()];
    let (file, line, field, message) = task_file_error(missing.load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), line, field.as_str()), ("train.csv", Some(1), "sentence2"));
    assert!(message.contains("no such column (the header has: `s1`, `s2`, `label`)"), "{message}");

    let (file, _, field, message) =
        task_file_error(pair("train.csv", Some("empty.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), field.as_str()), ("empty.csv", "dev"));
    assert!(message.contains("no rows"), "{message}");

    write(
        dir.path(),
        "devk.jsonl",
        "{\"k\": \"9\", \"s1\": \"e\", \"s2\": \"f\", \"label\": \"yes\"}\n{\"k\": \"8\", \"s1\": \"e\", \"s2\": \"f\", \"label\": \"no\"}\n",
    );
    let mut duplicated = pair("dup.jsonl", Some("devk.jsonl"));
    duplicated.id = Some("k".to_owned());
    let (file, line, field, message) = task_file_error(duplicated.load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), line, field.as_str()), ("dup.jsonl", Some(2), "k"));
    assert!(message.contains("id `1` appears twice in the file"), "{message}");

    let (file, line, _, _) = task_file_error(pair("ragged.csv", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), line), ("ragged.csv", Some(3)));
    let (file, line, _, message) =
        task_file_error(pair("notjson.jsonl", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), line), ("notjson.jsonl", Some(2)));
    assert!(message.contains("not a JSON object"), "{message}");
    let (_, _, _, message) = task_file_error(pair("train.txt", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert!(message.contains("use .csv, .tsv or .jsonl"), "{message}");

    // An explicit label list that does not cover the data, one label, three text columns.
    let mut labels = pair("train.csv", Some("dev.csv"));
    labels.labels = Some(vec!["yes".to_owned(), "nope".to_owned()]);
    let (file, line, field, _) = task_file_error(labels.load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), field.as_str()), ("train.csv", "label"));
    assert!(line.is_some());
    let declaration = |spec: LocalTaskSpec| match spec.load("t", dir.path()).unwrap_err() {
        Error::TaskDeclaration { field, message } => format!("{field}: {message}"),
        other => panic!("not a declaration error: {other}"),
    };
    let mut one = pair("train.csv", None);
    one.labels = Some(vec!["yes".to_owned()]);
    assert!(declaration(one).starts_with("labels: needs at least two labels"));
    let three = spec("train.csv", None, &["s1", "s2", "s1"]);
    assert!(declaration(three).starts_with("text: needs one or two columns"));
    let leaks = spec("train.csv", None, &["s1", "label"]);
    assert!(declaration(leaks).contains("the label would be read as text"));
    let mut both = pair("train.csv", Some("dev.csv"));
    both.split_seed = Some(2);
    assert!(declaration(both).starts_with("split_seed: a dev file and a held-out split exclude each other"));

    // An empty file, a header naming a column twice, a dev split with one class, a file too
    // small to hold anything out.
    write(dir.path(), "blank.csv", "\n");
    let (file, _, field, message) =
        task_file_error(pair("blank.csv", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((file.as_str(), field.as_str()), ("blank.csv", "header"));
    assert!(message.contains("the file is empty"), "{message}");
    write(dir.path(), "twice.csv", "s1,s1,s2,label\na,b,c,yes\n");
    let (_, line, field, message) =
        task_file_error(pair("twice.csv", Some("dev.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!((line, field.as_str()), (Some(1), "s1"));
    assert!(message.contains("names this column 2 times"), "{message}");
    write(dir.path(), "oneclass.csv", "s1,s2,label\ne,f,yes\ng,h,yes\n");
    let (file, _, _, message) =
        task_file_error(pair("train.csv", Some("oneclass.csv")).load("t", dir.path()).unwrap_err());
    assert_eq!(file, "oneclass.csv");
    assert!(message.contains("the dev split has 1 class(es)"), "{message}");
    write(dir.path(), "tiny.csv", "s1,s2,label\na,b,yes\n");
    let (_, _, field, message) = task_file_error(pair("tiny.csv", None).load("t", dir.path()).unwrap_err());
    assert_eq!(field, "dev_fraction");
    assert!(message.contains("of 1 rows leaves"), "{message}");
    let missing_file = pair("nope.csv", Some("dev.csv")).load("t", dir.path()).unwrap_err();
    assert!(missing_file.to_string().contains("nope.csv"), "{missing_file}");
}

#[test]
fn the_held_out_split_is_seeded_and_disjoint() {
    let dir = tempfile::tempdir().unwrap();
    let row = |i: usize| format!("text {i},{}\n", if i.is_multiple_of(3) { "a" } else { "b" });
    let rows: String = (0..100).map(row).collect();
    write(dir.path(), "all.csv", &format!("sentence,label\n{rows}"));
    let mut held_out = spec("all.csv", None, &["sentence"]);
    held_out.dev_fraction = Some(0.2);
    let first = held_out.load("t", dir.path()).unwrap();
    let again = held_out.load("t", dir.path()).unwrap();
    assert_eq!((first.train.len(), first.dev.len()), (80, 20));
    assert_eq!((&first.train, &first.dev), (&again.train, &again.dev), "the same seed, the same split");
    assert!(first.dev.iter().all(|example| !first.train.contains(example)), "disjoint");
    // A row deleted near the top moves no other row between the splits.
    let fewer: String = (1..100).map(row).collect();
    write(dir.path(), "fewer.csv", &format!("sentence,label\n{fewer}"));
    let mut edited = held_out.clone();
    edited.train = "fewer.csv".into();
    let edited = edited.load("t", dir.path()).unwrap();
    let first_dev: Vec<&str> = first.dev.iter().map(|e| e.text_a.as_str()).filter(|text| *text != "text 0").collect();
    let edited_dev: Vec<&str> = edited.dev.iter().map(|e| e.text_a.as_str()).collect();
    assert!(first_dev.iter().all(|text| edited_dev.contains(text)), "{first_dev:?} vs {edited_dev:?}");
    // Ids are unique over the whole file before it is split.
    write(dir.path(), "ids.csv", "id,sentence,label\n1,a,x\n2,b,y\n1,c,x\n3,d,y\n4,e,x\n5,f,y\n");
    let mut ids = spec("ids.csv", None, &["sentence"]);
    ids.id = Some("id".to_owned());
    ids.dev_fraction = Some(0.5);
    let (_, line, field, _) = task_file_error(ids.load("t", dir.path()).unwrap_err());
    assert_eq!((line, field.as_str()), (Some(4), "id"));
    held_out.split_seed = Some(1);
    let other = held_out.load("t", dir.path()).unwrap();
    assert_ne!(other.dev, first.dev, "another seed, another split");
    assert_ne!(other.data_id, first.data_id);
}

#[test]
fn the_identity_follows_the_content_not_the_place() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train.csv", "sentence,label\na,x\nb,y\n");
    write(dir.path(), "dev.csv", "sentence,label\nc,x\nd,y\n");
    let task = spec("train.csv", Some("dev.csv"), &["sentence"]);
    let id = task.load("t", dir.path()).unwrap().data_id;
    assert_eq!(id.len(), 12);
    // The same files elsewhere: the same task.
    let moved = tempfile::tempdir().unwrap();
    for name in ["train.csv", "dev.csv"] {
        std::fs::copy(dir.path().join(name), moved.path().join(name)).unwrap();
    }
    assert_eq!(task.load("t", moved.path()).unwrap().data_id, id);
    // A changed row, another label order or another metric: another task.
    write(moved.path(), "dev.csv", "sentence,label\nc,y\nd,y\ne,x\n");
    assert_ne!(task.load("t", moved.path()).unwrap().data_id, id);
    let mut reordered = task.clone();
    reordered.labels = Some(vec!["y".to_owned(), "x".to_owned()]);
    assert_ne!(reordered.load("t", dir.path()).unwrap().data_id, id);
    let mut f1 = task.clone();
    f1.metric = Some(datasets::tasks::Metric::F1);
    let f1 = f1.load("t", dir.path()).unwrap();
    assert!(f1.with_f1());
    assert_ne!(f1.data_id, id);
}

/// The third set of public fault reports (`../shared/cases3`, which `cargo xtask test` names in
/// `INTRINSIC_BENCH_TEST_CASES`): `None` (saying so) when it is not set; set but missing fails.
fn cases3(what: &str) -> Option<std::path::PathBuf> {
    let Some(shared) = std::env::var_os("INTRINSIC_BENCH_TEST_CASES").map(std::path::PathBuf::from) else {
        eprintln!("INTRINSIC_BENCH_TEST_CASES not set (cargo xtask test sets it): skipping {what}");
        return None;
    };
    let cases = shared.join("cases3");
    assert!(cases.join("README.md").is_file(), "INTRINSIC_BENCH_TEST_CASES={}: no cases3/README.md", shared.display());
    Some(cases)
}

/// A case's task declaration, loaded as `finetune --task` loads it (paths beside the file).
fn load_case(cases: &Path, case: &str, declaration: &str) -> Result<datasets::local::LocalTask, Error> {
    let folder = cases.join(case);
    let text = std::fs::read_to_string(folder.join(declaration)).unwrap();
    let spec: LocalTaskSpec = serde_norway::from_str(&text).unwrap_or_else(|err| panic!("{case}/{declaration}: {err}"));
    spec.load("case", &folder)
}

fn refused(result: Result<datasets::local::LocalTask, Error>) -> String {
    match result {
        Ok(task) => panic!("should be refused; read labels {:?}", task.labels),
        Err(err) => err.to_string(),
    }
}

#[test]
fn task_files_people_have_are_read_or_refused_by_their_line() {
    let Some(cases) = cases3("the task-file cases") else { return };
    // 01: UTF-16 with a BOM is read (the BOM says the encoding).
    let task = load_case(&cases, "01-task-utf16-bom", "task.yaml").unwrap();
    assert_eq!(task.labels, ["neg", "pos"]);
    assert_eq!((task.train.len(), task.dev.len()), (30, 10));
    // 03: the bad label on physical line 10 is on line 10 whatever the line endings; CR-only
    // JSON lines read like the others.
    for ending in ["lf", "crlf", "cr"] {
        let message = refused(load_case(&cases, "03-task-line-endings", &format!("task-{ending}-csv.yaml")));
        assert!(message.contains(&format!("{ending}.csv:10: label: `neutral` is not one of the labels")), "{message}");
    }
    let cr = load_case(&cases, "03-task-line-endings", "task-cr-jsonl.yaml").unwrap();
    let crlf = load_case(&cases, "03-task-line-endings", "task-crlf-jsonl.yaml").unwrap();
    assert_eq!((cr.labels.clone(), cr.train.len() + cr.dev.len()), (crlf.labels, crlf.train.len() + crlf.dev.len()));
    assert!(cr.train.len() + cr.dev.len() > 10);
    // 04: quoted newlines and blank lines before a bad row do not shift its line.
    let message = refused(load_case(&cases, "04-task-quoted-newlines-blank-lines", "task.yaml"));
    assert!(message.contains("train.csv:13: label: `maybe`"), "{message}");
    let message = refused(load_case(&cases, "04-task-quoted-newlines-blank-lines", "task-after-blank.yaml"));
    assert!(message.contains("after-blank.csv:6: label: `maybe`"), "{message}");
    let good = load_case(&cases, "04-task-quoted-newlines-blank-lines", "task-good.yaml").unwrap();
    assert_eq!(good.labels, ["neg", "pos"]);
    // 05: one value is one class, however it is spelled; declared numbers match float files.
    for (declaration, labels) in [
        ("task-mixed-int-float.yaml", ["0", "1"]),
        ("task-leading-space.yaml", ["neg", "pos"]),
        ("task-bool-and-string.yaml", ["false", "true"]),
        ("task-declared-ints.yaml", ["0", "1"]),
        ("task-declared-ints-float-file.yaml", ["0", "1"]),
    ] {
        let task = load_case(&cases, "05-task-label-spellings", declaration).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(task.labels, labels, "{declaration}");
    }
    // 06: empty and NaN labels (and empty texts) are refused by line, as `null` is.
    let message = refused(load_case(&cases, "06-task-nan-empty-labels", "task.yaml"));
    assert!(message.contains("train.csv:9: label: the label is empty"), "{message}");
    let message = refused(load_case(&cases, "06-task-nan-empty-labels", "task-jsonl.yaml"));
    assert!(message.contains("train.jsonl:8: label: expected a string or a number, got null"), "{message}");
    let message = refused(load_case(&cases, "06-task-nan-empty-labels", "task-empty-text.yaml"));
    assert!(message.contains("empty-text.csv:6: sentence: the text is empty"), "{message}");
    // 07: a header repeated mid-file (`cat part-*.csv`) is refused at its line, CSV and TSV.
    let message = refused(load_case(&cases, "07-task-header-repeated", "task.yaml"));
    assert!(message.contains("train.csv:32: row: repeats the header row"), "{message}");
    let message = refused(load_case(&cases, "07-task-header-repeated", "task-tsv.yaml"));
    assert!(message.contains("train.tsv:32: row: repeats the header row"), "{message}");
}

#[test]
fn labels_are_classes_by_value_and_missing_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str, labels: Option<&[&str]>| {
        write(dir.path(), "t.csv", text);
        let mut task = spec("t.csv", None, &["text"]);
        task.dev_fraction = Some(0.5);
        task.labels = labels.map(|labels| labels.iter().map(|label| (*label).to_owned()).collect());
        task.load("t", dir.path())
    };
    let rows = |labels: &[&str]| {
        let mut text = "text,label\n".to_owned();
        for (index, label) in labels.iter().enumerate() {
            text.push_str(&format!("row {index},{label}\n"));
        }
        text
    };
    let task = load(&rows(&["1", "1.0", " 0", "0e0", "1", "0"]), None).unwrap();
    assert_eq!(task.labels, ["0", "1"]);
    assert_eq!(datasets::local::canonical_label(" 0.50 "), "0.5");
    assert_eq!(datasets::local::canonical_label("007"), "7");
    assert_eq!(datasets::local::canonical_label("1-2"), "1-2");
    // Spelled alike but for case: refused naming both, unless both are declared classes.
    let message = refused(load(&rows(&["neg", "Neg", "pos", "pos"]), None));
    assert!(message.contains("`neg` and `Neg` (") && message.contains("differ only in case"), "{message}");
    assert!(load(&rows(&["neg", "Neg", "pos", "pos"]), Some(&["neg", "Neg", "pos"])).is_ok());
    // Missing values, whatever their spelling; a declared class named `None` is a class.
    for missing in ["NaN", "nan", "NA", "N/A", "null", "None", ""] {
        let message = refused(load(&rows(&["neg", missing, "pos", "pos"]), None));
        assert!(message.contains("t.csv:3: label: the label is"), "{missing}: {message}");
    }
    let task = load(&rows(&["neg", "None", "pos", "None"].repeat(3)), Some(&["neg", "None", "pos"])).unwrap();
    assert_eq!(task.labels, ["neg", "None", "pos"]);
    // A declaration that lists one value twice.
    let message = load(&rows(&["0", "1", "0", "1"]), Some(&["1", "1.0"])).unwrap_err().to_string();
    assert!(message.contains("lists a label twice"), "{message}");
}
