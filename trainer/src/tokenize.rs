//! Tokenisation with the `tokenizers` crate from a checkpoint's `tokenizer.json` (or, for a
//! checkpoint that publishes only BERT's `vocab.txt`, the tokenizer HF builds from it:
//! [`wordpiece`]): sentence pairs, longest-first truncation to a maximum length, dynamic padding
//! per batch, and a cache of tokenised splits.
//!
//! Padding and truncation baked into a `tokenizer.json` (MiniLM's pads everything to 128) are
//! cleared: truncation is ours (`max_len`, longest first, as HF's `truncation=True`), padding is
//! done per batch by [`collate`], to the longest sequence of the batch.
//!
//! The cache stores token ids and type ids of a whole split under
//! `<cache>/<sha256(tokenizer.json, max_len, texts)>.tok`, so a tokenizer, a data or a length
//! change can never be served stale ids.

pub mod wordpiece;

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::Error;

/// One tokenised example: ids and token type ids, without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, the template's special tokens included, at most `max_len` of them.
    pub ids: Vec<u32>,
    /// Token type (segment) ids, one per id, as the tokenizer's template assigns them (BERT's: 0
    /// for the first text, 1 for the second of a pair).
    pub type_ids: Vec<u32>,
}

/// A padded batch on a device.
#[derive(Debug)]
pub struct Batch {
    /// `[batch, longest]` i64.
    pub input_ids: Tensor,
    /// `[batch, longest]` i64, 1 for tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// `[batch, longest]` i64.
    pub token_type_ids: Tensor,
}

/// A tokenizer as a checkpoint publishes it, with the `tokenizer.json` that describes it.
pub struct LoadedTokenizer {
    /// The tokenizer as the file describes it, its own padding and truncation included
    /// ([`TextEncoder`] clears those).
    pub tokenizer: Tokenizer,
    /// The `tokenizer.json`: the file's own bytes, or the serialised tokenizer built from a
    /// `vocab.txt` (what a checkpoint written from it holds).
    pub json: Vec<u8>,
    /// sha256 of `json`, hex.
    pub sha256: String,
}

/// Reads the tokenizer at `path`: a `tokenizer.json` (any `*.json`), or a `vocab.txt` from which
/// BERT's WordPiece tokenizer is built as HF builds it ([`wordpiece::from_vocab_file`], with the
/// `tokenizer_config.json` beside it).
///
/// # Errors
/// A file that cannot be read or parsed, or one that is neither kind (named).
pub fn read_tokenizer(path: &Path) -> Result<LoadedTokenizer, Error> {
    let load_error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let (tokenizer, json) = if path.extension().is_some_and(|extension| extension == "json") {
        let bytes = std::fs::read(path).map_err(|err| load_error(err.to_string()))?;
        (Tokenizer::from_bytes(&bytes).map_err(|err| load_error(err.to_string()))?, bytes)
    } else if path.file_name().is_some_and(|name| name == "vocab.txt") {
        let tokenizer = wordpiece::from_vocab_file(path)?;
        let json = tokenizer.to_string(false).map_err(|err| load_error(err.to_string()))?.into_bytes();
        (tokenizer, json)
    } else {
        return Err(load_error("neither a tokenizer.json (`*.json`) nor BERT's vocab.txt".to_owned()));
    };
    let sha256 = format!("{:x}", Sha256::digest(&json));
    Ok(LoadedTokenizer { tokenizer, json, sha256 })
}

/// A checkpoint's tokenizer set up for training: no padding (that is [`collate`]'s), longest-first
/// truncation to `max_len`, and the cache of tokenised splits.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    max_len: usize,
    /// sha256 of the `tokenizer.json`, part of every cache key.
    tokenizer_hash: String,
}

impl TextEncoder {
    /// The encoder of the tokenizer at `path` ([`read_tokenizer`]: a `tokenizer.json` or BERT's
    /// `vocab.txt`).
    pub fn from_file(path: &Path, max_len: usize) -> Result<TextEncoder, Error> {
        let load_error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
        let LoadedTokenizer { mut tokenizer, sha256, .. } = read_tokenizer(path)?;
        tokenizer.with_padding(None);
        // The tokenizers crate subtracts the special tokens from `max_length` (and overflows
        // below them): a `max_len` without room for a text sets no truncation, and `encode`
        // refuses it before tokenizing anything.
        let room = tokenizer.get_post_processor().map_or(0, |processor| processor.added_tokens(false)) < max_len;
        let truncation = room.then_some(TruncationParams {
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        });
        tokenizer.with_truncation(truncation).map_err(|err| load_error(err.to_string()))?;
        Ok(TextEncoder { tokenizer, max_len, tokenizer_hash: sha256 })
    }

    /// The token with the largest id, added tokens included (its text and id), which the
    /// model's embeddings must hold.
    pub fn largest_token(&self) -> Option<(String, u32)> {
        self.tokenizer.get_vocab(true).into_iter().max_by_key(|(token, id)| (*id, token.clone()))
    }

    /// The length, special tokens included, that texts are truncated to.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The special tokens the tokenizer's template adds: `[CLS] a [SEP]` 2, `[CLS] a [SEP] b [SEP]`
    /// 3, RoBERTa's `<s> a </s></s> b </s>` 4.
    pub fn special_tokens(&self, paired: bool) -> usize {
        self.tokenizer.get_post_processor().map_or(0, |processor| processor.added_tokens(paired))
    }

    /// The smallest `max_len` that keeps one token of each text besides the special tokens.
    pub fn min_max_len(&self, paired: bool) -> usize {
        self.special_tokens(paired) + if paired { 2 } else { 1 }
    }

    /// Refuses a `max_len` that [`TextEncoder::encode`] could not honour for single texts or pairs.
    pub fn check_max_len(&self, paired: bool) -> Result<(), Error> {
        let min = self.min_max_len(paired);
        if self.max_len < min {
            return Err(Error::MaxLenTooSmall {
                max_len: self.max_len,
                min,
                special: self.special_tokens(paired),
                paired,
            });
        }
        Ok(())
    }

    /// Tokenises a text or a sentence pair, with the model's special tokens, truncated to
    /// `max_len`; a `max_len` too small for the template is an error, never an impossible
    /// truncation.
    pub fn encode(&self, text_a: &str, text_b: Option<&str>) -> Result<Encoded, Error> {
        self.check_max_len(text_b.is_some())?;
        let encoding = match text_b {
            Some(text_b) => self.tokenizer.encode((text_a, text_b), true),
            None => self.tokenizer.encode(text_a, true),
        }
        .map_err(|err| Error::Encode(err.to_string()))?;
        Ok(Encoded { ids: encoding.get_ids().to_vec(), type_ids: encoding.get_type_ids().to_vec() })
    }

    /// Tokenises a whole split, reading and writing the cache in `cache_dir` when one is given.
    pub fn encode_all(&self, texts: &[(&str, Option<&str>)], cache_dir: Option<&Path>) -> Result<Vec<Encoded>, Error> {
        let cache_path = cache_dir.map(|dir| dir.join(format!("{}.tok", self.cache_key(texts))));
        if let Some(path) = &cache_path
            && let Ok(encoded) = read_cache(path, texts.len())
        {
            return Ok(encoded);
        }
        let encoded =
            texts.iter().map(|(text_a, text_b)| self.encode(text_a, *text_b)).collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &cache_path {
            write_cache(path, &encoded).map_err(|source| Error::TokenCache { path: path.clone(), source })?;
        }
        Ok(encoded)
    }

    fn cache_key(&self, texts: &[(&str, Option<&str>)]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.tokenizer_hash.as_bytes());
        hasher.update((self.max_len as u64).to_le_bytes());
        for (text_a, text_b) in texts {
            hasher.update((text_a.len() as u64).to_le_bytes());
            hasher.update(text_a.as_bytes());
            match text_b {
                Some(text_b) => {
                    hasher.update([1]);
                    hasher.update((text_b.len() as u64).to_le_bytes());
                    hasher.update(text_b.as_bytes());
                }
                None => hasher.update([0]),
            }
        }
        format!("{:x}", hasher.finalize())
    }
}

/// Pads `examples` to the longest of them with `pad_id` (type id 0, mask 0) and moves them to
/// `device`.
pub fn collate(examples: &[&Encoded], pad_id: u32, device: Device) -> Batch {
    let longest = examples.iter().map(|example| example.ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(examples.len() * longest);
    let mut mask = Vec::with_capacity(examples.len() * longest);
    let mut types = Vec::with_capacity(examples.len() * longest);
    for example in examples {
        let padding = longest - example.ids.len();
        ids.extend(example.ids.iter().map(|&id| i64::from(id)).chain(std::iter::repeat_n(i64::from(pad_id), padding)));
        mask.extend(std::iter::repeat_n(1i64, example.ids.len()).chain(std::iter::repeat_n(0, padding)));
        types.extend(example.type_ids.iter().map(|&id| i64::from(id)).chain(std::iter::repeat_n(0, padding)));
    }
    let shape = [examples.len() as i64, longest as i64];
    let to_tensor = |values: &[i64]| Tensor::from_slice(values).reshape(shape).to_kind(Kind::Int64).to_device(device);
    Batch { input_ids: to_tensor(&ids), attention_mask: to_tensor(&mask), token_type_ids: to_tensor(&types) }
}

/// Cache format: `count: u64`, then per example `len: u32`, `len` ids (u32), `len` type ids (u8);
/// little-endian. Written to a `.partial` file and renamed.
fn write_cache(path: &Path, encoded: &[Encoded]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut bytes = Vec::new();
    bytes.extend((encoded.len() as u64).to_le_bytes());
    for example in encoded {
        bytes.extend((example.ids.len() as u32).to_le_bytes());
        for id in &example.ids {
            bytes.extend(id.to_le_bytes());
        }
        bytes.extend(example.type_ids.iter().map(|&type_id| type_id as u8));
    }
    let partial = path.with_extension("tok.partial");
    std::fs::File::create(&partial)?.write_all(&bytes)?;
    std::fs::rename(partial, path)
}

fn read_cache(path: &Path, expected_count: usize) -> std::io::Result<Vec<Encoded>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let corrupt = || std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt token cache");
    let mut cursor = 0usize;
    let mut take = |count: usize| -> std::io::Result<&[u8]> {
        let slice = bytes.get(cursor..cursor + count).ok_or_else(corrupt)?;
        cursor += count;
        Ok(slice)
    };
    let count = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes")) as usize;
    if count != expected_count {
        return Err(corrupt());
    }
    let mut encoded = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let ids = take(4 * len)?
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect();
        let type_ids = take(len)?.iter().map(|&type_id| u32::from(type_id)).collect();
        encoded.push(Encoded { ids, type_ids });
    }
    Ok(encoded)
}
