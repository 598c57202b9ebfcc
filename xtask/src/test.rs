//! `cargo xtask test`: the one test command (CI's `.ci/run` calls exactly this).
//!
//! setup, then `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the workspace,
//! all with the libtorch environment. Real-data tests are switched on when their inputs exist:
//! `../shared/mirror` (real GLUE files and a real checkpoint) sets `INTRINSIC_BENCH_TEST_MIRROR`,
//! `../shared/cases3` (inputs shaped like public fault reports) `INTRINSIC_BENCH_TEST_CASES`.
//! NVRTC is installed into the cache first (best effort), so the fused FWHT kernel's source is
//! compiled by a test; without it that test says why it skipped. The GitHub workflows are
//! audited by `zizmor --offline` (pinned actions, permissions, credentials) and validated against
//! GitHub's workflow schema (`check-jsonschema --builtin-schema vendor.github-workflows`) where
//! those tools are installed (`pip install zizmor check-jsonschema`); a finding fails the test.
//! Last, the sbatch array runs on a throwaway single-node SLURM cluster (`slurm_test.rs`; the
//! packages are installed on Debian-based machines where they are missing).

use anyhow::Result;

use crate::{cargo, run_checked, setup};

pub const USAGE: &str = "cargo xtask test
  setup, cargo fmt --check, clippy -D warnings, the workflow audit (zizmor, check-jsonschema: where
  installed), cargo test over the workspace (no flags), then the SLURM test on a throwaway cluster;
  real-data tests run when ../shared/mirror is beside the project";

pub fn run() -> Result<()> {
    let libtorch = setup::ensure()?;
    if let Err(err) = setup::ensure_nvrtc() {
        eprintln!("NVRTC not installed, the kernel compile test will skip: {err:#}");
    }
    run_checked(cargo(&libtorch).args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo(&libtorch).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    audit_workflows()?;
    let mut test = cargo(&libtorch);
    test.args(["test", "--workspace"]);
    match std::path::Path::new("../shared/mirror").canonicalize() {
        Ok(mirror) if mirror.join("SHA256SUMS").exists() => {
            eprintln!("real-data tests on: mirror {}", mirror.display());
            test.env("INTRINSIC_BENCH_TEST_MIRROR", mirror);
        }
        _ => eprintln!("real-data tests off: no ../shared/mirror beside the project"),
    }
    match std::path::Path::new("../shared").canonicalize() {
        Ok(shared) if shared.join("cases3/README.md").exists() => {
            eprintln!("fault-report cases on: {}", shared.join("cases3").display());
            test.env("INTRINSIC_BENCH_TEST_CASES", shared);
        }
        _ => eprintln!("fault-report cases off: no ../shared/cases3 beside the project"),
    }
    run_checked(&mut test)?;
    crate::slurm_test::run(&std::env::current_dir()?)?;
    Ok(())
}

/// The workflow files, audited and validated by the tools that are installed (each says so when
/// it is not, and the audit of the other still runs).
fn audit_workflows() -> Result<()> {
    let mut workflows: Vec<std::path::PathBuf> = std::fs::read_dir(".github/workflows")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml"))
        .collect();
    workflows.sort();
    let tools: [(&str, &[&str]); 2] = [
        ("zizmor", &["--offline", "--no-progress"]),
        ("check-jsonschema", &["--builtin-schema", "vendor.github-workflows"]),
    ];
    for (tool, args) in tools {
        let installed = std::process::Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            eprintln!("workflow audit: {tool} not installed (pip install {tool}), skipped");
            continue;
        }
        run_checked(std::process::Command::new(tool).args(args).args(&workflows))?;
    }
    Ok(())
}
