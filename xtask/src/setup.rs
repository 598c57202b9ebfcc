//! `cargo xtask setup`: find or install libtorch 2.11.0, the one PyTorch this suite binds (tch 0.24).
//!
//! Order of preference:
//! 1. `LIBTORCH` set: the user's own libtorch, checked for the version.
//! 2. `LIBTORCH_USE_PYTORCH=1`: the libtorch inside the importable `python3` torch, checked for the
//!    version (this needs the full pip install of torch, CUDA dependencies included).
//! 3. Otherwise the per-user cache `$INTRINSIC_BENCH_HOME/torch-2.11.0` (default
//!    `${XDG_CACHE_HOME:-$HOME/.cache}/intrinsic-bench`), filled once from PyPI and reused by every
//!    clone and CI run.
//!
//! The cache install downloads three wheels with `pip download --no-deps` (torch, and the CUDA
//! runtime and CUPTI libraries that `libtorch_cpu.so` links against) and unpacks only what a CPU
//! build and run needs: `torch/include`, the CPU libraries, `libcudart.so.13` and `libcupti.so.13`
//! copied beside them (found through libtorch_cpu's `$ORIGIN` rpath). About 0.5 GB instead of the
//! 4.6 GB of a full install. `libtorch_cuda.so` is left out on purpose: CUDA runs use the GPU
//! machine's own PyTorch install (see README). The wheel carries no `build-version` file, so we
//! write one, which lets torch-sys check the version.
//!
//! Idempotent and safe under concurrency: an exclusive lock file serialises installers, the tree is
//! unpacked into a staging folder and renamed into place, and the `.complete` marker is written
//! last; a folder without the marker is a half-finished install and is redone.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const TORCH_VERSION: &str = "2.11.0";

/// The wheels of a CPU-capable libtorch: torch itself and the two CUDA libraries that
/// `libtorch_cpu.so` has as `NEEDED` entries (versions as pinned by torch's `cuda-toolkit==13.0.2`).
const WHEELS: [&str; 3] = ["torch==2.11.0", "nvidia-cuda-runtime==13.0.96.*", "nvidia-cuda-cupti==13.0.85.*"];

/// The torch requirement of [`WHEELS`] (a test checks it names [`TORCH_VERSION`]).
#[cfg(test)]
pub fn torch_wheel() -> &'static str {
    WHEELS[0]
}

const MARKER: &str = ".complete";

/// Where libtorch lives, and how it was found.
pub struct Libtorch {
    pub dir: PathBuf,
    /// `LIBTORCH_CXX11_ABI` for torch-sys when it must be told (a user's own python torch).
    cxx11_abi: Option<&'static str>,
}

impl Libtorch {
    pub fn lib_dir(&self) -> PathBuf {
        self.dir.join("lib")
    }

    /// The environment every cargo command run by xtask gets.
    pub fn cargo_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("LIBTORCH".to_owned(), self.dir.display().to_string())];
        if let Some(abi) = self.cxx11_abi {
            env.push(("LIBTORCH_CXX11_ABI".to_owned(), abi.to_owned()));
        }
        // Built binaries carry an rpath to this folder (bench-suite's build script); the library
        // path is only a fallback for tools that run binaries of their own.
        let mut library_path = self.lib_dir().display().to_string();
        // NVRTC, when `ensure_nvrtc` installed it: the fused kernel's compile test uses it.
        if let Some(nvrtc) = installed_nvrtc() {
            library_path = format!("{library_path}:{}", nvrtc.display());
        }
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|old| !old.is_empty()) {
            library_path = format!("{library_path}:{}", old.to_string_lossy());
        }
        env.push(("LD_LIBRARY_PATH".to_owned(), library_path));
        env
    }
}

pub fn ensure() -> Result<Libtorch> {
    if let Some(dir) = std::env::var_os("LIBTORCH").filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        check_libtorch_dir(&dir).context("LIBTORCH is set but does not hold a usable libtorch")?;
        return Ok(Libtorch { dir, cxx11_abi: None });
    }
    if std::env::var("LIBTORCH_USE_PYTORCH").is_ok_and(|value| value == "1") {
        return python_torch();
    }
    cached_install()
}

/// The cache folder: `$INTRINSIC_BENCH_HOME`, else `$XDG_CACHE_HOME/intrinsic-bench`, else
/// `~/.cache/intrinsic-bench`.
pub fn cache_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("INTRINSIC_BENCH_HOME").filter(|home| !home.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|xdg| !xdg.is_empty()) {
        return Ok(PathBuf::from(xdg).join("intrinsic-bench"));
    }
    match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("intrinsic-bench")),
        None => bail!(
            "neither INTRINSIC_BENCH_HOME, XDG_CACHE_HOME nor HOME is set: set INTRINSIC_BENCH_HOME to a cache folder"
        ),
    }
}

fn check_libtorch_dir(dir: &Path) -> Result<()> {
    for needed in ["lib/libtorch_cpu.so", "lib/libc10.so", "include/torch"] {
        if !dir.join(needed).exists() {
            bail!("{} has no `{needed}`: point LIBTORCH at a libtorch folder (with lib/ and include/)", dir.display());
        }
    }
    match fs::read_to_string(dir.join("build-version")) {
        Ok(version) if !version.trim().starts_with(TORCH_VERSION) => bail!(
            "wrong torch version found: {} has {}, this suite needs {TORCH_VERSION} (tch 0.24)",
            dir.display(),
            version.trim()
        ),
        _ => Ok(()),
    }
}

fn python_torch() -> Result<Libtorch> {
    let script = "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__)); \
                  print(int(torch._C._GLIBCXX_USE_CXX11_ABI))";
    let output = python()?.args(["-c", script]).output().context("run python3")?;
    if !output.status.success() {
        bail!(
            "LIBTORCH_USE_PYTORCH=1 but `python3 -c 'import torch'` failed:\n{}\nunset it to let xtask install libtorch into its cache",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let [version, dir, abi] = lines[..] else { bail!("unexpected answer from python3 torch: {stdout}") };
    if !version.starts_with(TORCH_VERSION) {
        bail!("wrong torch version found: python3 has torch {version}, this suite needs {TORCH_VERSION} (tch 0.24)");
    }
    let dir = PathBuf::from(dir);
    check_libtorch_dir(&dir)?;
    Ok(Libtorch { dir, cxx11_abi: Some(if abi == "1" { "1" } else { "0" }) })
}

fn python() -> Result<Command> {
    match Command::new("python3").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(Command::new("python3")),
        Ok(_) | Err(_) => {
            bail!("no python3 found on PATH: install Python 3 with pip (needed once to fetch the torch wheel)")
        }
    }
}

fn cached_install() -> Result<Libtorch> {
    let dir = cached_folder(&format!("torch-{TORCH_VERSION}"), &format!("libtorch {TORCH_VERSION}"), install_into)?;
    Ok(Libtorch { dir, cxx11_abi: None })
}

/// A folder `name` of the cache, made once by `install(dir)` under an exclusive lock: the
/// `.complete` marker is written last, and a folder without it is a half-finished install, redone.
fn cached_folder(name: &str, what: &str, install: fn(&Path) -> Result<()>) -> Result<PathBuf> {
    let home = cache_home()?;
    let dir = home.join(name);
    if dir.join(MARKER).exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&home)
        .map_err(|err| io_error(err, &home))
        .with_context(|| format!("create cache folder {}", home.display()))?;

    let lock_path = home.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).with_context(|| format!("create lock file {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!("waiting for another process installing {what} (lock {})", lock_path.display());
        lock.lock().with_context(|| format!("lock {}", lock_path.display()))?;
    }
    // Another process may have finished while we waited.
    if dir.join(MARKER).exists() {
        return Ok(dir);
    }
    if dir.exists() {
        eprintln!("half-finished {what} install found at {}: redoing it", dir.display());
        fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    install(&dir).with_context(|| format!("install {what} into {}", dir.display()))?;
    fs::write(dir.join(MARKER), format!("{what}\n")).map_err(|err| io_error(err, &dir))?;
    eprintln!("{what} installed at {}", dir.display());
    Ok(dir)
}

/// NVRTC, the CUDA runtime compiler (`libnvrtc.so.13` and its builtins, from the
/// `nvidia-cuda-nvrtc` wheel that PyTorch 2.11.0's CUDA build depends on): it needs no GPU, so
/// with it the CPU tests compile the fused FWHT kernel's source. About 90 MB once per machine.
pub fn ensure_nvrtc() -> Result<PathBuf> {
    Ok(cached_folder(&format!("nvrtc-{NVRTC_VERSION}"), &format!("NVRTC {NVRTC_VERSION}"), install_nvrtc)?.join("lib"))
}

pub const NVRTC_VERSION: &str = "13.0.88";

/// The NVRTC lib folder if a complete install is in the cache.
fn installed_nvrtc() -> Option<PathBuf> {
    let dir = cache_home().ok()?.join(format!("nvrtc-{NVRTC_VERSION}"));
    dir.join(MARKER).exists().then(|| dir.join("lib"))
}

fn install_nvrtc(dir: &Path) -> Result<()> {
    let wheels = Wheels {
        specs: vec![format!("nvidia-cuda-nvrtc=={NVRTC_VERSION}")],
        what: format!("the NVRTC {NVRTC_VERSION} wheel"),
        size: "about 90 MB",
        space: "about 300 MB",
    };
    let unpack = r#"
import glob, os, shutil, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
wanted = {"libnvrtc.so.13", "libnvrtc-builtins.so.13.0"}
lib = os.path.join(out, "lib")
os.makedirs(lib, exist_ok=True)
found = set()
for wheel in glob.glob(os.path.join(wheels, "*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            base = os.path.basename(info.filename)
            if base in wanted:
                with archive.open(info) as src, open(os.path.join(lib, base), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found.add(base)
if wanted - found:
    sys.exit("the nvrtc wheel lacks " + ", ".join(sorted(wanted - found)))
"#;
    let (staging, unpacked) = wheels.stage(dir, unpack)?;
    finish_install(&staging, &unpacked, dir)
}

/// Wheels to fetch with `pip download --no-deps` and unpack into a cache folder.
struct Wheels {
    specs: Vec<String>,
    /// For messages: what is downloaded, its size, and the free space the install needs.
    what: String,
    size: &'static str,
    space: &'static str,
}

impl Wheels {
    /// Downloads the wheels into a fresh `<dir>.staging/wheels` beside the cache folder `dir` and
    /// runs `unpack` (a Python program given the wheels folder and an output folder; exit code 28
    /// means the disk is full) into `<dir>.staging/out`. Returns the staging folder and the
    /// unpacked tree.
    fn stage(&self, dir: &Path, unpack: &str) -> Result<(PathBuf, PathBuf)> {
        let mut staging_name = dir.file_name().context("a cache folder has a name")?.to_os_string();
        staging_name.push(".staging");
        let staging = dir.with_file_name(staging_name);
        if staging.exists() {
            fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()))?;
        }
        let wheels = staging.join("wheels");
        fs::create_dir_all(&wheels).map_err(|err| io_error(err, &staging))?;
        let pip_ok = python()?.args(["-m", "pip", "--version"]).output().is_ok_and(|output| output.status.success());
        if !pip_ok {
            bail!(
                "python3 has no pip: install it (for example `apt-get install python3-pip` or `python3 -m ensurepip`)"
            );
        }
        eprintln!("downloading {} ({}, once per machine)", self.what, self.size);
        let output = python()?
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off", "-d"])
            .arg(&wheels)
            .args(&self.specs)
            .output()
            .context("run pip download")?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("No space left on device") {
                bail!(
                    "disk full while downloading {} into {}: free {} there or set INTRINSIC_BENCH_HOME to another disk",
                    self.what,
                    wheels.display(),
                    self.space
                );
            }
            bail!("`pip download {}` failed:\n{stderr}", self.specs.join(" "));
        }
        // Unpack with Python's zipfile (python3 is required anyway; this keeps xtask free of zip crates).
        let unpacked = staging.join("out");
        let output =
            python()?.arg("-c").arg(unpack).arg(&wheels).arg(&unpacked).output().context("run the wheel unpacker")?;
        if !output.status.success() {
            if output.status.code() == Some(28) {
                bail!(
                    "disk full while unpacking {} into {}: free {} there or set INTRINSIC_BENCH_HOME to another disk",
                    self.what,
                    staging.display(),
                    self.space
                );
            }
            bail!("unpacking {} failed:\n{}", self.what, String::from_utf8_lossy(&output.stderr));
        }
        Ok((staging, unpacked))
    }
}

/// Moves an unpacked tree to its cache folder and removes the staging folder.
fn finish_install(staging: &Path, unpacked: &Path, dir: &Path) -> Result<()> {
    fs::rename(unpacked, dir).with_context(|| format!("move {} to {}", unpacked.display(), dir.display()))?;
    fs::remove_dir_all(staging).with_context(|| format!("remove {}", staging.display()))?;
    Ok(())
}

fn install_into(dir: &Path) -> Result<()> {
    let wheels = Wheels {
        specs: WHEELS.iter().map(|spec| spec.to_string()).collect(),
        what: format!("the torch {TORCH_VERSION} wheel"),
        size: "about 530 MB",
        space: "about 1.5 GB",
    };
    let unpack = r#"
import errno, glob, os, shutil, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
keep_lib = {"libc10.so", "libtorch.so", "libtorch_cpu.so", "libtorch_global_deps.so", "libgomp.so.1", "libshm.so"}
cuda_libs = {"libcudart.so.13", "libcupti.so.13"}
try:
    lib = os.path.join(out, "lib")
    os.makedirs(lib, exist_ok=True)
    found = set()
    for wheel in sorted(glob.glob(os.path.join(wheels, "*.whl"))):
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = info.filename
                base = os.path.basename(name)
                if name.startswith("torch/include/") and not name.endswith("/"):
                    target = os.path.join(out, name[len("torch/"):])
                elif name.startswith("torch/lib/") and base in keep_lib:
                    target = os.path.join(lib, base)
                elif base in cuda_libs:
                    target = os.path.join(lib, base)
                else:
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found.add(base)
    missing = (keep_lib | cuda_libs) - found
    if missing:
        sys.exit("wheels lack " + ", ".join(sorted(missing)))
except OSError as err:
    if err.errno == errno.ENOSPC:
        print("ENOSPC", file=sys.stderr)
        sys.exit(28)
    raise
"#;
    let (staging, unpacked) = wheels.stage(dir, unpack)?;
    fs::write(unpacked.join("build-version"), format!("{TORCH_VERSION}\n")).map_err(|err| io_error(err, &unpacked))?;
    finish_install(&staging, &unpacked, dir)
}

fn io_error(err: std::io::Error, place: &Path) -> anyhow::Error {
    if err.kind() == ErrorKind::StorageFull {
        anyhow::anyhow!(
            "disk full at {}: free space there or set INTRINSIC_BENCH_HOME to another disk",
            place.display()
        )
    } else {
        anyhow::Error::new(err).context(format!("write under {}", place.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_libtorch(name: &str, version: Option<&str>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-setup-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("lib")).unwrap();
        fs::create_dir_all(dir.join("include/torch")).unwrap();
        fs::write(dir.join("lib/libtorch_cpu.so"), b"").unwrap();
        fs::write(dir.join("lib/libc10.so"), b"").unwrap();
        if let Some(version) = version {
            fs::write(dir.join("build-version"), version).unwrap();
        }
        dir
    }

    #[test]
    fn accepts_a_libtorch_of_the_right_version_or_without_version_file() {
        for (name, version) in [("right", Some("2.11.0+cu130\n")), ("unversioned", None)] {
            let dir = fake_libtorch(name, version);
            check_libtorch_dir(&dir).unwrap();
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn names_the_wrong_version_and_the_missing_file() {
        let dir = fake_libtorch("wrong", Some("2.5.1\n"));
        let message = check_libtorch_dir(&dir).unwrap_err().to_string();
        assert!(message.contains("wrong torch version found") && message.contains("2.5.1"), "{message}");
        fs::remove_file(dir.join("lib/libc10.so")).unwrap();
        let message = check_libtorch_dir(&dir).unwrap_err().to_string();
        assert!(message.contains("lib/libc10.so"), "{message}");
        fs::remove_dir_all(dir).unwrap();
    }
}
