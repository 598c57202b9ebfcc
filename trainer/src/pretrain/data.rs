//! A corpus packed for MLM pre-training: documents tokenised and packed into fixed-length
//! sequences on disk, read back one sequence at a time.
//!
//! Packing follows RoBERTa's FULL-SENTENCES format (Liu et al. 2019, section 4.2): the documents'
//! tokens form one stream, with a separator token between consecutive documents, cut into pieces
//! of `max_len - 2` tokens, each framed by the tokenizer's start and end tokens (`[CLS] .. [SEP]`
//! or `<s> .. </s>`), so a sequence may cross document boundaries and every token appears exactly
//! once. Only the last sequence can be shorter.
//!
//! Documents go to a held-out part by their content (sha256 of the text below `heldout_fraction`),
//! so the split does not depend on the corpus's order. The packed data is written once under
//! `<cache>/<key>/` (`train.u32`, `heldout.u32`: sequences of `max_len` little-endian u32, the last
//! padded; `packed.json`: counts), keyed by the corpus, the tokenizer's sha256, `max_len` and the
//! fraction, in a temporary folder renamed when complete. Documents are tokenised in batches as
//! they stream in, so neither the corpus nor its tokens are ever in memory as a whole.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::masking::MaskVocabulary;
use crate::Error;
use crate::interrupt::{Interrupter, Terminated};

/// A tokenizer for pre-training: plain token ids (no template, no truncation, no padding) and
/// the special tokens packing and masking need.
pub struct PretrainTokenizer {
    tokenizer: Tokenizer,
    /// The tokenizer file read (`tokenizer.json` or `vocab.txt`).
    pub path: PathBuf,
    /// sha256 of `json`.
    pub sha256: String,
    /// The `tokenizer.json` checkpoints get (the file's bytes, or the one built from `vocab.txt`).
    pub json: Vec<u8>,
    /// Id of the token that starts every sequence (`[CLS]` or `<s>`).
    pub start_id: u32,
    /// Id of the token that ends every sequence and separates consecutive documents (`[SEP]` or
    /// `</s>`).
    pub end_id: u32,
    /// Id of the padding token (`[PAD]` or `<pad>`), which fills out a part's last sequence on
    /// disk.
    pub pad_id: u32,
    /// The mask token, special ids and replacement ids that masking draws on.
    pub vocabulary: MaskVocabulary,
    /// Ids run from 0 to `vocab_size - 1` (added tokens included).
    pub vocab_size: usize,
}

impl PretrainTokenizer {
    /// Reads `tokenizer.json` (or BERT's `vocab.txt`: [`crate::tokenize::read_tokenizer`]); its
    /// start, end, padding and mask tokens are BERT's (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`) or
    /// RoBERTa's (`<s>`, `</s>`, `<pad>`, `<mask>`).
    pub fn from_file(path: &Path) -> Result<PretrainTokenizer, Error> {
        let error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
        let crate::tokenize::LoadedTokenizer { mut tokenizer, json, sha256 } =
            crate::tokenize::read_tokenizer(path).map_err(|err| error(err.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|err| error(err.to_string()))?;
        let find = |names: [&str; 2]| {
            names.iter().find_map(|name| tokenizer.token_to_id(name)).ok_or_else(|| {
                error(format!(
                    "no `{}` or `{}` token: pre-training needs BERT's or RoBERTa's special tokens",
                    names[0], names[1]
                ))
            })
        };
        let start_id = find(["[CLS]", "<s>"])?;
        let end_id = find(["[SEP]", "</s>"])?;
        let pad_id = find(["[PAD]", "<pad>"])?;
        let mask_id = find(["[MASK]", "<mask>"])?;
        let vocab_size = tokenizer.get_vocab_size(true);
        let mut special: Vec<u32> = tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, token)| token.special)
            .map(|(&id, _)| id)
            .chain([start_id, end_id, pad_id, mask_id])
            .collect();
        special.sort_unstable();
        special.dedup();
        let replacements = (0..vocab_size as u32).filter(|id| special.binary_search(id).is_err()).collect();
        Ok(PretrainTokenizer {
            tokenizer,
            path: path.to_path_buf(),
            sha256,
            json,
            start_id,
            end_id,
            pad_id,
            vocabulary: MaskVocabulary { mask_id, special, replacements },
            vocab_size,
        })
    }

    /// Token ids of each text, without special tokens.
    pub fn encode_plain(&self, texts: Vec<String>) -> Result<Vec<Vec<u32>>, Error> {
        let encodings = self
            .tokenizer
            .encode_batch(texts, false)
            .map_err(|err| Error::Tokenizer { path: self.path.clone(), message: err.to_string() })?;
        Ok(encodings.iter().map(|encoding| encoding.get_ids().to_vec()).collect())
    }
}

/// Counts of one part (training or held-out) of a packed corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartCounts {
    /// Documents in the part (a document with no tokens is not counted).
    pub documents: u64,
    /// Document tokens (separators and frames not counted).
    pub tokens: u64,
    /// Sequences in the part, all of `max_len` tokens but the last.
    pub sequences: u64,
    /// Tokens of the last sequence (frame included); the others have `max_len`.
    pub last_len: usize,
}

/// `packed.json`: what a packed corpus holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedDescription {
    /// Version of the packed layout, part of the key.
    pub format: u32,
    /// The corpus's recorded name ([`Packing::corpus`]).
    pub corpus: String,
    /// sha256 of the tokenizer's `tokenizer.json`, hex.
    pub tokenizer_sha256: String,
    /// Tokens per sequence, start and end tokens included.
    pub max_len: usize,
    /// The fraction of documents held out, by the hash of their text ([`is_heldout`]).
    pub heldout_fraction: f64,
    /// Counts of the training part (`train.u32`).
    pub train: PartCounts,
    /// Counts of the held-out part (`heldout.u32`).
    pub heldout: PartCounts,
}

/// A part of a packed corpus on disk.
pub struct Sequences {
    file: std::fs::File,
    path: PathBuf,
    max_len: usize,
    /// The part's counts, from `packed.json`.
    pub counts: PartCounts,
}

impl Sequences {
    /// The number of sequences in the part.
    pub fn len(&self) -> usize {
        self.counts.sequences as usize
    }

    /// Whether the part holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.counts.sequences == 0
    }

    /// Sequence `index`, without padding.
    pub fn read(&self, index: usize) -> Result<Vec<u32>, Error> {
        let mut bytes = vec![0u8; self.max_len * 4];
        self.file.read_exact_at(&mut bytes, (index * self.max_len * 4) as u64).map_err(Error::io(&self.path))?;
        let len = if index + 1 == self.len() { self.counts.last_len } else { self.max_len };
        Ok(bytes[..len * 4]
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect())
    }
}

/// A packed corpus: its description and its two parts.
pub struct Packed {
    /// The key the data is stored under (`<cache>/<key>/`, [`packed_key`]).
    pub key: String,
    /// Its `packed.json`.
    pub description: PackedDescription,
    /// The training part.
    pub train: Sequences,
    /// The held-out part, for the held-out MLM loss.
    pub heldout: Sequences,
}

const FORMAT: u32 = 1;

/// The key of a packed corpus: what it was packed from and how.
pub fn packed_key(corpus_identity: &str, tokenizer_sha256: &str, max_len: usize, heldout_fraction: f64) -> String {
    results::hash_key(&(FORMAT, corpus_identity, tokenizer_sha256, max_len, heldout_fraction.to_bits()))
}

/// What a packed corpus is packed from and how: it keys the packed data.
#[derive(Debug, Clone, Copy)]
pub struct Packing<'a> {
    /// The name recorded (`task-text`, a file's name).
    pub corpus: &'a str,
    /// The corpus and its files' hashes.
    pub corpus_identity: &'a str,
    /// Tokens per packed sequence, start and end tokens included.
    pub max_len: usize,
    /// The fraction of documents held out, by the hash of their text ([`is_heldout`]).
    pub heldout_fraction: f64,
}

/// Opens the packed corpus `<cache>/<key>`, packing `documents` first when it is not there.
pub fn pack_or_open(
    cache: &Path,
    packing: Packing,
    documents: impl FnOnce() -> Result<Box<dyn Iterator<Item = Result<datasets::corpus::Document, datasets::Error>>>, Error>,
    tokenizer: &PretrainTokenizer,
    interrupter: &Interrupter,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Packed, Error> {
    let Packing { corpus: _, corpus_identity, max_len, heldout_fraction } = packing;
    let settings = &packing;
    let key = packed_key(corpus_identity, &tokenizer.sha256, max_len, heldout_fraction);
    let dir = cache.join(&key);
    if !dir.join("packed.json").exists() {
        remove_dead_staging(cache, &key);
        // Named by host and pid: the cache may be shared by the nodes of a cluster.
        let staging = cache.join(format!("{key}.partial-{}-{}", results::run::host_name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(Error::io(&staging))?;
        let packed = documents().and_then(|documents| {
            let description = pack(&staging, settings, documents, tokenizer, interrupter, on_progress)?;
            results::write_atomically(&staging.join("packed.json"), &description)
                .map_err(|err| Error::Io { path: err.path, source: err.source })
        });
        // Nothing half-packed stays behind.
        if let Err(err) = packed {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err);
        }
        // Another process may have packed the same corpus meanwhile: the same bytes by
        // construction, so either copy serves.
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    open(&dir, key)
}

/// Removes the staging folders (`<key>.partial-<host>-<pid>`) that processes of this host no
/// longer running left behind (a Ctrl-C or a kill mid-packing): a live process's folder is its
/// own, and another host's (a cluster node sharing the cache) is left to that host.
fn remove_dead_staging(cache: &Path, key: &str) {
    let Ok(entries) = std::fs::read_dir(cache) else { return };
    let prefix = format!("{key}.partial-{}-", results::run::host_name());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix(&prefix)) else { continue };
        let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn open(dir: &Path, key: String) -> Result<Packed, Error> {
    let description_path = dir.join("packed.json");
    let text = std::fs::read_to_string(&description_path).map_err(Error::io(&description_path))?;
    let description: PackedDescription = serde_json::from_str(&text)
        .map_err(|err| Error::Packed { path: description_path.clone(), message: err.to_string() })?;
    let part = |name: &str, counts: PartCounts| -> Result<Sequences, Error> {
        let path = dir.join(name);
        let file = std::fs::File::open(&path).map_err(Error::io(&path))?;
        let expected = counts.sequences * description.max_len as u64 * 4;
        let actual = file.metadata().map_err(Error::io(&path))?.len();
        if actual != expected {
            return Err(Error::Packed {
                path,
                message: format!("{actual} bytes, expected {expected}: remove the folder to pack again"),
            });
        }
        Ok(Sequences { file, path, max_len: description.max_len, counts })
    };
    Ok(Packed {
        key,
        train: part("train.u32", description.train)?,
        heldout: part("heldout.u32", description.heldout)?,
        description,
    })
}

/// Whether a document goes to the held-out part: by its text alone.
pub fn is_heldout(text: &str, heldout_fraction: f64) -> bool {
    let digest = Sha256::new().chain_update(b"heldout v1\0").chain_update(text.as_bytes()).finalize();
    let draw = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) as f64 / 2f64.powi(64);
    draw < heldout_fraction
}

/// Writes one part's sequences as they fill.
struct Packer {
    writer: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    max_len: usize,
    start_id: u32,
    end_id: u32,
    pad_id: u32,
    /// The current sequence's body (at most `max_len - 2` tokens).
    body: Vec<u32>,
    counts: PartCounts,
}

impl Packer {
    fn new(path: PathBuf, tokenizer: &PretrainTokenizer, max_len: usize) -> Result<Packer, Error> {
        let file = std::fs::File::create(&path).map_err(Error::io(&path))?;
        Ok(Packer {
            writer: std::io::BufWriter::with_capacity(1 << 20, file),
            path,
            max_len,
            start_id: tokenizer.start_id,
            end_id: tokenizer.end_id,
            pad_id: tokenizer.pad_id,
            body: Vec::with_capacity(max_len),
            counts: PartCounts { documents: 0, tokens: 0, sequences: 0, last_len: 0 },
        })
    }

    fn push_document(&mut self, ids: &[u32]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        if self.counts.documents > 0 {
            self.push_token(self.end_id)?;
        }
        for &id in ids {
            self.push_token(id)?;
        }
        self.counts.documents += 1;
        self.counts.tokens += ids.len() as u64;
        Ok(())
    }

    fn push_token(&mut self, id: u32) -> Result<(), Error> {
        self.body.push(id);
        if self.body.len() == self.max_len - 2 {
            self.flush_sequence()?;
        }
        Ok(())
    }

    fn flush_sequence(&mut self) -> Result<(), Error> {
        let len = self.body.len() + 2;
        let sequence = std::iter::once(self.start_id)
            .chain(self.body.drain(..))
            .chain(std::iter::once(self.end_id))
            .chain(std::iter::repeat_n(self.pad_id, self.max_len - len));
        let bytes: Vec<u8> = sequence.flat_map(u32::to_le_bytes).collect();
        self.writer.write_all(&bytes).map_err(Error::io(&self.path))?;
        self.counts.sequences += 1;
        self.counts.last_len = len;
        Ok(())
    }

    fn finish(mut self) -> Result<PartCounts, Error> {
        if !self.body.is_empty() {
            self.flush_sequence()?;
        }
        let file =
            self.writer.into_inner().map_err(|err| Error::Io { path: self.path.clone(), source: err.into_error() })?;
        file.sync_all().map_err(Error::io(&self.path))?;
        Ok(self.counts)
    }
}

fn pack(
    dir: &Path,
    &Packing { corpus, max_len, heldout_fraction, .. }: &Packing,
    documents: Box<dyn Iterator<Item = Result<datasets::corpus::Document, datasets::Error>>>,
    tokenizer: &PretrainTokenizer,
    interrupter: &Interrupter,
    on_progress: &mut dyn FnMut(u64),
) -> Result<PackedDescription, Error> {
    let mut train = Packer::new(dir.join("train.u32"), tokenizer, max_len)?;
    let mut heldout = Packer::new(dir.join("heldout.u32"), tokenizer, max_len)?;
    let mut batch: Vec<String> = Vec::new();
    let mut seen = 0u64;
    let mut documents = documents.peekable();
    while documents.peek().is_some() {
        batch.clear();
        // Batches small enough that a stop is seen well within a second (C4's documents
        // tokenize at about 1,000 a second per core).
        for document in documents.by_ref().take(256) {
            if interrupter.is_requested() {
                return Err(Error::Terminated(Terminated::Packing { corpus: corpus.to_owned() }));
            }
            batch.push(document?.text);
        }
        let heldout_flags: Vec<bool> = batch.iter().map(|text| is_heldout(text, heldout_fraction)).collect();
        let ids = tokenizer.encode_plain(std::mem::take(&mut batch))?;
        for (ids, is_heldout) in ids.iter().zip(heldout_flags) {
            if is_heldout { heldout.push_document(ids)? } else { train.push_document(ids)? }
        }
        seen += ids.len() as u64;
        on_progress(seen);
    }
    Ok(PackedDescription {
        format: FORMAT,
        corpus: corpus.to_owned(),
        tokenizer_sha256: tokenizer.sha256.clone(),
        max_len,
        heldout_fraction,
        train: train.finish()?,
        heldout: heldout.finish()?,
    })
}
