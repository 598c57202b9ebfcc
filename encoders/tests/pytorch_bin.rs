//! The reader of `pytorch_model.bin` on files written by `torch.save` (the zip format and the
//! legacy one; `encoders/tests/golden/make_pytorch_bin_fixtures.py`), and its refusals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use encoders::checkpoint::{self, pytorch_bin};
use tch::{Kind, Tensor};

use crate::support::{golden, read};

fn fixture(name: &str) -> PathBuf {
    golden("pytorch_bin").join(name)
}

fn expected() -> BTreeMap<String, Tensor> {
    read(&fixture("state_dict.safetensors"))
}

#[test]
fn reads_an_ordered_dict_a_plain_dict_and_the_legacy_format_with_every_dtype_shared_storage_and_views() {
    for file in ["state_dict.bin", "plain_dict.bin", "legacy.bin"] {
        let read: BTreeMap<String, Tensor> = pytorch_bin::read(&fixture(file)).unwrap().into_iter().collect();
        let expected = expected();
        assert_eq!(read.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{file}");
        for (name, want) in &expected {
            let got = &read[name];
            assert_eq!(got.kind(), want.kind(), "{file} {name}");
            assert_eq!(got.size(), want.size(), "{file} {name}");
            assert!(got.contiguous().equal(want), "{file} {name}: values differ");
        }
        assert_eq!(read["encoder.bias_fp16"].kind(), Kind::Half);
        assert_eq!(read["encoder.bias_bf16"].kind(), Kind::BFloat16);
        // The transpose and the row are gathered from the saved storage: the values of the views.
        assert_eq!(read["head.transposed"].size(), [4, 3]);
        assert!(read["head.transposed"].equal(&expected["head.transposed"]));
        assert_eq!(read["head.row"].size(), [4]);
        // The tied pair reads as two equal tensors.
        assert!(read["lm_head.decoder.weight"].equal(&read["embeddings.word_embeddings.weight"]));
        // The shapes alone (what a check before training reads) without the data.
        let shapes: Vec<(String, Vec<i64>)> = pytorch_bin::shapes(&fixture(file)).unwrap();
        let read_shapes: Vec<(String, Vec<i64>)> = read.iter().map(|(name, t)| (name.clone(), t.size())).collect();
        assert_eq!(shapes, read_shapes, "{file}");
    }
}

#[test]
fn the_format_is_read_from_the_first_bytes() {
    for file in ["state_dict.bin", "legacy.bin"] {
        assert_eq!(pytorch_bin::format_of(&fixture(file)).unwrap(), pytorch_bin::WeightsFormat::TorchSave, "{file}");
    }
    assert_eq!(
        pytorch_bin::format_of(&fixture("state_dict.safetensors")).unwrap(),
        pytorch_bin::WeightsFormat::Safetensors
    );
}

fn refusal(file: &str) -> String {
    let message = match pytorch_bin::read(&fixture(file)) {
        Ok(tensors) => panic!("{file}: read {} tensors, expected a refusal", tensors.len()),
        Err(err) => err.to_string(),
    };
    assert!(message.contains(file), "{file}: the message names the file: {message}");
    assert!(!message.contains("Exception raised from"), "{file}: no C++ backtrace: {message}");
    // The check before training (shapes only) refuses it with the same message.
    match pytorch_bin::shapes(&fixture(file)) {
        Ok(shapes) => panic!("{file}: shapes of {} tensors, expected a refusal", shapes.len()),
        Err(err) => assert_eq!(err.to_string(), message, "{file}"),
    }
    message
}

#[test]
fn refuses_pickled_code_without_running_it() {
    let marker = Path::new("/tmp/intrinsic-bench-pwned");
    let _ = std::fs::remove_file(marker);
    let message = refusal("code.bin");
    assert!(message.contains("`weight` (a `") && message.contains("system"), "{message}");
    assert!(!marker.exists(), "the pickle's os.system ran");
}

#[test]
fn refuses_values_that_are_not_tensors_and_truncated_files() {
    let message = refusal("not_tensors.bin");
    assert!(message.contains("not a state dict: `step` (an int) is not a tensor"), "{message}");
    let message = refusal("truncated.bin");
    assert!(message.contains("or a damaged one"), "{message}");
}

#[test]
fn refuses_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.bin");
    std::fs::write(&text, "hello, world").unwrap();
    let message = pytorch_bin::read(&text).unwrap_err().to_string();
    assert!(message.contains("not a state dict that torch.save wrote") && message.contains("notes.bin"), "{message}");
    std::fs::write(&text, "hi").unwrap();
    let message = checkpoint::tensor_shapes(&text).unwrap_err().to_string();
    assert!(message.contains("too short"), "{message}");
}

/// The tiny BERT classifier of the encoder goldens, saved by `torch.save(model.state_dict())` as
/// transformers 4 saved `pytorch_model.bin`, loads and gives HF's logits.
#[test]
fn a_classifier_saved_as_pytorch_model_bin_gives_hfs_logits() {
    use encoders::models::{Config, SequenceClassifier};
    let config = Config::from_json(&std::fs::read_to_string(golden("tiny_bert.json")).unwrap()).unwrap();
    let expected = read(&golden("tiny_bert.safetensors"));
    let weights = fixture("tiny_bert/pytorch_model.bin");

    let layout = encoders::shapes::sequence_classifier(&config, 3);
    checkpoint::check(&weights, &layout, "bert", checkpoint::Head::IfPresent(&["classifier"])).unwrap();
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = SequenceClassifier::new(vs.root(), &config, 3);
    let report =
        checkpoint::load(&vs, &weights, "bert", checkpoint::Head::IfPresent(&["classifier"]), 0, 0.02).unwrap();
    assert!(report.initialised.is_empty(), "{report:?}");
    let _guard = tch::no_grad_guard();
    let logits =
        model.forward_t(&expected["input_ids"], &expected["attention_mask"], &expected["token_type_ids"], false);
    let error = (logits - &expected["logits"]).abs().max().double_value(&[]);
    assert!(error < 1e-4, "max abs error {error}");
}
