//! Build-time facts for bench-suite's binaries, tests and benches:
//!
//! - an rpath to the libtorch they were built against. torch-sys (`links = "tch"`) reports its lib
//!   folder as `DEP_TCH_LIBTORCH_LIB` to crates that depend on it directly; link arguments printed
//!   by a dependency's build script do not reach our targets, so without this they fail to start
//!   with `libtorch_cpu.so: cannot open shared object`;
//! - the code revision they are built from (`INTRINSIC_BENCH_CODE_REVISION`: `git rev-parse
//!   --short=12 HEAD`, `+dirty` when tracked files differ from it, `unknown` outside a git
//!   checkout), which every result records. Captured here rather than when a run starts, so a
//!   binary reports the code it runs, not whatever the work tree holds at that moment. The script
//!   reruns when HEAD moves or a source of this crate, `trainer`, `encoders`, `subspace` or
//!   `datasets` changes.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    code_revision();
}

fn code_revision() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).parent().expect("the workspace root holds this crate").to_path_buf();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    // What the revision and its cleanliness depend on: HEAD (a branch switch), the branch's ref
    // (a commit; packed refs after `git gc`), and the sources that make up the results.
    for path in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={}", root.join(path).display());
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "--quiet", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for source in [
        "bench-suite/src",
        "bench-suite/presets",
        "bench-suite/build.rs",
        "subspace/src",
        "encoders/src",
        "trainer/src",
        "datasets/src",
        "datasets/manifest.yaml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(revision) => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|status| !status.is_empty());
            if dirty { format!("{revision}+dirty") } else { revision }
        }
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=INTRINSIC_BENCH_CODE_REVISION={revision}");
}
