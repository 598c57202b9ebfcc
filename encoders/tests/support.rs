//! Helpers every module of a crate's one test binary shares (bench-suite's binary includes this
//! file too, so each is written once in the workspace).

#![allow(dead_code)] // each binary uses its own subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::Tensor;

/// The shared mirror of real upstream files (`../shared/mirror`), when `cargo xtask test` found it
/// and set `INTRINSIC_BENCH_TEST_MIRROR`; `None` (saying which test skips) when it is not set. A
/// variable that names no folder fails the test: CI provided the inputs, so the test must run.
pub fn mirror(what: &str) -> Option<PathBuf> {
    let Some(mirror) = std::env::var_os("INTRINSIC_BENCH_TEST_MIRROR").map(PathBuf::from) else {
        eprintln!(
            "INTRINSIC_BENCH_TEST_MIRROR not set (cargo xtask test sets it when ../shared/mirror exists): skipping {what}"
        );
        return None;
    };
    assert!(mirror.is_dir(), "INTRINSIC_BENCH_TEST_MIRROR={} is not a folder", mirror.display());
    Some(mirror)
}

/// The third set of inputs shaped like public fault reports (`../shared/cases3`), when `cargo
/// xtask test` found it and set `INTRINSIC_BENCH_TEST_CASES` (to `../shared`); `None` (saying
/// which test skips) when it is not set; set but without the cases fails the test.
pub fn cases3(what: &str) -> Option<PathBuf> {
    let Some(shared) = std::env::var_os("INTRINSIC_BENCH_TEST_CASES").map(PathBuf::from) else {
        eprintln!(
            "INTRINSIC_BENCH_TEST_CASES not set (cargo xtask test sets it when ../shared/cases3 exists): skipping {what}"
        );
        return None;
    };
    let cases = shared.join("cases3");
    assert!(cases.join("README.md").is_file(), "INTRINSIC_BENCH_TEST_CASES={}: no cases3/README.md", shared.display());
    Some(cases)
}

/// The real MiniLM-L6 checkpoint folder inside the mirror (config, weights, tokenizer).
pub fn minilm(mirror: &Path) -> PathBuf {
    mirror.join("hf/sentence-transformers/all-MiniLM-L6-v2/1110a243fdf4706b3f48f1d95db1a4f5529b4d41")
}

/// A golden file written by HF `transformers` (`encoders/tests/golden/make_*.py`).
pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../encoders/tests/golden").join(name)
}

/// Every tensor of a safetensors file, by name.
pub fn read(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

/// The largest absolute difference of two tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

static TORCH_GENERATOR: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Torch's generator is process-wide: building a model or training draws from it, so a test that
/// seeds it and expects a given stream (dropout, a resumed run equal to an uninterrupted one) must
/// have it to itself. Such a test holds this guard; tests that only draw take [`draws`].
pub fn serial() -> std::sync::RwLockWriteGuard<'static, ()> {
    TORCH_GENERATOR.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For a test that draws from torch's generator (builds a model, trains) but needs no particular
/// stream: such tests run side by side, never beside a [`serial`] one.
pub fn draws() -> std::sync::RwLockReadGuard<'static, ()> {
    TORCH_GENERATOR.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes the `weights.*` tensors of a golden file as a checkpoint of its own.
pub fn checkpoint_from_golden(tensors: &BTreeMap<String, Tensor>, dir: &Path) -> PathBuf {
    let weights: Vec<(String, Tensor)> = tensors
        .iter()
        .filter_map(|(name, tensor)| {
            name.strip_prefix("weights.").map(|name| (name.to_owned(), tensor.shallow_clone()))
        })
        .collect();
    let path = dir.join("model.safetensors");
    Tensor::write_safetensors(&weights, &path).unwrap();
    path
}
