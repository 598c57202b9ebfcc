//! `cargo xtask gpu-check`: prepares the one device check of the fused kernel, bf16 and the
//! training step, to run on a machine with a GPU and PyTorch 2.11.0 (CUDA 13) but no Rust.
//!
//! Builds the release `bench-suite` here (x86-64, linked against libtorch 2.11.0's CPU part; the
//! CUDA backend and NVRTC are opened at run time), copies it into `gpu-check/` (ignored by git)
//! with `run.sh`, and prints the one command to run there. `run.sh` points the dynamic loader at
//! the GPU machine's own PyTorch (`torch/lib`) and NVRTC (`nvidia/cu13/lib`), records
//! `nvidia-smi`, and runs `bench-suite gpu-check --device cuda`, which prints its table last and
//! writes `gpu-check.json` and a log into `$OUT` (or `gpu-check/out`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::{build_bench_suite_release, setup};

const FOLDER: &str = "gpu-check";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("unexpected argument `{extra}`\nusage: cargo xtask gpu-check");
    }
    let libtorch = setup::ensure()?;
    build_bench_suite_release(&libtorch)?;
    let root = std::env::current_dir()?;
    let folder = root.join(FOLDER);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).with_context(|| format!("remove the old {}", folder.display()))?;
    }
    std::fs::create_dir_all(&folder).with_context(|| format!("create {}", folder.display()))?;
    let binary = folder.join("bench-suite");
    std::fs::copy(root.join("target/release/bench-suite"), &binary).context("copy the release binary")?;
    // Debug sections are not needed there; the folder must stay well under the device tool's
    // 64 MiB working-tree limit.
    if let Ok(status) = std::process::Command::new("strip").arg(&binary).status()
        && !status.success()
    {
        eprintln!("warning: strip failed; the binary travels unstripped");
    }
    let revision = git_revision(&root);
    std::fs::write(folder.join("run.sh"), script(&revision)).context("write run.sh")?;
    std::fs::write(folder.join("REVISION"), format!("{revision}\n")).context("write REVISION")?;
    let size = std::fs::metadata(&binary)?.len();
    println!("{FOLDER}/ is ready: bench-suite ({:.1} MB, code {revision}) and run.sh.", size as f64 / 1e6);
    println!("On the GPU machine (python3 with torch 2.11.0+cu130), from the repository root, run:");
    println!();
    println!("    bash {FOLDER}/run.sh");
    println!();
    println!(
        "With the device tool: run(command=\"bash {FOLDER}/run.sh\", carry=[\"{FOLDER}\"], timeout_s=540).\n\
         It prints the correctness summary and one table last, and writes gpu-check.json, gpu-check.log\n\
         and nvidia-smi.csv into $OUT (or {FOLDER}/out). Record the figures in bench-suite/benches/RESULTS.md."
    );
    Ok(())
}

fn git_revision(root: &Path) -> String {
    let output = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(root).output();
    let mut revision = match output {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        _ => "unknown".to_owned(),
    };
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .is_ok_and(|output| !output.stdout.is_empty());
    if dirty {
        revision.push_str("+dirty");
    }
    revision
}

fn script(revision: &str) -> String {
    let mut script = String::new();
    let _ = writeln!(script, "#!/usr/bin/env bash");
    let _ =
        writeln!(script, "# Written by `cargo xtask gpu-check` (code {revision}). Runs the prepared device check on a");
    let _ = writeln!(script, "# machine with an NVIDIA GPU and PyTorch 2.11.0 (CUDA 13) in python3; needs no Rust.");
    script.push_str(
        r#"set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-$here/out}"
mkdir -p "$out"
version="$(python3 -c 'import torch; print(torch.__version__)')"
case "$version" in
  2.11.0*) ;;
  *) echo "gpu-check needs torch 2.11.0 in python3, found $version" >&2; exit 2 ;;
esac
torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
# NVRTC from PyTorch's pip dependencies (nvidia-cuda-nvrtc): site-packages/nvidia/cu13/lib.
nvrtc_lib="$(python3 - <<'PY'
import glob, os, site
bases = site.getsitepackages() + [site.getusersitepackages()]
hits = [hit for base in bases for hit in glob.glob(os.path.join(base, "nvidia", "*", "lib", "libnvrtc.so.13"))]
print(os.path.dirname(hits[0]) if hits else "")
PY
)"
if [ -z "$nvrtc_lib" ]; then
  echo "libnvrtc.so.13 not found in python3's site-packages (pip package nvidia-cuda-nvrtc)" >&2
  exit 2
fi
export LD_LIBRARY_PATH="$torch_lib:$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export INTRINSIC_BENCH_LIBTORCH_CUDA="$torch_lib/libtorch_cuda.so"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$out/nvidia-smi.csv" 2>&1 || true
echo "torch $version at $torch_lib; NVRTC at $nvrtc_lib"
cat "$out/nvidia-smi.csv"
set -o pipefail
"$here/bench-suite" gpu-check --device cuda --json "$out/gpu-check.json" 2>&1 | tee "$out/gpu-check.log"
"#,
    );
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_valid_bash_and_names_its_revision() {
        let text = script("abc123");
        assert!(text.contains("code abc123"));
        assert!(text.contains("gpu-check --device cuda --json \"$out/gpu-check.json\""));
        let path = std::env::temp_dir().join(format!("xtask-gpu-check-{}.sh", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let status = std::process::Command::new("bash").arg("-n").arg(&path).status().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(status.success(), "bash -n rejected the script:\n{text}");
    }
}
