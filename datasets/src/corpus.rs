//! Pre-training corpora: unlabelled documents streamed from verified assets, one file at a time,
//! so a corpus is never in memory as a whole.
//!
//! - `task-text`: the English text the local mirror provides, for the CPU miniature: SST-2's
//!   training sentences (67,349 phrases), MRPC's training pairs (3,668, one document per pair)
//!   and ANLI's dev and test premises (deduplicated) and hypotheses (R1-R3; the mirror has no ANLI
//!   train files). Exact duplicate documents are dropped. Downstream dev text is not included
//!   (SST-2 dev, MRPC dev); ANLI's dev is, so a model pre-trained on it is not for ANLI.
//! - `c4-en` (or `c4-en:<n>` for the first `n` shards): English C4 (Raffel et al. 2020, the
//!   `allenai/c4` release at a pinned revision), `en/c4-train.<i>-of-01024.json.gz`, one JSON
//!   object per line whose `text` is a document, for paper-scale pre-training. RoBERTa's 160 GB
//!   mix (BookCorpus, English Wikipedia, CC-News, OpenWebText, Stories) is not one public download;
//!   the manifest's 64 shards hold about 19.5 GB of text (about 5% of C4 `en`, which has 305 GB and
//!   about 156B tokens), about an eighth of RoBERTa's corpus.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::manifest::{Asset, Manifest};
use crate::store::AssetPaths;
use crate::tasks::Task;
use crate::{Error, io_error};

/// The number of C4 `en` training shards the manifest lists.
pub const C4_SHARDS: usize = 64;

/// A pre-training corpus, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// The mirror's task text (see the module documentation).
    TaskText,
    /// The first `shards` shards of C4 `en`.
    C4En {
        /// The number of shards read, 1 to [`C4_SHARDS`].
        shards: usize,
    },
}

/// One unlabelled document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The document's text, as one string.
    pub text: String,
}

impl Corpus {
    /// The corpus names [`Corpus::from_name`] reads, for messages.
    pub const NAMES: &'static str = "task-text, c4-en, c4-en:<shards>";

    /// `task-text`, `c4-en` (all the manifest's shards) or `c4-en:<n>` (the first `n`).
    pub fn from_name(name: &str) -> Result<Corpus, Error> {
        let unknown = || Error::UnknownCorpus { name: name.to_owned(), known: Corpus::NAMES.to_owned() };
        match name {
            "task-text" => Ok(Corpus::TaskText),
            "c4-en" => Ok(Corpus::C4En { shards: C4_SHARDS }),
            _ => {
                let shards: usize = name.strip_prefix("c4-en:").and_then(|n| n.parse().ok()).ok_or_else(unknown)?;
                if shards == 0 || shards > C4_SHARDS {
                    return Err(Error::UnknownCorpus {
                        name: name.to_owned(),
                        known: format!("c4-en:<shards> with 1 to {C4_SHARDS} shards"),
                    });
                }
                Ok(Corpus::C4En { shards })
            }
        }
    }

    /// The name [`Corpus::from_name`] reads.
    pub fn name(self) -> String {
        match self {
            Corpus::TaskText => "task-text".to_owned(),
            Corpus::C4En { shards } if shards == C4_SHARDS => "c4-en".to_owned(),
            Corpus::C4En { shards } => format!("c4-en:{shards}"),
        }
    }

    /// The assets (or the parts of them) the corpus reads, to be made available with
    /// `Store::ensure_asset` before [`Corpus::documents`].
    pub fn assets(self, manifest: &Manifest) -> Result<Vec<Asset>, Error> {
        match self {
            Corpus::TaskText => {
                let mut anli = manifest.asset(Task::Anli.asset_id())?.clone();
                // Only the dev and test files: the mirror has no ANLI train files, and they are
                // not needed here.
                for file in &mut anli.files {
                    file.members.retain(|member| !member.path.ends_with("train.jsonl"));
                }
                Ok(vec![
                    manifest.asset(Task::Sst2.asset_id())?.clone(),
                    manifest.asset(Task::Mrpc.asset_id())?.clone(),
                    anli,
                ])
            }
            Corpus::C4En { shards } => {
                let mut c4 = manifest.asset("c4-en")?.clone();
                c4.files.truncate(shards);
                Ok(vec![c4])
            }
        }
    }

    /// The corpus's identity, stable before and after its files are fetched: the pinned hashes of
    /// the task assets it reads (`task-text`), or the shard count and the pinned hub revision of
    /// C4's URLs (whose file hashes are learned on first download, so they cannot key anything
    /// before it).
    pub fn identity(
        self,
        manifest: &Manifest,
        content_id: impl Fn(&str) -> Result<String, Error>,
    ) -> Result<String, Error> {
        match self {
            Corpus::TaskText => {
                let ids =
                    self.assets(manifest)?.iter().map(|asset| content_id(&asset.id)).collect::<Result<Vec<_>, _>>()?;
                Ok(format!("{}:{}", self.name(), ids.join(",")))
            }
            Corpus::C4En { shards } => {
                let asset = manifest.asset("c4-en")?;
                let revision = asset
                    .files
                    .first()
                    .and_then(|file| file.urls.first())
                    .and_then(|url| url.split("/resolve/").nth(1))
                    .and_then(|rest| rest.split('/').next())
                    .ok_or_else(|| Error::Manifest {
                        file: "manifest.yaml".into(),
                        message: "c4-en: its URLs name no `/resolve/<revision>/`".to_owned(),
                    })?;
                Ok(format!("c4-en:{shards}@{revision}"))
            }
        }
    }

    /// The corpus's documents in a fixed order, read file by file from the verified `paths` of
    /// [`Corpus::assets`] (same order).
    pub fn documents(self, paths: &[AssetPaths]) -> Result<Box<dyn Iterator<Item = Result<Document, Error>>>, Error> {
        match self {
            Corpus::TaskText => {
                let [sst2, mrpc, anli] = paths else {
                    return Err(Error::TaskDeclaration {
                        field: "corpus".to_owned(),
                        message: format!("task-text reads 3 assets, got {}", paths.len()),
                    });
                };
                let mut texts: Vec<String> = Vec::new();
                let sst2 = Task::Sst2.load(sst2)?;
                texts.extend(sst2.split("train").unwrap_or_default().iter().map(|example| example.text_a.clone()));
                let mrpc = Task::Mrpc.load(mrpc)?;
                for example in mrpc.split("train").unwrap_or_default() {
                    texts.push(format!("{} {}", example.text_a, example.text_b.as_deref().unwrap_or_default()));
                }
                for round in ["R1", "R2", "R3"] {
                    for split in ["dev", "test"] {
                        let file = anli.member(&format!("anli_v1.0/{round}/{split}.jsonl"));
                        for example in crate::tasks::parse_anli(&file)? {
                            texts.push(example.text_a);
                            texts.extend(example.text_b);
                        }
                    }
                }
                let mut seen = HashSet::new();
                texts.retain(|text| !text.trim().is_empty() && seen.insert(text.clone()));
                Ok(Box::new(texts.into_iter().map(|text| Ok(Document { text }))))
            }
            Corpus::C4En { .. } => {
                let [c4] = paths else {
                    return Err(Error::TaskDeclaration {
                        field: "corpus".to_owned(),
                        message: format!("c4-en reads 1 asset, got {}", paths.len()),
                    });
                };
                let files: Vec<PathBuf> = c4.origins.iter().map(|(name, _)| c4.file(name)).collect::<Vec<_>>();
                Ok(Box::new(files.into_iter().flat_map(json_lines_documents)))
            }
        }
    }
}

/// Whether a corpus name is a local file (by its extension).
pub fn is_corpus_file(name: &str) -> bool {
    [".txt", ".jsonl", ".json.gz"].iter().any(|extension| name.ends_with(extension))
}

/// The documents of a local corpus file: `.txt` (documents separated by blank lines; the lines of
/// one document joined by spaces), `.jsonl` or `.json.gz` (one JSON object per line with a `text`
/// field). Streamed like the manifest's corpora.
pub fn local_documents(path: &std::path::Path) -> Result<Box<dyn Iterator<Item = Result<Document, Error>>>, Error> {
    let name = path.to_string_lossy();
    if !is_corpus_file(&name) {
        return Err(Error::UnknownCorpus {
            name: name.into_owned(),
            known: format!("{}, or a local .txt, .jsonl or .json.gz file", Corpus::NAMES),
        });
    }
    if name.ends_with(".json.gz") {
        return Ok(json_lines_documents(path.to_path_buf()));
    }
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let reader = std::io::BufReader::new(file);
    let mut lines = crate::text::stream_lines(path, reader);
    let path = path.to_path_buf();
    if name.ends_with(".jsonl") {
        return Ok(Box::new(lines.filter_map(move |line| {
            let (number, line) = match line {
                Ok(line) => line,
                Err(err) => return Some(Err(err)),
            };
            (!line.trim().is_empty()).then(|| {
                serde_json::from_str::<JsonDocument>(&line)
                    .map(|document| Document { text: document.text })
                    .map_err(|err| Error::Parse { file: path.clone(), line: number, message: err.to_string() })
            })
        })));
    }
    let mut failed = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut document: Vec<String> = Vec::new();
        loop {
            match lines.next() {
                Some(Ok((_, line))) if line.trim().is_empty() => {
                    if !document.is_empty() {
                        return Some(Ok(Document { text: document.join(" ") }));
                    }
                }
                Some(Ok((_, line))) => document.push(line.trim().to_owned()),
                Some(Err(err)) => {
                    failed = true;
                    return Some(Err(err));
                }
                None => return (!document.is_empty()).then(|| Ok(Document { text: document.join(" ") })),
            }
        }
    })))
}

#[derive(Deserialize)]
struct JsonDocument {
    text: String,
}

/// The `text` of every line of a gzip-compressed JSON-lines file, streamed.
pub fn json_lines_documents(file: PathBuf) -> Box<dyn Iterator<Item = Result<Document, Error>>> {
    let opened = std::fs::File::open(&file).map_err(io_error(&file));
    let reader = match opened {
        // Every member: `cat a.gz b.gz` and pigz write several, and a single-member decoder stops
        // at the end of the first without a word.
        Ok(handle) => std::io::BufReader::new(flate2::read::MultiGzDecoder::new(handle)),
        Err(err) => return Box::new(std::iter::once(Err(err))),
    };
    Box::new(crate::text::stream_lines(&file.clone(), reader).filter_map(move |line| {
        let (idx, line) = match line {
            Ok((number, line)) => (number - 1, line),
            Err(err) => return Some(Err(err)),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str::<JsonDocument>(&line)
                .map(|document| Document { text: document.text })
                .map_err(|err| Error::Parse { file: file.clone(), line: idx + 1, message: err.to_string() }),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_say_what_exists() {
        for name in ["task-text", "c4-en", "c4-en:3"] {
            assert_eq!(Corpus::from_name(name).unwrap().name(), name);
        }
        for name in ["wiki", "c4-en:0", "c4-en:65", "c4-en:x"] {
            let message = Corpus::from_name(name).unwrap_err().to_string();
            assert!(message.contains(name) && message.contains("c4-en"), "{message}");
        }
    }

    #[test]
    fn text_files_are_documents_separated_by_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.txt");
        std::fs::write(&path, "first line\nof one\n\n\n  second  \n\nthird").unwrap();
        let texts: Vec<String> = local_documents(&path).unwrap().map(|document| document.unwrap().text).collect();
        assert_eq!(texts, ["first line of one", "second", "third"]);
        let jsonl = dir.path().join("corpus.jsonl");
        std::fs::write(&jsonl, "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n").unwrap();
        let texts: Vec<String> = local_documents(&jsonl).unwrap().map(|document| document.unwrap().text).collect();
        assert_eq!(texts, ["a", "b"]);
        let message = local_documents(&dir.path().join("corpus.csv")).err().unwrap().to_string();
        assert!(message.contains("corpus.csv") && message.contains(".txt"), "{message}");
    }

    #[test]
    fn json_lines_are_streamed_with_their_line_numbers_on_errors() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.json.gz");
        let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), Default::default());
        writeln!(encoder, r#"{{"text": "first document", "url": "u"}}"#).unwrap();
        writeln!(encoder).unwrap();
        writeln!(encoder, r#"{{"text": "second"}}"#).unwrap();
        writeln!(encoder, r#"{{"body": "no text"}}"#).unwrap();
        encoder.finish().unwrap();
        let documents: Vec<_> = json_lines_documents(path).collect();
        assert_eq!(documents.len(), 3);
        assert_eq!(documents[0].as_ref().unwrap().text, "first document");
        assert_eq!(documents[1].as_ref().unwrap().text, "second");
        let message = documents[2].as_ref().unwrap_err().to_string();
        assert!(message.contains("shard.json.gz:4") && message.contains("text"), "{message}");
    }

    /// A gzip file of two members (`cat a.gz b.gz`, or a writer that restarts its stream) is
    /// read to the end of the last member, not of the first.
    #[test]
    fn every_member_of_a_gzip_file_is_read() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("joined.json.gz");
        let mut bytes = Vec::new();
        for text in ["one", "two"] {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            writeln!(encoder, r#"{{"text": "{text}"}}"#).unwrap();
            bytes.extend(encoder.finish().unwrap());
        }
        std::fs::write(&path, bytes).unwrap();
        let texts: Vec<String> = local_documents(&path).unwrap().map(|document| document.unwrap().text).collect();
        assert_eq!(texts, ["one", "two"]);
    }
}
