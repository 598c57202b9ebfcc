//! BERT's WordPiece tokenizer built from a `vocab.txt`, for checkpoints published without a
//! `tokenizer.json`: the MultiBERTs, the BERT miniatures of Turc et al. and many other uploads
//! from before HF's fast tokenizers.
//!
//! It builds what HF `transformers` 5.24.0 builds when `AutoTokenizer` loads such a folder (its
//! `BertTokenizer`, backed by the tokenizers library, builds the pipeline from the vocabulary as
//! 4.x's `convert_slow_tokenizer.BertConverter` did):
//! - model: WordPiece over the vocabulary (token = line without its `\n`, id = line number, a
//!   repeated token keeps its last line, as `load_vocab`), `##` continuation, 100 characters per
//!   word at most, the unknown token of the config;
//! - normalizer: `BertNormalizer` (clean text; `do_lower_case`, `tokenize_chinese_chars` and
//!   `strip_accents` from `tokenizer_config.json`, `BertTokenizer`'s defaults `true`, `true`,
//!   unset otherwise);
//! - pre-tokenizer `BertPreTokenizer`; template `[CLS] $A [SEP]` and `[CLS] $A [SEP] $B [SEP]`
//!   (type ids 0 and 1); decoder WordPiece `##`; the five special tokens as special added tokens.
//!
//! The test compares the result with the `tokenizer.json` that all-MiniLM-L6-v2 publishes beside
//! its `vocab.txt` and `tokenizer_config.json` (the mirror's): the same pipeline and vocabulary,
//! and the same ids on every SST-2 and MRPC dev text.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::Error;

/// The `tokenizer_class` values whose slow tokenizer is BERT's WordPiece (HF maps each to
/// `BertConverter`).
const WORDPIECE_CLASSES: &[&str] = &[
    "BertTokenizer",
    "BertTokenizerFast",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
    "ElectraTokenizer",
    "ElectraTokenizerFast",
];

/// The settings `tokenizer_config.json` gives `BertTokenizer`; [`Default`] is what it uses when
/// the folder has no such file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordPieceConfig {
    /// Lowercase the text in the normaliser (and strip accents with it unless `strip_accents` says
    /// otherwise).
    pub do_lower_case: bool,
    /// Surround every CJK ideograph with spaces, so each is a word of its own.
    pub tokenize_chinese_chars: bool,
    /// `None`: strip accents exactly when lowercasing (BERT's rule).
    pub strip_accents: Option<bool>,
    /// The token of a word the vocabulary cannot spell (`[UNK]`).
    pub unk_token: String,
    /// The token that ends each text of the template (`[SEP]`).
    pub sep_token: String,
    /// The padding token (`[PAD]`).
    pub pad_token: String,
    /// The token that starts the template, whose output classifies (`[CLS]`).
    pub cls_token: String,
    /// The masked-language-modelling mask token (`[MASK]`).
    pub mask_token: String,
}

impl Default for WordPieceConfig {
    fn default() -> WordPieceConfig {
        WordPieceConfig {
            do_lower_case: true,
            tokenize_chinese_chars: true,
            strip_accents: None,
            unk_token: "[UNK]".to_owned(),
            sep_token: "[SEP]".to_owned(),
            pad_token: "[PAD]".to_owned(),
            cls_token: "[CLS]".to_owned(),
            mask_token: "[MASK]".to_owned(),
        }
    }
}

/// The keys of BERT's five special tokens in `tokenizer_config.json` and
/// `special_tokens_map.json`, in the order of [`WordPieceConfig::special_tokens`].
const SPECIAL_KEYS: [&str; 5] = ["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"];

/// A token as HF saves it: a string, or an `AddedToken` object with its `content`.
fn token_text(value: &serde_json::Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("content").and_then(|content| content.as_str()))
}

/// The JSON file at `path`, errors naming it.
fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    let error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    serde_json::from_str(&text).map_err(|err| error(err.to_string()))
}

impl WordPieceConfig {
    /// `(key, token)` of the five special tokens, in [`SPECIAL_KEYS`]' order.
    pub fn special_tokens(&self) -> [(&'static str, &String); 5] {
        let tokens = [&self.pad_token, &self.unk_token, &self.cls_token, &self.sep_token, &self.mask_token];
        std::array::from_fn(|index| (SPECIAL_KEYS[index], tokens[index]))
    }

    fn special_token_mut(&mut self, key: &str) -> &mut String {
        match key {
            "pad_token" => &mut self.pad_token,
            "unk_token" => &mut self.unk_token,
            "cls_token" => &mut self.cls_token,
            "sep_token" => &mut self.sep_token,
            "mask_token" => &mut self.mask_token,
            other => unreachable!("`{other}` is not one of SPECIAL_KEYS"),
        }
    }

    /// Reads a `tokenizer_config.json`; keys it does not set keep `BertTokenizer`'s defaults,
    /// `null` included (as HF treats a `null` keyword argument for these).
    ///
    /// # Errors
    /// An unreadable file, a value of the wrong type (named), or a `tokenizer_class` that is not
    /// a WordPiece tokenizer (this converter would build another tokenizer than HF's).
    pub fn read(path: &Path) -> Result<WordPieceConfig, Error> {
        let error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
        let value = read_json(path)?;
        let object = value.as_object().ok_or_else(|| error("not a JSON object".to_owned()))?;
        let present = |key: &str| object.get(key).filter(|value| !value.is_null());
        if let Some(value) = present("tokenizer_class") {
            let class = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            if !WORDPIECE_CLASSES.contains(&class.as_str()) {
                return Err(error(format!(
                    "tokenizer_class `{class}` is not BERT's WordPiece ({}); only those are built from vocab.txt: \
                     save the tokenizer with `transformers` (`save_pretrained` writes tokenizer.json) and use that",
                    WORDPIECE_CLASSES.join(", ")
                )));
            }
        }
        let mut config = WordPieceConfig::default();
        let flag = |key: &str| -> Result<Option<bool>, Error> {
            present(key)
                .map(|value| value.as_bool().ok_or_else(|| error(format!("`{key}` is {value}, not true or false"))))
                .transpose()
        };
        if let Some(value) = flag("do_lower_case")? {
            config.do_lower_case = value;
        }
        if let Some(value) = flag("tokenize_chinese_chars")? {
            config.tokenize_chinese_chars = value;
        }
        config.strip_accents = flag("strip_accents")?;
        for key in SPECIAL_KEYS {
            if let Some(value) = present(key) {
                let token = token_text(value).ok_or_else(|| {
                    error(format!("`{key}` is {value}, not a token (a string or {{\"content\": ...}})"))
                })?;
                *config.special_token_mut(key) = token.to_owned();
            }
        }
        // Tokens added beyond the five special ones change the ids; this converter does not
        // build them, so it refuses rather than give other ids than HF.
        let special = |token: &&str| config.special_tokens().iter().any(|(_, special)| special.as_str() == *token);
        let mut added: Vec<String> = Vec::new();
        if let Some(decoder) = present("added_tokens_decoder").and_then(|value| value.as_object()) {
            added.extend(decoder.values().filter_map(token_text).filter(|token| !special(token)).map(str::to_owned));
        }
        if let Some(extra) = present("additional_special_tokens").and_then(|value| value.as_array()) {
            added.extend(extra.iter().filter_map(token_text).filter(|token| !special(token)).map(str::to_owned));
        }
        if !added.is_empty() {
            added.sort();
            added.dedup();
            return Err(error(format!(
                "it adds tokens beyond BERT's five special ones ({}), which this converter does not build: save the \
                 tokenizer with `transformers` (`save_pretrained` writes tokenizer.json) and use that",
                added.join(", ")
            )));
        }
        Ok(config)
    }
}

/// A `vocab.txt` as HF's `load_vocab` reads it: one token per line (without its line end), the
/// line number as id, a token listed twice keeping its last id.
///
/// # Errors
/// An unreadable or non-UTF-8 file, or an empty one.
pub fn read_vocab(path: &Path) -> Result<HashMap<String, u32>, Error> {
    let error = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?;
    // Python's text mode reads `\r\n` and a lone `\r` as `\n`; `readlines` keeps each line's `\n`, which
    // `rstrip("\n")` removes (other trailing whitespace stays part of the token).
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut vocab = HashMap::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let token = line.trim_end_matches('\n');
        let id = u32::try_from(index).map_err(|_| error("more than 2^32 lines".to_owned()))?;
        vocab.insert(token.to_owned(), id);
    }
    if vocab.is_empty() {
        return Err(error("an empty vocabulary".to_owned()));
    }
    Ok(vocab)
}

/// BERT's tokenizer from `vocab` (a `vocab.txt`) and `config`.
///
/// # Errors
/// The vocabulary cannot be read, or lacks one of the config's special tokens (named).
pub fn bert_tokenizer(vocab_path: &Path, config: &WordPieceConfig) -> Result<Tokenizer, Error> {
    let error = |message: String| Error::Tokenizer { path: vocab_path.to_path_buf(), message };
    let vocab = read_vocab(vocab_path)?;
    let id = |token: &str| {
        vocab.get(token).copied().ok_or_else(|| {
            error(format!("the special token `{token}` is not in the vocabulary; name the model's own vocab.txt"))
        })
    };
    for (_, token) in config.special_tokens() {
        id(token)?;
    }
    let (cls, sep) = (&config.cls_token, &config.sep_token);
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|builder| builder.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|err| error(format!("template: {err}")))?
        .special_tokens(vec![(cls.clone(), id(cls)?), (sep.clone(), id(sep)?)])
        .build()
        .map_err(|err| error(format!("template: {err}")))?;
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>())
        .unk_token(config.unk_token.clone())
        .continuing_subword_prefix("##".to_owned())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|err| error(err.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            config.tokenize_chinese_chars,
            config.strip_accents,
            config.do_lower_case,
        )))
        .map_err(|err| error(err.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(template));
    tokenizer.with_decoder(Some(WordPieceDecoder::new("##".to_owned(), true)));
    // Special tokens are matched before normalisation (HF writes them `normalized: false`).
    tokenizer
        .add_special_tokens(config.special_tokens().map(|(_, token)| AddedToken::from(token.clone(), true)))
        .map_err(|err| error(err.to_string()))?;
    Ok(tokenizer)
}

/// The tokenizer HF builds for a folder with `vocab_path` (`vocab.txt`), configured by the
/// `tokenizer_config.json` beside it when there is one.
///
/// # Errors
/// As [`WordPieceConfig::read`] and [`bert_tokenizer`].
///
/// A folder whose `added_tokens.json` or `special_tokens_map.json` would change the tokenizer
/// (added tokens, other special tokens than the config's) is refused by name.
pub fn from_vocab_file(vocab_path: &Path) -> Result<Tokenizer, Error> {
    let config_path = vocab_path.with_file_name("tokenizer_config.json");
    let config = if config_path.is_file() { WordPieceConfig::read(&config_path)? } else { WordPieceConfig::default() };
    let refuse = |path: std::path::PathBuf, message: String| Err(Error::Tokenizer { path, message });
    let added = vocab_path.with_file_name("added_tokens.json");
    if added.is_file() {
        return refuse(
            added,
            "added tokens, which this converter does not build: save the tokenizer with `transformers` \
             (`save_pretrained` writes tokenizer.json) and use that"
                .to_owned(),
        );
    }
    let map_path = vocab_path.with_file_name("special_tokens_map.json");
    if map_path.is_file() {
        let map = read_json(&map_path)?;
        for (key, wanted) in config.special_tokens() {
            if let Some(given) = map.get(key).and_then(token_text).filter(|given| given != wanted) {
                return refuse(
                    map_path,
                    format!("`{key}` is `{given}` here and `{wanted}` by tokenizer_config.json (or BERT's default)"),
                );
            }
        }
    }
    bert_tokenizer(vocab_path, &config)
}
