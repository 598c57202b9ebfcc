//! `cargo xtask`: the front door of intrinsic-bench (setup, tests, benchmarks, experiments).
//!
//! A flat dispatch: parse flags, go to the project root, one arm per subcommand, one file per
//! subcommand. Everything heavy runs by shelling out to `$CARGO` with the libtorch environment
//! that `setup` prepares.

mod bench;
mod bench_all;
mod fetch;
mod finetune;
mod gpu_check;
mod pretrain;
mod report;
mod reproduce;
mod setup;
mod slurm;
mod slurm_test;
mod test;

#[cfg(test)]
mod docs;
#[cfg(test)]
mod module_cycles;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `{torch}` stands for [`setup::TORCH_VERSION`].
const USAGE: &str = "\
usage: cargo xtask <command> [args]     (cargo xtask <command> --help: that command's flags)

the two commands of a fresh machine:
  reproduce        run a preset's d90 searches (default: quick), resumable, then write its report;
                   fetches and verifies what the preset needs (--mirror DIR --offline: no network)
  test             the one test command: setup, fmt --check, clippy -D warnings, cargo test

more:
  fetch            bring datasets and checkpoints into the verified cache (default: all but on-demand corpora)
  pin              print manifest entries for hub checkpoints pinned to a commit (needs the hub)
  finetune         fine-tune once (full, DID or SAID) and print the result as JSON
  pretrain         MLM pre-training from scratch from a YAML file (resumable; HF checkpoints)
  report           regenerate a preset's report from its results (--check: fail on drift)
  bench            benchmarks: all (default: one table against HF and the floors) | fastfood | train-step |
                   criterion (release builds)
  slurm            write an sbatch array script whose tasks run a preset's shards
  slurm-test       run that script on a throwaway single-node SLURM cluster (part of `test`)
  gpu-check        build the release binary and a script into gpu-check/ for the prepared GPU check
  setup            install libtorch (torch {torch} wheel) and NVRTC into the cache, or check your own
  env              print the environment that xtask gives to cargo (for running cargo by hand)

reproduce, fetch, pin, finetune, pretrain, report and bench fastfood|train-step forward their arguments to the
suite's binaries (bench-suite, datasets, reports), whose --help documents the flags.

environment:
  INTRINSIC_BENCH_HOME   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/intrinsic-bench)
  INTRINSIC_BENCH_MIRROR read-only mirror folders for `fetch`, separated by `:`
  HF_ENDPOINT            Hugging Face endpoint (default https://huggingface.co)
  INTRINSIC_BENCH_HASHES_LOCK  the file first-use hashes are locked in (default datasets/hashes.lock)
  LIBTORCH               use this libtorch {torch} instead of installing one
  LIBTORCH_USE_PYTORCH=1 use the libtorch of the importable python3 torch (must be {torch})
  RUST_LOG               level of the binaries' warnings and notes (default info)
";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<ChildFailed>() {
            Some(failed) => {
                eprintln!("{failed}");
                std::process::ExitCode::from(failed.code())
            }
            None => {
                eprintln!("Error: {err:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn run() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || is_help(&args[0]) || args[0] == "help" {
        print!("{}", usage());
        return Ok(());
    }
    let command = args.remove(0);
    let invoked_from = std::env::current_dir().context("read the current folder")?;
    std::env::set_current_dir(project_root()).context("go to the project root")?;
    match command.as_str() {
        "setup" => {
            if own_help(&args, "cargo xtask setup\n  install libtorch and NVRTC into the cache (no flags)")? {
                return Ok(());
            }
            let libtorch = setup::ensure()?;
            println!("libtorch {} ready at {}", setup::TORCH_VERSION, libtorch.dir.display());
            let nvrtc = setup::ensure_nvrtc()?;
            println!("NVRTC {} ready at {}", setup::NVRTC_VERSION, nvrtc.display());
            Ok(())
        }
        "test" => {
            if own_help(&args, test::USAGE)? {
                return Ok(());
            }
            test::run()
        }
        "bench" => bench::run(&args, &invoked_from),
        "fetch" => fetch::run("fetch", &args, &invoked_from),
        "pin" => fetch::run("pin", &args, &invoked_from),
        "finetune" => finetune::run(&args, &invoked_from),
        "pretrain" => pretrain::run(&args, &invoked_from),
        "reproduce" => reproduce::run(&args, &invoked_from),
        "report" => report::run(&args, &invoked_from),
        "slurm" => slurm::run(&paths_from_caller(&args, &invoked_from)),
        "slurm-test" => {
            if own_help(&args, slurm_test::USAGE)? {
                return Ok(());
            }
            slurm_test::run(&project_root()).map(|_| ())
        }
        "gpu-check" => {
            if own_help(&args, gpu_check::USAGE)? {
                return Ok(());
            }
            gpu_check::run()
        }
        "env" => {
            if own_help(&args, "cargo xtask env\n  print the environment xtask gives to cargo (no flags)")? {
                return Ok(());
            }
            let libtorch = setup::ensure()?;
            for (key, value) in libtorch.cargo_env() {
                println!("export {key}={value:?}");
            }
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{}", usage()),
    }
}

/// xtask's usage text, with the PyTorch version it installs.
fn usage() -> String {
    USAGE.replace("{torch}", setup::TORCH_VERSION)
}

fn is_help(arg: &str) -> bool {
    arg == "-h" || arg == "--help"
}

/// For a command of xtask's own that takes no arguments: prints `usage` and says so on `--help`,
/// fails on anything else.
fn own_help(args: &[String], usage: &str) -> Result<bool> {
    match args.first() {
        None => Ok(false),
        Some(arg) if is_help(arg) => {
            println!("usage: {usage}");
            Ok(true)
        }
        Some(extra) => bail!("unexpected argument `{extra}`\nusage: {usage}"),
    }
}

/// The checkout `cargo xtask` was invoked in: `cargo run` sets `CARGO_MANIFEST_DIR` for the process
/// it starts, which is right even when another checkout sharing `CARGO_TARGET_DIR` built this
/// binary last (the compile-time value would then point at that other checkout and build its code).
fn project_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `$CARGO` as cargo gave it to us (so the same toolchain builds everything), with libtorch's
/// environment set.
fn cargo(libtorch: &setup::Libtorch) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.envs(libtorch.cargo_env());
    command
}

/// `cargo run --release` of the `bench-suite` binary's `subcommand` (quiet: its own output is the
/// point), with libtorch's environment.
fn bench_suite_release(libtorch: &setup::Libtorch, subcommand: &str) -> Command {
    let mut command = cargo(libtorch);
    command.args(["run", "--quiet", "--release", "--package", "bench-suite", "--bin", "bench-suite", "--", subcommand]);
    command
}

/// The release `bench-suite` binary that [`build_bench_suite_release`] builds (under
/// `CARGO_TARGET_DIR` when it is set).
fn release_binary(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
    target.join("release/bench-suite")
}

/// `cargo build --release` of the `bench-suite` binary (for commands that run it themselves).
fn build_bench_suite_release(libtorch: &setup::Libtorch) -> Result<()> {
    run_checked(cargo(libtorch).args(["build", "--release", "--package", "bench-suite", "--bin", "bench-suite"]))
}

/// The path flags of the binaries xtask forwards to: their values are made relative to the folder
/// the user typed the command in (xtask itself runs from the project root).
const PATH_FLAGS: [&str; 7] = ["--mirror", "--run-dir", "--out", "--spec", "--runs", "--compare", "--json"];

/// Whether the value of `flag` is a path to resolve: always for [`PATH_FLAGS`], and in some forms
/// for two flags: `--model ./folder` (a local checkpoint; a manifest id or `org/name@commit` is
/// not a path) and `--task file.yaml` (a task file; a task's name is not a path).
fn is_path_value(flag: &str, value: &str) -> bool {
    match flag {
        "--model" => value.starts_with("./") || value.starts_with("../"),
        "--task" => value.ends_with(".yaml") || value.ends_with(".yml"),
        _ => PATH_FLAGS.contains(&flag),
    }
}

/// The arguments with the values of path flags (`--out DIR` or `--out=DIR`) resolved against
/// `invoked_from`.
fn paths_from_caller(args: &[String], invoked_from: &Path) -> Vec<String> {
    let resolve = |value: &str| invoked_from.join(value).display().to_string();
    let mut resolved = Vec::with_capacity(args.len());
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        if let Some((flag, value)) = arg.split_once('=')
            && is_path_value(flag, value)
        {
            resolved.push(format!("{flag}={}", resolve(value)));
            continue;
        }
        resolved.push(arg.clone());
        if let Some(value) = args.peek()
            && arg.starts_with("--")
            && is_path_value(arg, value)
        {
            resolved.push(resolve(value));
            args.next();
        }
    }
    resolved
}

/// The value of `flag` (`--flag VALUE` or `--flag=VALUE`; the last one given wins).
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut value = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == flag {
            value = args.next().cloned();
        } else if let Some(rest) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            value = Some(rest.to_owned());
        }
    }
    value
}

/// Runs a command, echoing it first, and fails with its exit status ([`ChildFailed`]). SIGTERM
/// and SIGINT that reach xtask while it runs go to the command, and xtask waits for it: a
/// scheduler's SIGTERM to `cargo xtask reproduce` stops the training after its step, as it
/// would stop `bench-suite` itself (xtask used to die at once and leave its child training).
fn run_checked(command: &mut Command) -> Result<()> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {shown}");
    let signals = Forwarded::register().context("install the SIGTERM and SIGINT handlers")?;
    let mut child = command.spawn().with_context(|| format!("start `{shown}`"))?;
    let status = signals.wait(&mut child).with_context(|| format!("wait for `{shown}`"))?;
    if !status.success() {
        return Err(ChildFailed { shown, status }.into());
    }
    Ok(())
}

/// A command xtask ran that did not succeed; xtask exits with its status (`128 + N` for a command
/// signal N ended), without a backtrace: the command has said what went wrong.
#[derive(Debug)]
struct ChildFailed {
    shown: String,
    status: std::process::ExitStatus,
}

impl ChildFailed {
    /// The exit code a shell would report for the command.
    fn code(&self) -> u8 {
        use std::os::unix::process::ExitStatusExt;
        let code = self.status.code().or_else(|| self.status.signal().map(|signal| 128 + signal)).unwrap_or(1);
        u8::try_from(code).unwrap_or(1)
    }
}

impl std::fmt::Display for ChildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` failed ({})", self.shown, self.status)
    }
}

impl std::error::Error for ChildFailed {}

/// SIGTERM and SIGINT caught while a command runs, to be passed on to it.
struct Forwarded {
    flags: Vec<(i32, std::sync::Arc<std::sync::atomic::AtomicBool>, signal_hook::SigId)>,
}

impl Forwarded {
    /// Catches SIGTERM and SIGINT (xtask no longer dies of them) until dropped.
    fn register() -> std::io::Result<Forwarded> {
        let mut flags = Vec::new();
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let id = signal_hook::flag::register(signal, std::sync::Arc::clone(&flag))?;
            flags.push((signal, flag, id));
        }
        Ok(Forwarded { flags })
    }

    /// Waits for `child`, sending it every caught signal (a Ctrl-C reaches the child from the
    /// terminal as well: a second SIGINT changes nothing for a process the first one ends).
    fn wait(&self, child: &mut std::process::Child) -> std::io::Result<std::process::ExitStatus> {
        loop {
            for (signal, flag, _) in &self.flags {
                if flag.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
                    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
                    unsafe { libc::kill(pid, *signal) };
                }
            }
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        for (_, _, id) in &self.flags {
            signal_hook::low_level::unregister(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::{ChildFailed, Forwarded, flag_value, paths_from_caller};

    /// `../shared/cases3/32`: a SIGTERM to xtask (a real one, to this process) reaches the command
    /// it runs, which stops in its own way; xtask waits and reports the command's own status.
    #[test]
    fn a_sigterm_to_xtask_reaches_its_command_and_xtask_waits_for_it() {
        let signals = Forwarded::register().unwrap();
        let script = "trap 'echo stopped after its step; exit 143' TERM; echo ready; while :; do sleep 0.05; done";
        let mut child = Command::new("sh").args(["-c", script]).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        // SAFETY: a signal to this test process, whose SIGTERM `signals` catches.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
        let status = signals.wait(&mut child).unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "stopped after its step\n");
        let failed = ChildFailed { shown: "sh".to_owned(), status };
        assert_eq!(failed.code(), 143);
        // A command that a signal ends (no handler) is reported as a shell would: 128 + N.
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        // SAFETY: as above, SIGINT this time.
        unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        let status = signals.wait(&mut child).unwrap();
        assert_eq!(ChildFailed { shown: "sleep".to_owned(), status }.code(), 130);
    }

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn path_flags_resolve_against_the_callers_folder_in_both_spellings() {
        let resolved =
            paths_from_caller(&args("--preset quick --out runs/x --mirror=../m --offline"), Path::new("/home/u"));
        assert_eq!(resolved, args("--preset quick --out /home/u/runs/x --mirror=/home/u/../m --offline"));
        // A local model folder and a task file are paths; a manifest id and a task name are not.
        let resolved = paths_from_caller(
            &args("--model ./mine --task my-task.yaml --mode said --model=FacebookAI/roberta-base --task=sst2"),
            Path::new("/home/u"),
        );
        assert_eq!(
            resolved,
            args(
                "--model /home/u/./mine --task /home/u/my-task.yaml --mode said --model=FacebookAI/roberta-base --task=sst2"
            )
        );
    }

    /// xtask installs the PyTorch that the crates linking tch say they link (xtask cannot depend
    /// on them, so the two constants are compared here).
    #[test]
    fn the_installed_torch_is_the_one_the_crates_record() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let lib = std::fs::read_to_string(root.join("subspace/src/lib.rs")).unwrap();
        let recorded = lib
            .lines()
            .find_map(|line| line.strip_prefix("pub const TORCH_VERSION: &str = \""))
            .and_then(|rest| rest.strip_suffix("\";"))
            .expect("subspace/src/lib.rs defines TORCH_VERSION");
        assert_eq!(recorded, crate::setup::TORCH_VERSION);
        assert_eq!(crate::setup::torch_wheel(), format!("torch=={recorded}"));
        assert!(super::usage().contains(&format!("torch {} wheel", recorded)) && !super::usage().contains("{torch}"));
    }

    #[test]
    fn flag_values_in_both_spellings_last_wins() {
        let given = args("--preset smoke --out a --out=b --offline");
        assert_eq!(flag_value(&given, "--preset").as_deref(), Some("smoke"));
        assert_eq!(flag_value(&given, "--out").as_deref(), Some("b"));
        assert_eq!(flag_value(&given, "--spec"), None);
        // A flag whose name starts like another is not that flag.
        assert_eq!(flag_value(&args("--outer x"), "--out"), None);
    }
}
