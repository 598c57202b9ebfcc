//! `bench-suite gpu-check` runs where there is no GPU: on the CPU at toy sizes (`--quick`), the
//! fused path being the kernel's emulation. This keeps the prepared device check working between
//! the rare sessions that get a GPU: its table, its JSON and its correctness verdict.

use std::process::Command;

#[test]
fn gpu_check_runs_on_the_cpu_and_reports_every_section() {
    let dir = std::env::temp_dir().join(format!("gpu-check-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("gpu-check.json");
    let output = Command::new(env!("CARGO_BIN_EXE_bench-suite"))
        .args(["gpu-check", "--device", "cpu", "--quick", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gpu-check failed:\n{stdout}\n{stderr}");
    for expected in ["correctness: 28 of 28 checks passed", "FWHT 2^16", "P^T PerTensor", "cpu F32", "cpu Bf16"] {
        assert!(stdout.contains(expected), "`{expected}` missing from:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["all_checks_ok"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().filter(|check| check["bit_exact"] == true).count() >= 16);
    let train = report["train"].as_array().unwrap();
    assert_eq!(train.len(), 2);
    // full, said, did, then said and did with the tch-op and per-stage engines.
    let engines: Vec<&str> =
        train[0]["rows"].as_array().unwrap().iter().map(|row| row["engine"].as_str().unwrap()).collect();
    assert_eq!(engines, ["default", "default", "default", "tch_ops", "tch_ops", "anchor", "anchor"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gpu_check_without_a_gpu_says_so() {
    let output = Command::new(env!("CARGO_BIN_EXE_bench-suite")).args(["gpu-check", "--quick"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Either libtorch_cuda.so is not loadable here, or it is and no device/driver is present.
    assert!(stderr.contains("CUDA") || stderr.contains("libcuda"), "{stderr}");
}
