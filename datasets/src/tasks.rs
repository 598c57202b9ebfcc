//! The paper's six tasks: parsers into typed examples, label sets, splits and metrics.
//!
//! Each parser reads the upstream format exactly (GLUE TSVs have no quoting; the SentEval MRPC file
//! starts with a UTF-8 BOM; Yelp is CSV with doubled quotes and literal `\n`) and checks the
//! canonical split sizes: a mismatch is an [`Error::SplitSize`] naming the file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::AssetPaths;
use crate::{Error, io_error};

/// One of the paper's six tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// GLUE MRPC (Microsoft Research Paraphrase Corpus): sentence pairs, paraphrase or not.
    Mrpc,
    /// GLUE QQP (Quora Question Pairs): question pairs, duplicate or not.
    Qqp,
    /// GLUE SST-2 (Stanford Sentiment Treebank): sentences, negative or positive.
    Sst2,
    /// GLUE MNLI (Multi-Genre NLI): premise and hypothesis, entailment, neutral or contradiction.
    Mnli,
    /// ANLI v1.0 (Adversarial NLI), rounds R1 to R3 together: premise and hypothesis, three
    /// classes.
    Anli,
    /// Yelp review polarity: reviews, negative or positive.
    YelpPolarity,
}

/// A metric reported on a task's dev split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The fraction of examples whose predicted label is right.
    Accuracy,
    /// F1 of label 1 (the positive class, e.g. `equivalent`), as GLUE reports for MRPC and QQP.
    F1,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The first (or only) text: the sentence, question, premise or review.
    pub text_a: String,
    /// The second text of a sentence pair; `None` for single-text tasks.
    pub text_b: Option<String>,
    /// The label id: an index into the task's label names ([`Task::labels`], or a local task's
    /// `labels`).
    pub label: usize,
}

/// A task's parsed splits.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// The task the splits belong to.
    pub task: Task,
    /// The examples by split name (e.g. `train`, `dev`, `dev_matched`; ANLI's rounds merged
    /// into `train`, `dev` and `test`).
    pub splits: BTreeMap<String, Vec<Example>>,
}

/// Expected number of examples per split.
pub type SplitSizes = BTreeMap<&'static str, usize>;

impl Task {
    /// The six tasks, in a fixed order.
    pub const ALL: [Task; 6] = [Task::Mrpc, Task::Qqp, Task::Sst2, Task::Mnli, Task::Anli, Task::YelpPolarity];

    /// The task's short name (e.g. `sst2`, `yelp_polarity`), which [`Task::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Task::Mrpc => "mrpc",
            Task::Qqp => "qqp",
            Task::Sst2 => "sst2",
            Task::Mnli => "mnli",
            Task::Anli => "anli",
            Task::YelpPolarity => "yelp_polarity",
        }
    }

    /// The task whose [`Task::name`] is `name`.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], listing the known names.
    pub fn from_name(name: &str) -> Result<Task, Error> {
        Task::ALL
            .into_iter()
            .find(|task| task.name() == name)
            .ok_or_else(|| Error::UnknownTask { name: name.to_owned(), known: Task::ALL.map(Task::name).join(", ") })
    }

    /// The manifest asset holding the task's data.
    pub fn asset_id(self) -> &'static str {
        match self {
            Task::Mrpc => "glue-mrpc",
            Task::Qqp => "glue-qqp",
            Task::Sst2 => "glue-sst2",
            Task::Mnli => "glue-mnli",
            Task::Anli => "anli-v1",
            Task::YelpPolarity => "yelp-polarity",
        }
    }

    /// Label names, in label-id order (GLUE's order for the GLUE tasks).
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Task::Mrpc | Task::Qqp => &["not_equivalent", "equivalent"],
            Task::Sst2 | Task::YelpPolarity => &["negative", "positive"],
            Task::Mnli | Task::Anli => &["entailment", "neutral", "contradiction"],
        }
    }

    /// The split the paper reports on (Yelp has no dev split: its test split plays that part).
    pub fn dev_splits(self) -> &'static [&'static str] {
        match self {
            Task::Mnli => &["dev_matched", "dev_mismatched"],
            Task::YelpPolarity => &["test"],
            _ => &["dev"],
        }
    }

    /// Whether an example is a sentence pair (`text_b` set): MRPC, QQP, MNLI, ANLI.
    pub fn is_pair(self) -> bool {
        matches!(self, Task::Mrpc | Task::Qqp | Task::Mnli | Task::Anli)
    }

    /// The metrics reported on the task: accuracy, and F1 as well for MRPC and QQP.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Task::Mrpc | Task::Qqp => &[Metric::Accuracy, Metric::F1],
            _ => &[Metric::Accuracy],
        }
    }

    /// The published split sizes.
    pub fn canonical_sizes(self) -> SplitSizes {
        let sizes: &[(&'static str, usize)] = match self {
            Task::Mrpc => &[("train", 3668), ("dev", 408), ("test", 1725)],
            Task::Qqp => &[("train", 363_846), ("dev", 40_430)],
            Task::Sst2 => &[("train", 67_349), ("dev", 872)],
            Task::Mnli => &[("train", 392_702), ("dev_matched", 9815), ("dev_mismatched", 9832)],
            Task::Anli => &[
                ("r1_train", 16_946),
                ("r1_dev", 1000),
                ("r1_test", 1000),
                ("r2_train", 45_460),
                ("r2_dev", 1000),
                ("r2_test", 1000),
                ("r3_train", 100_459),
                ("r3_dev", 1200),
                ("r3_test", 1200),
            ],
            Task::YelpPolarity => &[("train", 560_000), ("test", 38_000)],
        };
        sizes.iter().copied().collect()
    }

    /// Parses the task from a verified asset, checking the canonical split sizes.
    pub fn load(self, paths: &AssetPaths) -> Result<TaskData, Error> {
        self.load_checked(paths, &self.canonical_sizes())
    }

    /// Parses the task, checking the given split sizes (tests use small fixtures).
    pub fn load_checked(self, paths: &AssetPaths, sizes: &SplitSizes) -> Result<TaskData, Error> {
        let mut splits = BTreeMap::new();
        let check =
            |split: &'static str, file: &Path, examples: Vec<Example>| -> Result<(String, Vec<Example>), Error> {
                let expected = sizes.get(split).copied().unwrap_or(examples.len());
                if examples.len() != expected {
                    return Err(Error::SplitSize {
                        file: file.to_path_buf(),
                        split: split.to_owned(),
                        expected,
                        actual: examples.len(),
                    });
                }
                Ok((split.to_owned(), examples))
            };
        match self {
            Task::Sst2 => {
                for split in ["train", "dev"] {
                    let file = paths.member(&format!("SST-2/{split}.tsv"));
                    let examples = parse_tsv(&file, &["sentence", "label"], |fields| {
                        Ok(Example { text_a: fields[0].to_owned(), text_b: None, label: binary_label(fields[1])? })
                    })?;
                    let (name, examples) = check(split, &file, examples)?;
                    splits.insert(name, examples);
                }
            }
            Task::Mrpc => {
                let dev_ids_file = paths.file("mrpc_dev_ids.tsv");
                let dev_ids = parse_mrpc_dev_ids(&dev_ids_file)?;
                let train_file = paths.file("msr_paraphrase_train.txt");
                let pool = parse_mrpc(&train_file)?;
                let (dev, train): (Vec<_>, Vec<_>) = pool.into_iter().partition(|(ids, _)| dev_ids.contains(ids));
                let (name, examples) =
                    check("train", &train_file, train.into_iter().map(|(_, example)| example).collect())?;
                splits.insert(name, examples);
                let (name, examples) =
                    check("dev", &train_file, dev.into_iter().map(|(_, example)| example).collect())?;
                splits.insert(name, examples);
                let test_file = paths.file("msr_paraphrase_test.txt");
                let test = parse_mrpc(&test_file)?.into_iter().map(|(_, example)| example).collect();
                let (name, examples) = check("test", &test_file, test)?;
                splits.insert(name, examples);
            }
            Task::Qqp | Task::Mnli => {
                // Sentence-pair GLUE TSVs: the same reader, other columns and labels.
                type LabelParser = fn(&str) -> Result<usize, String>;
                let (folder, split_names, columns, parse_label): (&str, &[&'static str], [&str; 3], LabelParser) =
                    if self == Task::Qqp {
                        ("QQP", &["train", "dev"], ["question1", "question2", "is_duplicate"], binary_label)
                    } else {
                        (
                            "MNLI",
                            &["train", "dev_matched", "dev_mismatched"],
                            ["sentence1", "sentence2", "gold_label"],
                            nli_label,
                        )
                    };
                for &split in split_names {
                    let file = paths.member(&format!("{folder}/{split}.tsv"));
                    let examples = parse_tsv(&file, &columns, |fields| {
                        Ok(Example {
                            text_a: fields[0].to_owned(),
                            text_b: Some(fields[1].to_owned()),
                            label: parse_label(fields[2])?,
                        })
                    })?;
                    let (name, examples) = check(split, &file, examples)?;
                    splits.insert(name, examples);
                }
            }
            Task::Anli => {
                let mut combined: BTreeMap<&str, Vec<Example>> = BTreeMap::new();
                let rounds = [
                    ("R1", ["r1_train", "r1_dev", "r1_test"]),
                    ("R2", ["r2_train", "r2_dev", "r2_test"]),
                    ("R3", ["r3_train", "r3_dev", "r3_test"]),
                ];
                for (round, keys) in rounds {
                    for (split, key) in ["train", "dev", "test"].into_iter().zip(keys) {
                        let file = paths.member(&format!("anli_v1.0/{round}/{split}.jsonl"));
                        let (_, examples) = check(key, &file, parse_anli(&file)?)?;
                        combined.entry(split).or_default().extend(examples);
                    }
                }
                // The paper's ANLI is all rounds together.
                for (split, examples) in combined {
                    splits.insert(split.to_owned(), examples);
                }
            }
            Task::YelpPolarity => {
                for split in ["train", "test"] {
                    let file = paths.member(&format!("yelp_review_polarity_csv/{split}.csv"));
                    let (name, examples) = check(split, &file, parse_yelp(&file)?)?;
                    splits.insert(name, examples);
                }
            }
        }
        Ok(TaskData { task: self, splits })
    }
}

impl TaskData {
    /// The examples of split `name`; `None` if the task has no such split.
    pub fn split(&self, name: &str) -> Option<&[Example]> {
        self.splits.get(name).map(Vec::as_slice)
    }

    /// Accuracy of always answering the most frequent label of `split`.
    pub fn majority_accuracy(&self, split: &str) -> Option<f64> {
        let examples = self.split(split)?;
        if examples.is_empty() {
            return None;
        }
        let mut counts = vec![0usize; self.task.labels().len()];
        for example in examples {
            counts[example.label] += 1;
        }
        Some(*counts.iter().max().expect("labels") as f64 / examples.len() as f64)
    }
}

fn read_text(file: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(file).map_err(io_error(file))?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text))
}

fn parse_error(file: &Path, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { file: file.to_path_buf(), line, message: message.into() }
}

/// A GLUE TSV: header row, tab-separated, no quoting. `columns` are looked up by header name and
/// handed to `build` in that order.
fn parse_tsv(
    file: &Path,
    columns: &[&str],
    build: impl Fn(&[&str]) -> Result<Example, String>,
) -> Result<Vec<Example>, Error> {
    let text = read_text(file)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or_else(|| parse_error(file, 1, "empty file"))?.split('\t').collect();
    let indices: Vec<usize> = columns
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|name| name == column)
                .ok_or_else(|| parse_error(file, 1, format!("no column `{column}` in header {header:?}")))
        })
        .collect::<Result<_, _>>()?;
    let mut examples = Vec::new();
    for (line_idx, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            return Err(parse_error(
                file,
                line_idx + 2,
                format!("{} fields, header has {}", fields.len(), header.len()),
            ));
        }
        let picked: Vec<&str> = indices.iter().map(|&index| fields[index]).collect();
        examples.push(build(&picked).map_err(|message| parse_error(file, line_idx + 2, message))?);
    }
    Ok(examples)
}

fn binary_label(text: &str) -> Result<usize, String> {
    match text.trim() {
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(format!("label `{other}` is not 0 or 1")),
    }
}

fn nli_label(text: &str) -> Result<usize, String> {
    match text.trim() {
        "entailment" | "e" => Ok(0),
        "neutral" | "n" => Ok(1),
        "contradiction" | "c" => Ok(2),
        other => Err(format!("label `{other}` is not entailment, neutral or contradiction")),
    }
}

/// The pair of sentence ids of an MRPC row.
type PairIds = (String, String);

/// The SentEval MRPC files: BOM, header `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String`.
fn parse_mrpc(file: &Path) -> Result<Vec<(PairIds, Example)>, Error> {
    let text = read_text(file)?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| parse_error(file, 1, "empty file"))?;
    if header != "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String" {
        return Err(parse_error(file, 1, format!("unexpected header `{header}`")));
    }
    let mut rows = Vec::new();
    for (line_idx, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [quality, id1, id2, string1, string2] = fields[..] else {
            return Err(parse_error(file, line_idx + 2, format!("{} fields, expected 5", fields.len())));
        };
        let label = binary_label(quality).map_err(|message| parse_error(file, line_idx + 2, message))?;
        rows.push((
            (id1.to_owned(), id2.to_owned()),
            Example { text_a: string1.to_owned(), text_b: Some(string2.to_owned()), label },
        ));
    }
    Ok(rows)
}

/// `mrpc_dev_ids.tsv`: two tab-separated ids per line, no header.
fn parse_mrpc_dev_ids(file: &Path) -> Result<HashSet<PairIds>, Error> {
    let text = read_text(file)?;
    let mut ids = HashSet::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id1, id2] = fields[..] else {
            return Err(parse_error(file, line_idx + 1, format!("{} fields, expected 2", fields.len())));
        };
        ids.insert((id1.to_owned(), id2.to_owned()));
    }
    Ok(ids)
}

#[derive(Deserialize)]
struct AnliRow {
    context: String,
    hypothesis: String,
    label: String,
}

pub(crate) fn parse_anli(file: &Path) -> Result<Vec<Example>, Error> {
    let text = read_text(file)?;
    let mut examples = Vec::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: AnliRow =
            serde_json::from_str(line).map_err(|err| parse_error(file, line_idx + 1, err.to_string()))?;
        let label = nli_label(&row.label).map_err(|message| parse_error(file, line_idx + 1, message))?;
        examples.push(Example { text_a: row.context, text_b: Some(row.hypothesis), label });
    }
    Ok(examples)
}

/// Yelp Polarity CSV (Zhang et al. 2015, `readme.txt` of `yelp_review_polarity_csv`): no header,
/// `"class","text"` with class 1 (negative) or 2 (positive), quotes doubled inside fields (the CSV
/// reader undoes that), newlines written as a backslash and `n`, and some quotes written as a
/// backslash and `"` (undone by [`unescape_zhang`]).
fn parse_yelp(file: &Path) -> Result<Vec<Example>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(file)
        .map_err(|err| parse_error(file, 0, err.to_string()))?;
    let mut examples = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| {
            let line = err.position().map_or(0, |position| position.line() as usize);
            parse_error(file, line, err.to_string())
        })?;
        let line = record.position().map_or(0, |position| position.line() as usize);
        if record.len() != 2 {
            return Err(parse_error(file, line, format!("{} fields, expected 2", record.len())));
        }
        let label = match &record[0] {
            "1" => 0,
            "2" => 1,
            other => return Err(parse_error(file, line, format!("class `{other}` is not 1 or 2"))),
        };
        examples.push(Example { text_a: unescape_zhang(&record[1]), text_b: None, label });
    }
    Ok(examples)
}

/// The escapes of Zhang et al.'s CSVs, in one left-to-right pass: `\n` is a newline, `\"` a
/// quote; any other backslash is text (`C:\dir`, `\o/`, a trailing `\`).
fn unescape_zhang(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, chars.peek()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('"')) => {
                out.push('"');
                chars.next();
            }
            _ => out.push(ch),
        }
    }
    out
}
