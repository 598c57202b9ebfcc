//! A classification task the user declares over local files: CSV, TSV or JSON Lines, one or two
//! text columns and a label column, a dev file or a seeded split of the training file (the
//! `--train_file`/`--validation_file` of HF's `run_glue`, declared the way specs declare
//! everything else).
//!
//! [`LocalTaskSpec::load`] reads and checks both splits before any work: a missing column, a label
//! outside the declared list, an empty split, a repeated id or a malformed row is an
//! [`Error::TaskFile`] naming the file, the line and the field. The task's identity
//! ([`LocalTask::data_id`]) hashes the declaration's meaning and the files' bytes, so a changed
//! file or a changed column gives other run keys.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::tasks::{Example, Metric};
use crate::text::LineIndex;

/// A task over local files, as a spec declares it (paths relative to the spec's folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalTaskSpec {
    /// The training file (`.csv`, `.tsv` or `.jsonl`; the format is its extension's).
    pub train: PathBuf,
    /// The dev file; absent: `dev_fraction` of the training file, drawn with `split_seed`.
    #[serde(default)]
    pub dev: Option<PathBuf>,
    /// Without a dev file: the fraction of the training rows held out as dev (default 0.1).
    #[serde(default)]
    pub dev_fraction: Option<f64>,
    /// Without a dev file: the seed of the held-out rows (default 0).
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// One text column, or two for a sentence pair (in the order the model reads them).
    pub text: Vec<String>,
    /// The label column (strings, or numbers read as their text).
    pub label: String,
    /// The labels in class order; absent: the sorted distinct labels of the training split.
    /// Numbers and booleans are labels too; every label is read as [`canonical_label`] reads it.
    #[serde(default, deserialize_with = "label_list")]
    pub labels: Option<Vec<String>>,
    /// A column whose values must be unique within each file (e.g. an example id).
    #[serde(default)]
    pub id: Option<String>,
    /// `accuracy` (the default), or `f1` to report F1 of the second label as well (MRPC, QQP).
    #[serde(default)]
    pub metric: Option<Metric>,
}

/// A checked local task: its splits (`train`, `dev`), labels and identity.
#[derive(Debug, Clone)]
pub struct LocalTask {
    /// The task's name, as the spec declares it.
    pub name: String,
    /// The declaration the task was read from.
    pub spec: LocalTaskSpec,
    /// The label names in class order (an example's label is an index into them): the declared
    /// ones, else the sorted distinct labels of the training split.
    pub labels: Vec<String>,
    /// The training examples (without a dev file: the training rows not held out as dev).
    pub train: Vec<Example>,
    /// The dev examples: the dev file's rows, or the rows held out of the training file.
    pub dev: Vec<Example>,
    /// The sha256 of each file, by split (`train`, and `dev` when it has its own file).
    pub hashes: BTreeMap<String, String>,
    /// The first 12 hex digits of the sha256 of the declaration's meaning and the files' hashes.
    pub data_id: String,
}

/// The first `bytes` bytes of the sha256 of `data`, in hex.
pub fn short_sha256(data: &[u8], bytes: usize) -> String {
    Sha256::digest(data).iter().take(bytes).map(|byte| format!("{byte:02x}")).collect()
}

impl LocalTask {
    /// Whether examples are sentence pairs (two text columns, so `text_b` is set).
    pub fn is_pair(&self) -> bool {
        self.spec.text.len() == 2
    }

    /// Whether the task reports F1 of label 1 beside accuracy.
    pub fn with_f1(&self) -> bool {
        self.spec.metric == Some(Metric::F1)
    }
}

/// One file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Tsv,
    Jsonl,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// One row: its line in the file and its values by column.
struct Row {
    line: usize,
    values: BTreeMap<String, String>,
}

impl LocalTaskSpec {
    /// Reads and checks the task named `name`, its paths resolved against `base` (the spec's
    /// folder, or the task file's on the command line).
    ///
    /// # Errors
    /// [`Error::TaskDeclaration`] for a declaration that cannot work (naming its field),
    /// [`Error::TaskFile`] for anything wrong in the files (naming the file, the line and the
    /// field), [`Error::Io`] for a file that cannot be read.
    pub fn load(&self, name: &str, base: &Path) -> Result<LocalTask, Error> {
        let declaration = |field: &str, message: String| Error::TaskDeclaration { field: field.to_owned(), message };
        if !(1..=2).contains(&self.text.len()) {
            return Err(declaration("text", format!("needs one or two columns, got {}", self.text.len())));
        }
        if self.text.contains(&self.label) {
            return Err(declaration(
                "text",
                format!("`{}` is the label column: the label would be read as text", self.label),
            ));
        }
        if self.dev.is_some() && (self.dev_fraction.is_some() || self.split_seed.is_some()) {
            let field = if self.dev_fraction.is_some() { "dev_fraction" } else { "split_seed" };
            return Err(declaration(field, "a dev file and a held-out split exclude each other: give one".to_owned()));
        }
        let fraction = self.dev_fraction.unwrap_or(0.1);
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(declaration("dev_fraction", format!("{fraction} is not in (0, 1)")));
        }
        if let Some(labels) = &self.labels {
            if labels.len() < 2 {
                return Err(declaration("labels", "needs at least two labels".to_owned()));
            }
            let distinct: BTreeSet<String> = labels.iter().map(|label| canonical_label(label)).collect();
            if distinct.len() != labels.len() {
                return Err(declaration("labels", "lists a label twice".to_owned()));
            }
        }
        let mut columns: Vec<&str> = self.text.iter().map(String::as_str).collect();
        columns.push(&self.label);
        columns.extend(self.id.as_deref());

        let train_path = base.join(&self.train);
        let train_rows = read_rows(&train_path, &columns, "train")?;
        // Ids are unique per file (before a held-out split, so that no id is in both splits).
        self.check_ids(&train_rows, &train_path)?;
        let dev_path = self.dev.as_ref().map(|dev| base.join(dev));
        let (train_rows, dev_rows) = match &dev_path {
            Some(path) => {
                let rows = read_rows(path, &columns, "dev")?;
                self.check_ids(&rows, path)?;
                (train_rows, rows)
            }
            None => {
                let total = train_rows.len();
                let (train, dev) = split_rows(train_rows, &columns, fraction, self.split_seed.unwrap_or(0));
                if dev.is_empty() || train.is_empty() {
                    return Err(Error::TaskFile {
                        file: train_path.clone(),
                        line: None,
                        field: "dev_fraction".to_owned(),
                        message: format!(
                            "{fraction} of {total} rows leaves {} for training and {} for dev; both need rows",
                            train.len(),
                            dev.len()
                        ),
                    });
                }
                (train, dev)
            }
        };
        let dev_file = dev_path.clone().unwrap_or_else(|| train_path.clone());
        for (rows, file, split) in [(&train_rows, &train_path, "train"), (&dev_rows, &dev_file, "dev")] {
            if rows.is_empty() {
                return Err(Error::TaskFile {
                    file: file.clone(),
                    line: None,
                    field: split.to_owned(),
                    message: "the split has no rows".to_owned(),
                });
            }
        }
        let declared: Option<Vec<String>> =
            self.labels.as_ref().map(|labels| labels.iter().map(|label| canonical_label(label)).collect());
        let mut train_rows = train_rows;
        let mut dev_rows = dev_rows;
        let mut spellings: BTreeMap<String, (String, PathBuf, usize)> = BTreeMap::new();
        for (rows, file) in [(&mut train_rows, &train_path), (&mut dev_rows, &dev_file)] {
            for row in rows.iter_mut() {
                let raw = &row.values[&self.label];
                let label = self.checked_label(raw, declared.as_deref(), file, row.line)?;
                spellings.entry(label.clone()).or_insert_with(|| (raw.clone(), file.clone(), row.line));
                row.values.insert(self.label.clone(), label);
                for column in &self.text {
                    if row.values[column].trim().is_empty() {
                        return Err(Error::TaskFile {
                            file: file.clone(),
                            line: Some(row.line),
                            field: column.clone(),
                            message: "the text is empty: fill it in or remove the row".to_owned(),
                        });
                    }
                }
            }
        }
        // Two classes spelled alike but for case are one class typed two ways, or two classes:
        // only the user knows which.
        let mut by_folded: BTreeMap<String, &String> = BTreeMap::new();
        for label in spellings.keys() {
            if let Some(other) = by_folded.insert(label.to_lowercase(), label) {
                let both_declared =
                    declared.as_ref().is_some_and(|declared| declared.contains(label) && declared.contains(other));
                if both_declared {
                    continue;
                }
                let (first, first_file, first_line) = &spellings[other];
                let (second, file, line) = &spellings[label];
                return Err(Error::TaskFile {
                    file: file.clone(),
                    line: Some(*line),
                    field: self.label.clone(),
                    message: format!(
                        "`{second}` and `{first}` ({}:{first_line}) differ only in case: write one spelling, \
                         or list both in `labels` if they are two classes",
                        first_file.display()
                    ),
                });
            }
        }
        let labels: Vec<String> = match &declared {
            Some(labels) => labels.clone(),
            None => train_rows
                .iter()
                .map(|row| row.values[&self.label].clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let examples = |rows: &[Row], file: &Path| -> Result<Vec<Example>, Error> {
            rows.iter()
                .map(|row| {
                    let value = &row.values[&self.label];
                    let label = labels.iter().position(|label| label == value).ok_or_else(|| Error::TaskFile {
                        file: file.to_path_buf(),
                        line: Some(row.line),
                        field: self.label.clone(),
                        message: format!("`{value}` is not one of the labels ({})", labels.join(", ")),
                    })?;
                    Ok(Example {
                        text_a: row.values[&self.text[0]].clone(),
                        text_b: self.text.get(1).map(|column| row.values[column].clone()),
                        label,
                    })
                })
                .collect()
        };
        let train = examples(&train_rows, &train_path)?;
        let dev = examples(&dev_rows, &dev_file)?;
        // A split with one class measures nothing: no model can beat its majority class.
        for (examples, file, split) in [(&train, &train_path, "train"), (&dev, &dev_file, "dev")] {
            let classes: BTreeSet<usize> = examples.iter().map(|example| example.label).collect();
            if classes.len() < 2 {
                return Err(Error::TaskFile {
                    file: file.clone(),
                    line: None,
                    field: self.label.clone(),
                    message: format!(
                        "the {split} split has {} class(es); a task needs two (accuracy could not beat the majority class)",
                        classes.len()
                    ),
                });
            }
        }
        let mut hashes = BTreeMap::new();
        hashes.insert("train".to_owned(), crate::store::sha256_file(&train_path)?);
        if let Some(dev_path) = &dev_path {
            hashes.insert("dev".to_owned(), crate::store::sha256_file(dev_path)?);
        }
        let data_id = self.data_id(&labels, &hashes);
        Ok(LocalTask { name: name.to_owned(), spec: self.clone(), labels, train, dev, hashes, data_id })
    }

    /// The class a raw label value names ([`canonical_label`]), refusing a missing value (empty,
    /// `NaN`, `NA`, `N/A`, `null`, `None`) unless the declaration lists it as a label.
    fn checked_label(&self, raw: &str, declared: Option<&[String]>, file: &Path, line: usize) -> Result<String, Error> {
        let label = canonical_label(raw);
        let listed = declared.is_some_and(|declared| declared.contains(&label));
        let missing = label.is_empty() || MISSING.iter().any(|missing| missing.eq_ignore_ascii_case(&label));
        if missing && !listed {
            let what = if label.is_empty() { "empty".to_owned() } else { format!("`{label}`, a missing value") };
            return Err(Error::TaskFile {
                file: file.to_path_buf(),
                line: Some(line),
                field: self.label.clone(),
                message: format!(
                    "the label is {what}: fill it in or remove the row (a class really named so: list it in `labels`)"
                ),
            });
        }
        Ok(label)
    }

    /// Every value of the id column, if declared, appears once in `rows` (one file).
    fn check_ids(&self, rows: &[Row], file: &Path) -> Result<(), Error> {
        let Some(id) = &self.id else { return Ok(()) };
        let mut seen: HashSet<&str> = HashSet::new();
        for row in rows {
            if !seen.insert(row.values[id].as_str()) {
                return Err(Error::TaskFile {
                    file: file.to_path_buf(),
                    line: Some(row.line),
                    field: id.clone(),
                    message: format!("id `{}` appears twice in the file", row.values[id]),
                });
            }
        }
        Ok(())
    }

    /// The task's identity: what the declaration means (text and label columns, labels in
    /// order, the held-out split, the metric; not where the files are, not the id column, which
    /// only checks) and the sha256 of each file.
    fn data_id(&self, labels: &[String], hashes: &BTreeMap<String, String>) -> String {
        let held_out = !hashes.contains_key("dev");
        let meaning = serde_json::json!({
            "format": "local-task v1",
            "text": self.text,
            "label": self.label,
            "labels": labels,
            "metric": self.metric.unwrap_or(Metric::Accuracy),
            "dev_fraction": held_out.then(|| self.dev_fraction.unwrap_or(0.1)),
            "split_seed": held_out.then(|| self.split_seed.unwrap_or(0)),
            "files": hashes,
        });
        short_sha256(meaning.to_string().as_bytes(), 6)
    }
}

/// Label values that mean "no label" in the files people export (pandas writes `NaN`, R `NA`).
const MISSING: [&str; 5] = ["nan", "na", "n/a", "null", "none"];

/// A label value as the class it names: text trimmed of spaces; a number by its value, so that
/// `1`, `1.0`, ` 1` and `1e0` are the class `1` (and `0.5` stays `0.5`); JSON's `true` and the
/// text `true` alike. Labels people write two ways (pandas writes an integer column with a gap as
/// floats) are then one class, not two.
pub fn canonical_label(raw: &str) -> String {
    let trimmed = raw.trim();
    let numeric = trimmed.bytes().any(|byte| byte.is_ascii_digit())
        && trimmed.bytes().all(|byte| byte.is_ascii_digit() || b"+-.eE".contains(&byte));
    match trimmed.parse::<f64>() {
        Ok(value) if numeric && value.is_finite() => {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                format!("{}", value as i64)
            } else {
                format!("{value}")
            }
        }
        _ => trimmed.to_owned(),
    }
}

/// The declaration's `labels` as text: YAML numbers and booleans (`labels: [0, 1]`) are labels too.
fn label_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }
    let values: Option<Vec<Value>> = Option::deserialize(deserializer)?;
    Ok(values.map(|values| {
        values
            .into_iter()
            .map(|value| match value {
                Value::Bool(flag) => flag.to_string(),
                Value::Int(number) => number.to_string(),
                Value::Float(number) => number.to_string(),
                Value::Text(text) => text,
            })
            .collect()
    }))
}

/// The rows of `path`, with the `columns` a task reads; any other column is ignored.
fn read_rows(path: &Path, columns: &[&str], split: &str) -> Result<Vec<Row>, Error> {
    let format = Format::of(path).ok_or_else(|| Error::TaskFile {
        file: path.to_path_buf(),
        line: None,
        field: split.to_owned(),
        message: "the format is not known from the extension: use .csv, .tsv or .jsonl".to_owned(),
    })?;
    let text = crate::text::read(path)?;
    match format {
        Format::Jsonl => read_jsonl(path, &text, columns),
        Format::Csv | Format::Tsv => {
            read_delimited(path, &text, columns, if format == Format::Csv { b',' } else { b'\t' })
        }
    }
}

fn read_delimited(path: &Path, text: &str, columns: &[&str], delimiter: u8) -> Result<Vec<Row>, Error> {
    if text.trim().is_empty() {
        return Err(Error::TaskFile {
            file: path.to_path_buf(),
            line: None,
            field: "header".to_owned(),
            message: "the file is empty (a header line with the column names comes first)".to_owned(),
        });
    }
    // TSV as GLUE writes it: no quoting (a `"` is an ordinary character); CSV with RFC 4180 quotes.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(delimiter == b',')
        .flexible(false)
        .from_reader(text.as_bytes());
    let error = |line: Option<usize>, field: &str, message: String| Error::TaskFile {
        file: path.to_path_buf(),
        line,
        field: field.to_owned(),
        message,
    };
    // Lines from byte offsets: the reader's own counter skips CR-only endings.
    let lines = LineIndex::new(text);
    let line_at = |position: Option<&csv::Position>| {
        position.map(|position| lines.line_of_content(text, position.byte() as usize))
    };
    let header: Vec<String> =
        reader.headers().map_err(|err| error(Some(1), "header", err.to_string()))?.iter().map(str::to_owned).collect();
    let quoted = || header.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    let mut positions = Vec::new();
    for column in columns {
        let found: Vec<usize> = (0..header.len()).filter(|&index| header[index] == *column).collect();
        match found[..] {
            [position] => positions.push(position),
            [] => return Err(error(Some(1), column, format!("no such column (the header has: {})", quoted()))),
            _ => return Err(error(Some(1), column, format!("the header names this column {} times", found.len()))),
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| {
            // The reader's message counts lines its own way; the line is ours.
            let message = err.to_string();
            let message = message.rsplit_once("): ").map_or(message.as_str(), |(_, rest)| rest).to_owned();
            error(line_at(err.position()), "row", message)
        })?;
        let line = line_at(record.position()).unwrap_or(0);
        if record.iter().eq(header.iter().map(String::as_str)) {
            return Err(error(
                Some(line),
                "row",
                "repeats the header row (files joined with `cat`?): remove this line".to_owned(),
            ));
        }
        let values = columns
            .iter()
            .zip(&positions)
            .map(|(column, &position)| ((*column).to_owned(), record[position].to_owned()))
            .collect();
        rows.push(Row { line, values });
    }
    Ok(rows)
}

fn read_jsonl(path: &Path, text: &str, columns: &[&str]) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    for (line, line_text) in crate::text::lines(text) {
        if line_text.trim().is_empty() {
            continue;
        }
        let error = |field: &str, message: String| Error::TaskFile {
            file: path.to_path_buf(),
            line: Some(line),
            field: field.to_owned(),
            message,
        };
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line_text).map_err(|err| error("row", format!("not a JSON object: {err}")))?;
        let mut values = BTreeMap::new();
        for column in columns {
            let value = match object.get(*column) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Number(number)) => number.to_string(),
                Some(serde_json::Value::Bool(flag)) => flag.to_string(),
                Some(other) => return Err(error(column, format!("expected a string or a number, got {other}"))),
                None => return Err(error(column, "missing".to_owned())),
            };
            values.insert((*column).to_owned(), value);
        }
        rows.push(Row { line, values });
    }
    Ok(rows)
}

/// Holds out `fraction` of `rows` as dev: each row's place is decided by the sha256 of the seed,
/// its values (the columns the task reads) and how many identical rows came before it, so the
/// split depends on the seed and the rows only: not on the platform, and not on other rows (an
/// edited or deleted row moves no other row between the splits).
fn split_rows(rows: Vec<Row>, columns: &[&str], fraction: f64, seed: u64) -> (Vec<Row>, Vec<Row>) {
    let mut occurrences: HashMap<Vec<&str>, usize> = HashMap::new();
    let keys: Vec<[u8; 32]> = rows
        .iter()
        .map(|row| {
            let values: Vec<&str> = columns.iter().map(|column| row.values[*column].as_str()).collect();
            let occurrence = occurrences.entry(values.clone()).or_default();
            *occurrence += 1;
            let text = serde_json::json!(["split v2", seed, values, *occurrence]).to_string();
            Sha256::digest(text.as_bytes()).into()
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&index| keys[index]);
    let n_dev = (rows.len() as f64 * fraction).round() as usize;
    let dev_rows: HashSet<usize> = order.into_iter().take(n_dev).collect();
    let (mut dev, mut train) = (Vec::new(), Vec::new());
    for (index, row) in rows.into_iter().enumerate() {
        if dev_rows.contains(&index) { dev.push(row) } else { train.push(row) }
    }
    (train, dev)
}
