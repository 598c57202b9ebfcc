//! Tokenisation: a small WordPiece tokenizer.json written here (with padding and truncation baked
//! in, which must be cleared), and the real bert-base-uncased vocabulary (MiniLM's tokenizer.json
//! from the shared mirror) against ids that HF's tokenizer produced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};
use trainer::tokenize::{Encoded, TextEncoder, collate};

const SPECIAL: [(&str, u32); 4] = [("[PAD]", 0), ("[UNK]", 1), ("[CLS]", 2), ("[SEP]", 3)];
const WORDS: [&str; 8] = ["the", "cat", "sat", "on", "mat", ".", "a", "##s"];

fn tiny_tokenizer(dir: &Path) -> PathBuf {
    let vocab: BTreeMap<&str, u32> =
        SPECIAL.iter().copied().chain(WORDS.iter().enumerate().map(|(idx, word)| (*word, 4 + idx as u32))).collect();
    let special = |token: &str, id: u32| {
        format!("\"{token}\": {{\"id\": \"{token}\", \"ids\": [{id}], \"tokens\": [\"{token}\"]}}")
    };
    let json = format!(
        r###"{{
  "version": "1.0",
  "truncation": {{"direction": "Right", "max_length": 128, "strategy": "LongestFirst", "stride": 0}},
  "padding": {{"strategy": {{"Fixed": 128}}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}},
  "added_tokens": [],
  "normalizer": {{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{
    "type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 1}}}}],
    "special_tokens": {{{}, {}}}
  }},
  "decoder": {{"type": "WordPiece", "prefix": "##", "cleanup": true}},
  "model": {{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {}}}
}}"###,
        special("[CLS]", 2),
        special("[SEP]", 3),
        serde_json::to_string(&vocab).unwrap()
    );
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-suite-tokenize-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pairs_truncation_and_cleared_padding() {
    let dir = temp_dir("tiny");
    let encoder = TextEncoder::from_file(&tiny_tokenizer(&dir), 9).unwrap();
    // The file pads to 128: cleared, so a short text stays short.
    let single = encoder.encode("The cats sat.", None).unwrap();
    assert_eq!(single, Encoded { ids: vec![2, 4, 5, 11, 6, 9, 3], type_ids: vec![0; 7] });
    let pair = encoder.encode("the cat", Some("a mat")).unwrap();
    assert_eq!(pair.ids, [2, 4, 5, 3, 10, 8, 3]);
    assert_eq!(pair.type_ids, [0, 0, 0, 0, 1, 1, 1]);
    // Longest first: 9 - 3 special tokens = 6, taken from the longer side first.
    let long = encoder.encode("the cat sat on the mat", Some("a cat")).unwrap();
    assert_eq!(long.ids, [2, 4, 5, 6, 7, 3, 10, 5, 3]);
    let unknown = encoder.encode("dog", None).unwrap();
    assert_eq!(unknown.ids, [2, 1, 3]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn collate_pads_each_batch_to_its_longest() {
    let short = Encoded { ids: vec![2, 4, 3], type_ids: vec![0, 0, 0] };
    let long = Encoded { ids: vec![2, 4, 3, 5, 3], type_ids: vec![0, 0, 0, 1, 1] };
    let batch = collate(&[&short, &long], 0, Device::Cpu);
    let rows = |tensor: &Tensor| Vec::<Vec<i64>>::try_from(tensor).unwrap();
    assert_eq!(rows(&batch.input_ids), [vec![2, 4, 3, 0, 0], vec![2, 4, 3, 5, 3]]);
    assert_eq!(rows(&batch.attention_mask), [vec![1, 1, 1, 0, 0], vec![1, 1, 1, 1, 1]]);
    assert_eq!(rows(&batch.token_type_ids), [vec![0, 0, 0, 0, 0], vec![0, 0, 0, 1, 1]]);
    assert_eq!(collate(&[&short], 0, Device::Cpu).input_ids.size(), [1, 3], "no padding beyond the batch");
}

#[test]
fn cache_is_keyed_by_tokenizer_data_and_length() {
    let dir = temp_dir("cache");
    let cache = dir.join("cache");
    let texts = [("the cat sat", None), ("a cat", Some("on the mat"))];
    let encoder = TextEncoder::from_file(&tiny_tokenizer(&dir), 16).unwrap();
    let first = encoder.encode_all(&texts, Some(&cache)).unwrap();
    let files = || std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(files(), 1);
    // The same request is served from the cache file: edit the first id there and it shows.
    let cache_file = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&cache_file).unwrap();
    bytes[12] = 7; // after the count (8 bytes) and the first length (4 bytes)
    std::fs::write(&cache_file, &bytes).unwrap();
    assert_eq!(encoder.encode_all(&texts, Some(&cache)).unwrap()[0].ids[0], 7);
    // A truncated cache file is not trusted: the split is tokenised again and rewritten.
    std::fs::write(&cache_file, &bytes[..20]).unwrap();
    assert_eq!(encoder.encode_all(&texts, Some(&cache)).unwrap(), first);
    assert_eq!(files(), 1);
    // Other data or another length: other entries, and the right ids.
    let other = encoder.encode_all(&texts[..1], Some(&cache)).unwrap();
    assert_eq!(other, first[..1]);
    let shorter = TextEncoder::from_file(&tiny_tokenizer(&dir), 5).unwrap().encode_all(&texts, Some(&cache)).unwrap();
    assert_eq!(shorter[1].ids.len(), 5);
    assert_eq!(files(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A `max_len` that leaves no token of a text beside the template's special tokens is an error,
/// never an impossible truncation: single texts need 2 + 1, pairs 3 + 2 with BERT's template.
#[test]
fn max_len_without_room_for_the_text_is_refused() {
    let dir = temp_dir("room");
    let path = tiny_tokenizer(&dir);
    let encoder = TextEncoder::from_file(&path, 4).unwrap();
    assert_eq!((encoder.special_tokens(false), encoder.special_tokens(true)), (2, 3));
    assert_eq!((encoder.min_max_len(false), encoder.min_max_len(true)), (3, 5));
    assert_eq!(encoder.encode("the cat sat", None).unwrap().ids, [2, 4, 5, 3]);
    let err = encoder.encode("the cat", Some("a mat")).unwrap_err();
    assert!(err.to_string().contains("max_len 4 leaves no room") && err.to_string().contains("at least 5"), "{err}");
    for max_len in [0, 1, 2] {
        let err = TextEncoder::from_file(&path, max_len).unwrap().encode("the", None).unwrap_err();
        assert!(err.to_string().contains("at least 3"), "{max_len}: {err}");
    }
    assert_eq!(
        TextEncoder::from_file(&path, 5).unwrap().encode("the cat sat", Some("on the mat")).unwrap().ids.len(),
        5
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The real bert-base-uncased vocabulary: ids as HF's tokenizer gives them (the golden MiniLM file
/// holds HF's ids for three inputs; the truncation case was printed by HF's tokenizer).
#[test]
fn real_wordpiece_matches_hf_ids() {
    let Some(mirror) = crate::support::mirror("the real tokenizer test") else {
        return;
    };
    let path = crate::support::minilm(&mirror).join("tokenizer.json");
    let encoder = TextEncoder::from_file(&path, 128).unwrap();
    let pair = encoder.encode("The cat sat on the mat.", Some("A cat was sitting on a mat.")).unwrap();
    assert_eq!(
        pair.ids,
        [101, 1996, 4937, 2938, 2006, 1996, 13523, 1012, 102, 1037, 4937, 2001, 3564, 2006, 1037, 13523, 1012, 102]
    );
    assert_eq!(pair.type_ids, [[0; 9], [1; 9]].concat());
    let truncated =
        TextEncoder::from_file(&path, 12).unwrap().encode(&"a ".repeat(10), Some(&"b ".repeat(10))).unwrap();
    assert_eq!(truncated.ids, [101, 1037, 1037, 1037, 1037, 102, 1038, 1038, 1038, 1038, 1038, 102]);

    let golden: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(crate::support::golden("minilm.safetensors")).unwrap().into_iter().collect();
    let inputs = [
        ("The cat sat on the mat.", Some("A cat was sitting on a mat.")),
        ("Stocks fell sharply on Monday after the announcement.", Some("Markets rallied.")),
        ("hide new secretions from the parental units", None),
    ];
    let encoded: Vec<Encoded> = inputs.iter().map(|(a, b)| encoder.encode(a, *b).unwrap()).collect();
    let batch = collate(&encoded.iter().collect::<Vec<_>>(), 0, Device::Cpu);
    assert!(batch.input_ids.equal(&golden["input_ids"]), "{:?}", batch.input_ids);
    assert!(batch.attention_mask.equal(&golden["attention_mask"]));
    assert!(batch.token_type_ids.equal(&golden["token_type_ids"]));
}
