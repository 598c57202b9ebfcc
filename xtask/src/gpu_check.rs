//! `cargo xtask gpu-check`: prepares the one device check of the fused kernel, bf16 and the
//! training step, to run on a machine with a GPU and PyTorch 2.11.0 (CUDA 13) but no Rust.
//!
//! Builds the release `bench-suite` here (x86-64, linked against libtorch 2.11.0's CPU part; the
//! CUDA backend and NVRTC are opened at run time), copies it into `gpu-check/` (ignored by git)
//! with `run.sh`, and prints the one command to run there. `run.sh` says what it found and why
//! before spending GPU time: the GPU machine's own PyTorch (`torch/lib`, refused when it has no
//! `libtorch_cuda.so`) and NVRTC (`nvidia/*/lib/libnvrtc.so.13` beside the torch folder first,
//! wherever torch was installed, then site-packages, `sys.path` and the loader's cache); it points
//! the dynamic loader at them, records `nvidia-smi` when there is one, and runs `bench-suite
//! gpu-check --device cuda`, which prints its table last and
//! writes `gpu-check.json` and a log into `$OUT` (or `gpu-check/out`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::{build_bench_suite_release, setup};

const FOLDER: &str = "gpu-check";

pub const USAGE: &str = "cargo xtask gpu-check
  build the release binary and run.sh into gpu-check/ for the prepared device check (no flags);
  it prints the one command to run on the GPU machine";

pub fn run() -> Result<()> {
    let libtorch = setup::ensure()?;
    build_bench_suite_release(&libtorch)?;
    let root = std::env::current_dir()?;
    let folder = root.join(FOLDER);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).with_context(|| format!("remove the old {}", folder.display()))?;
    }
    std::fs::create_dir_all(&folder).with_context(|| format!("create {}", folder.display()))?;
    let binary = folder.join("bench-suite");
    std::fs::copy(crate::release_binary(&root), &binary).context("copy the release binary")?;
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
    println!("On the GPU machine (python3 with torch {}+cu130), from the repository root, run:", setup::TORCH_VERSION);
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
    let _ = writeln!(
        script,
        "# machine with an NVIDIA GPU and PyTorch {} (CUDA 13) in python3; needs no Rust.",
        setup::TORCH_VERSION
    );
    let _ = writeln!(script, "torch_version={}", setup::TORCH_VERSION);
    script.push_str(
        r#"set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-$here/out}"
mkdir -p "$out"
# What this machine has, said before any GPU time is spent.
if ! version="$(python3 -c 'import torch; print(torch.__version__)' 2>&1)"; then
  echo "gpu-check: python3 cannot import torch: $version" >&2
  exit 2
fi
case "$version" in
  "$torch_version"*) ;;
  *) echo "gpu-check needs torch $torch_version in python3, found $version" >&2; exit 2 ;;
esac
torch_dir="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
torch_lib="$torch_dir/lib"
if [ ! -e "$torch_lib/libtorch_cuda.so" ]; then
  echo "gpu-check: $torch_lib has no libtorch_cuda.so: torch $version is a CPU-only build (install torch==$torch_version+cu130)" >&2
  exit 2
fi
# NVRTC (pip package nvidia-cuda-nvrtc, a dependency of torch's CUDA wheels) lives in
# nvidia/<cuda>/lib beside the torch folder, wherever torch was installed (site-packages,
# `pip install --target`, PYTHONPATH, a cluster module); then python3's site-packages and
# sys.path; then the dynamic loader's own path.
nvrtc="$(python3 - <<'PY'
import glob, os, site, sys
import torch
beside = os.path.dirname(os.path.dirname(torch.__file__))
bases = [("beside torch", beside)]
try:
    bases += [("site-packages", base) for base in site.getsitepackages() + [site.getusersitepackages()]]
except AttributeError:  # a virtualenv's old site module
    pass
bases += [("sys.path", base) for base in sys.path if base]
for why, base in bases:
    hits = sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib", "libnvrtc.so.13")))
    if hits:
        print(os.path.dirname(hits[0]))
        print(f"{why} ({base})")
        break
PY
)"
nvrtc_lib="$(printf '%s\n' "$nvrtc" | sed -n 1p)"
nvrtc_why="$(printf '%s\n' "$nvrtc" | sed -n 2p)"
if [ -z "$nvrtc_lib" ]; then
  if ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so\.13'; then
    nvrtc_why="the dynamic loader's cache (ldconfig -p)"
  else
    echo "gpu-check: libnvrtc.so.13 not found beside torch ($torch_dir/..), in python3's site-packages or sys.path, or on the loader path: pip install nvidia-cuda-nvrtc (CUDA 13)" >&2
    exit 2
  fi
fi
export LD_LIBRARY_PATH="$torch_lib${nvrtc_lib:+:$nvrtc_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export INTRINSIC_BENCH_LIBTORCH_CUDA="$torch_lib/libtorch_cuda.so"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$out/nvidia-smi.csv" 2>&1 || true
else
  echo "nvidia-smi not found: no GPU name or driver in the record" >"$out/nvidia-smi.csv"
fi
echo "gpu-check: torch $version from $torch_dir"
echo "gpu-check: NVRTC ${nvrtc_lib:-on the loader path}, found via $nvrtc_why"
echo "gpu-check: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
cat "$out/nvidia-smi.csv"
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

    /// A fake install shaped like `pip install --target DIR torch` put on `PYTHONPATH` (torch and
    /// `nvidia/cu13/lib` side by side, outside every site-packages), a fake `bench-suite` that
    /// prints what it was given, and no `nvidia-smi`: the script finds NVRTC beside torch, says
    /// so, and runs. Without NVRTC, or with a CPU-only torch, it stops before the binary with a
    /// message naming what is missing.
    #[test]
    fn the_script_finds_nvrtc_beside_torch_wherever_torch_is() {
        let root = std::env::temp_dir().join(format!("xtask-gpu-check-layout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (target, folder, out) = (root.join("target"), root.join("gpu-check"), root.join("out"));
        for dir in [target.join("torch/lib"), target.join("nvidia/cu13/lib"), folder.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(target.join("torch/__init__.py"), "__version__ = '2.11.0+cu130'\n").unwrap();
        std::fs::write(target.join("torch/lib/libtorch_cuda.so"), "").unwrap();
        std::fs::write(target.join("nvidia/cu13/lib/libnvrtc.so.13"), "").unwrap();
        std::fs::write(folder.join("run.sh"), script("abc123")).unwrap();
        std::fs::write(
            folder.join("bench-suite"),
            "#!/bin/sh\necho \"fake bench-suite $* LD_LIBRARY_PATH=$LD_LIBRARY_PATH\"\n",
        )
        .unwrap();
        let chmod = std::process::Command::new("chmod").arg("+x").arg(folder.join("bench-suite")).status().unwrap();
        assert!(chmod.success());
        let run = || {
            std::process::Command::new("bash")
                .arg(folder.join("run.sh"))
                .env("PYTHONPATH", &target)
                .env("OUT", &out)
                .env("PATH", "/usr/bin:/bin")
                .env_remove("LD_LIBRARY_PATH")
                .output()
                .unwrap()
        };
        let output = run();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
        let nvrtc = target.join("nvidia/cu13/lib");
        assert!(stdout.contains(&format!("found via beside torch ({})", target.display())), "{stdout}");
        assert!(stdout.contains("fake bench-suite gpu-check --device cuda"), "{stdout}");
        assert!(stdout.contains(&format!("{}:{}", target.join("torch/lib").display(), nvrtc.display())), "{stdout}");
        let smi = std::fs::read_to_string(out.join("nvidia-smi.csv")).unwrap();
        assert!(smi.contains("nvidia-smi not found"), "{smi}");

        // No NVRTC anywhere (this machine's loader cache has none either).
        std::fs::remove_file(nvrtc.join("libnvrtc.so.13")).unwrap();
        let output = run();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let loader_has_it = std::process::Command::new("sh")
            .args(["-c", "ldconfig -p 2>/dev/null | grep -q 'libnvrtc\\.so\\.13'"])
            .status()
            .is_ok_and(|status| status.success());
        if !loader_has_it {
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(stderr.contains("libnvrtc.so.13 not found beside torch"), "{stderr}");
            assert!(!String::from_utf8_lossy(&output.stdout).contains("fake bench-suite"));
        }

        // A CPU-only torch: refused before anything else.
        std::fs::remove_file(target.join("torch/lib/libtorch_cuda.so")).unwrap();
        let output = run();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("CPU-only build"), "{stderr}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
