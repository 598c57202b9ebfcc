//! BERT's tokenizer built from `vocab.txt` (checkpoints without `tokenizer.json`, such as the
//! MultiBERTs and the BERT miniatures): against the `tokenizer.json` HF wrote for the mirror's
//! MiniLM beside its `vocab.txt` and `tokenizer_config.json`, and HF's reading rules on small
//! vocabularies written here.

use std::path::{Path, PathBuf};

use bench_suite::reference::LocalModel;
use trainer::tokenize::wordpiece::{WordPieceConfig, bert_tokenizer, from_vocab_file, read_vocab};
use trainer::tokenize::{TextEncoder, read_tokenizer};

const MINILM: &str = "hf/sentence-transformers/all-MiniLM-L6-v2/1110a243fdf4706b3f48f1d95db1a4f5529b4d41";

fn mirror() -> Option<PathBuf> {
    crate::support::mirror("the real vocab.txt test")
}

/// The texts of SST-2 dev, of the MRPC pool (pairs) and of ANLI R3's dev set (pairs, with accents
/// and symbols), as `(a, b)`.
fn mirror_texts(mirror: &Path) -> Vec<(String, Option<String>)> {
    let mut texts = Vec::new();
    let sst2 = std::fs::read_to_string(mirror.join("glue/SST-2/dev.tsv")).unwrap();
    texts.extend(sst2.lines().skip(1).map(|line| (line.split('\t').next().unwrap().to_owned(), None)));
    let pool = std::fs::read_to_string(mirror.join("senteval/msr_paraphrase_train.txt")).unwrap();
    for line in pool.trim_start_matches('\u{feff}').lines().skip(1) {
        let columns: Vec<&str> = line.split('\t').collect();
        texts.push((columns[3].to_owned(), Some(columns[4].to_owned())));
    }
    let anli = std::fs::read_to_string(mirror.join("anli_v1.0/R3/dev.jsonl")).unwrap();
    for line in anli.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        texts.push((row["context"].as_str().unwrap().to_owned(), Some(row["hypothesis"].as_str().unwrap().to_owned())));
    }
    texts
}

/// The tokenizer built from MiniLM's vocab.txt and tokenizer_config.json is the one HF saved in
/// its tokenizer.json: the same pipeline and vocabulary, and the same ids and type ids on 6,148
/// real texts and pairs.
#[test]
fn minilm_vocab_txt_builds_the_tokenizer_hf_saved() {
    let Some(mirror) = mirror() else { return };
    let folder = mirror.join(MINILM);
    let built: serde_json::Value =
        serde_json::from_slice(&read_tokenizer(&folder.join("vocab.txt")).unwrap().json).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("tokenizer.json")).unwrap()).unwrap();
    for part in ["added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"] {
        assert_eq!(built[part], saved[part], "{part}");
    }
    assert_eq!(saved["model"]["vocab"].as_object().unwrap().len(), 30522);

    let from_vocab = TextEncoder::from_file(&folder.join("vocab.txt"), 128).unwrap();
    let from_json = TextEncoder::from_file(&folder.join("tokenizer.json"), 128).unwrap();
    let texts = mirror_texts(&mirror);
    assert_eq!(texts.len(), 872 + 4_076 + 1_200);
    for (a, b) in &texts {
        assert_eq!(
            from_vocab.encode(a, b.as_deref()).unwrap(),
            from_json.encode(a, b.as_deref()).unwrap(),
            "{a:?} {b:?}"
        );
    }
}

/// A folder with MiniLM's vocab.txt and nothing else (as the BERT miniatures publish): BERT's
/// defaults (lowercase, accents stripped with it, CJK characters split), as transformers 5.24.0
/// applies them. The ids are what `AutoTokenizer.from_pretrained` gave on such a folder
/// (`config.json` with `model_type: bert` and the vocab.txt; transformers 5.24.0, tokenizers of
/// its pins), printed by hand.
#[test]
fn a_vocab_txt_alone_gets_berts_defaults_as_transformers_applies_them() {
    let Some(mirror) = mirror() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(mirror.join(MINILM).join("vocab.txt"), dir.path().join("vocab.txt")).unwrap();
    let tokenizer = from_vocab_file(&dir.path().join("vocab.txt")).unwrap();
    let ids = |text: &str| tokenizer.encode(text, true).unwrap().get_ids().to_vec();
    assert_eq!(
        ids("The Café costs 5€ and naïve 東京"),
        [101, 1996, 7668, 5366, 1019, 30102, 1998, 15743, 1879, 1755, 102]
    );
    assert_eq!(ids("Hello\rworld"), [101, 7592, 2088, 102]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const SPECIALS: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";

#[test]
fn vocab_lines_are_read_as_hfs_load_vocab_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    // CRLF and a lone CR are one line end each; other trailing whitespace belongs to the token; a
    // token listed twice keeps its last line; a last line without `\n` counts.
    let path = write(dir.path(), "vocab.txt", "[PAD]\r\nthe\ncat \nthe\rdog\nsat");
    let vocab = read_vocab(&path).unwrap();
    assert_eq!(vocab.len(), 5);
    assert_eq!((vocab["[PAD]"], vocab["the"], vocab["cat "], vocab["dog"], vocab["sat"]), (0, 3, 2, 4, 5));
    let empty = write(dir.path(), "empty.txt", "");
    assert!(read_vocab(&empty).unwrap_err().to_string().contains("an empty vocabulary"));
}

#[test]
fn casing_and_special_tokens_follow_tokenizer_config() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = write(dir.path(), "vocab.txt", &format!("{SPECIALS}the\nThe\ncafe\ncafé\n##s\n"));
    // No tokenizer_config.json: BertTokenizer's defaults (lowercase, accents stripped with it).
    let uncased = read_tokenizer(&vocab).unwrap().tokenizer;
    let ids = |tokenizer: &tokenizers::Tokenizer, text: &str| tokenizer.encode(text, true).unwrap().get_ids().to_vec();
    assert_eq!(ids(&uncased, "The cafés"), [2, 5, 7, 9, 3]);
    assert_eq!(ids(&uncased, "[MASK] the"), [2, 4, 5, 3], "special tokens are matched before lowercasing");
    // A cased vocabulary keeps case and accents.
    write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"do_lower_case": false, "strip_accents": null, "model_max_length": 512}"#,
    );
    let cased = from_vocab_file(&vocab).unwrap();
    assert_eq!(ids(&cased, "The café"), [2, 6, 8, 3]);
    assert_eq!(ids(&cased, "THE"), [2, 1, 3], "unknown word");
    // Special tokens saved as AddedToken objects, and other names for them.
    let vocab_named = write(dir.path(), "named.txt", "<pad>\n<unk>\n<cls>\n<sep>\n<mask>\nthe\n");
    let config_path = write(
        dir.path(),
        "named.json",
        r#"{"unk_token": {"content": "<unk>", "lstrip": false}, "sep_token": "<sep>", "pad_token": "<pad>",
            "cls_token": "<cls>", "mask_token": "<mask>"}"#,
    );
    let config = WordPieceConfig::read(&config_path).unwrap();
    assert_eq!(config.unk_token, "<unk>");
    let named = bert_tokenizer(&vocab_named, &config).unwrap();
    assert_eq!(named.encode(("the", "the x"), true).unwrap().get_ids(), [2, 5, 3, 5, 1, 3]);
    assert_eq!(named.encode(("the", "the x"), true).unwrap().get_type_ids(), [0, 0, 0, 1, 1, 1]);
    // The built tokenizer.json is the same bytes every time (checkpoints and cache keys hash it).
    assert_eq!(read_tokenizer(&vocab).unwrap().json, read_tokenizer(&vocab).unwrap().json);
}

#[test]
fn what_cannot_be_built_from_vocab_txt_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = write(dir.path(), "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n");
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("`[MASK]` is not in the vocabulary") && err.contains("vocab.txt"), "{err}");
    std::fs::write(&vocab, SPECIALS).unwrap();
    write(dir.path(), "tokenizer_config.json", r#"{"tokenizer_class": "AlbertTokenizer"}"#);
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("tokenizer_class `AlbertTokenizer` is not BERT's WordPiece"), "{err}");
    write(dir.path(), "tokenizer_config.json", r#"{"do_lower_case": "yes"}"#);
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("`do_lower_case` is \"yes\"") && err.contains("tokenizer_config.json"), "{err}");
    write(dir.path(), "tokenizer_config.json", r#"{"added_tokens_decoder": {"5": {"content": "<ent>"}}}"#);
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("adds tokens beyond BERT's five special ones (<ent>)"), "{err}");
    write(dir.path(), "tokenizer_config.json", "{}");
    write(dir.path(), "special_tokens_map.json", r#"{"cls_token": "<s>"}"#);
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("special_tokens_map.json") && err.contains("`cls_token` is `<s>`"), "{err}");
    write(dir.path(), "special_tokens_map.json", r#"{"cls_token": {"content": "[CLS]"}}"#);
    read_tokenizer(&vocab).unwrap();
    write(dir.path(), "added_tokens.json", r#"{"<ent>": 5}"#);
    let err = read_tokenizer(&vocab).err().unwrap().to_string();
    assert!(err.contains("added_tokens.json") && err.contains("added tokens"), "{err}");
    let other = write(dir.path(), "spiece.model", "");
    let err = read_tokenizer(&other).err().unwrap().to_string();
    assert!(err.contains("neither a tokenizer.json") && err.contains("spiece.model"), "{err}");
}

/// A local folder without tokenizer.json (a MultiBERTs or miniature download) opens with its
/// vocab.txt, and its identity covers the tokenizer_config.json that sets the casing.
#[test]
fn a_local_folder_with_only_vocab_txt_opens_and_hashes_its_tokenizer_config() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", r#"{"model_type": "bert"}"#);
    write(dir.path(), "model.safetensors", "weights");
    write(dir.path(), "vocab.txt", SPECIALS);
    let plain = LocalModel::open(dir.path()).unwrap();
    assert!(plain.files.tokenizer.ends_with("vocab.txt"));
    assert_eq!(plain.hashes.keys().collect::<Vec<_>>(), ["config.json", "model.safetensors", "vocab.txt"]);
    write(dir.path(), "tokenizer_config.json", r#"{"do_lower_case": false}"#);
    let cased = LocalModel::open(dir.path()).unwrap();
    assert!(cased.hashes.contains_key("tokenizer_config.json"));
    assert_ne!(plain.revision, cased.revision, "another casing is another model");
    cased.verify().unwrap();
    write(dir.path(), "tokenizer_config.json", r#"{"do_lower_case": true}"#);
    let err = cased.verify().unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json: changed since the spec was read"), "{err}");
    // With a tokenizer.json, that is the tokenizer, and the identity is the three files' as before.
    write(dir.path(), "tokenizer.json", "{}");
    let json = LocalModel::open(dir.path()).unwrap();
    assert_eq!(json.hashes.keys().collect::<Vec<_>>(), ["config.json", "model.safetensors", "tokenizer.json"]);
}
