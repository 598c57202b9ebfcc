//! The sbatch array on a real SLURM cluster, as part of `cargo xtask test`: a throwaway
//! single-node cluster (munged, slurmctld and slurmd of Debian's `slurm-wlm` 22.05 and `munge`,
//! with a generated `slurm.conf`, key, state and logs in a temporary folder, its own ports, and
//! `SLURM_CONF` set for this test's commands only) runs the script `cargo xtask slurm --preset
//! smoke --device cpu --array 2` writes, unchanged. One array task is requeued mid-run (`scontrol
//! requeue`: SLURM sends it SIGTERM, it checkpoints and exits, SLURM starts it again); the test
//! then checks that the results equal a single-process run of the same preset (same searches,
//! same d90s and probes, the same runs) and that every run trained exactly once over both tasks'
//! logs. The daemons are stopped and the folder removed at the end, whatever happened.
//!
//! It never touches a cluster the machine may belong to: it reads and writes no `/etc/slurm`,
//! `/run/munge` or default port, and it refuses to run when its ports are taken. Where the
//! packages are missing it installs them on Debian-based machines when it can (root, apt-get),
//! and otherwise says why it skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{run_checked, slurm};

pub const USAGE: &str = "cargo xtask slurm-test
  a throwaway single-node SLURM cluster (own config, ports 26817/26818, temporary folder) runs the
  smoke preset as a 2-task CPU array from `cargo xtask slurm`'s script, one task requeued mid-run;
  the results must equal one process's, every run trained once (no flags; part of `cargo xtask test`)";

/// The controller's and the node daemon's ports (not SLURM's defaults, 6817 and 6818).
const PORTS: [u16; 2] = [26817, 26818];
const TOOLS: [&str; 7] = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo"];

/// Runs the test; `Ok(false)` when it could not run here (the reason printed).
pub fn run(root: &Path) -> Result<bool> {
    if !tools_present() && !install()? {
        return Ok(false);
    }
    stop_leftovers();
    for port in PORTS {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            bail!("SLURM test: port {port} is taken (another cluster or test?); it runs only on free ports {PORTS:?}");
        }
    }
    let started = Instant::now();
    let folder = std::env::temp_dir().join(format!("intrinsic-bench-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let cluster = Cluster::start(&folder)?;
    let result = check(root, &cluster);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&folder);
    let checked = result?;
    eprintln!("SLURM test passed in {:.0} s: {checked}", started.elapsed().as_secs_f64());
    Ok(true)
}

/// Stops the daemons of an earlier run of this test that was killed before it could (their pid
/// files are in its own folders, `intrinsic-bench-slurm-<pid>` under the temporary folder, whose
/// process is gone), and removes those folders. Nothing else is touched.
fn stop_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name.strip_prefix("intrinsic-bench-slurm-").and_then(|pid| pid.parse::<u32>().ok()) else {
            continue;
        };
        if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        for pid_file in ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"] {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join(pid_file)) {
                let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn tools_present() -> bool {
    TOOLS
        .iter()
        .all(|tool| ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|dir| Path::new(dir).join(tool).exists()))
}

/// Installs `slurm-wlm` and `munge` with apt-get where this is a Debian-based machine and the
/// test runs as root; `Ok(false)` (with the reason) otherwise.
fn install() -> Result<bool> {
    let root = Command::new("id").arg("-u").output().map(|out| out.stdout.starts_with(b"0")).unwrap_or(false);
    if !Path::new("/usr/bin/apt-get").exists() || !root {
        eprintln!("SLURM test skipped: slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)");
        return Ok(false);
    }
    eprintln!("SLURM test: installing slurm-wlm and munge (Debian packages)");
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .or_else(|_| {
        run_checked(Command::new("apt-get").args(["update", "-q"]))?;
        run_checked(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    })?;
    Ok(tools_present())
}

/// A running single-node cluster; dropping it stops its daemons.
struct Cluster {
    folder: PathBuf,
    conf: PathBuf,
    daemons: Vec<Child>,
}

impl Cluster {
    fn start(folder: &Path) -> Result<Cluster> {
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(folder.join(sub))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder.join("munge"), std::fs::Permissions::from_mode(0o700))?;
        let key = folder.join("munge/munge.key");
        let mut bytes = vec![0u8; 1024];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        std::fs::write(&key, &bytes)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        let socket = folder.join("munge/munge.sock");
        let host = String::from_utf8(Command::new("hostname").output()?.stdout)?.trim().to_owned();
        let conf = folder.join("slurm.conf");
        let path = |sub: &str| folder.join(sub).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "ClusterName=intrinsic-bench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={}
SlurmdPort={}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={}
StateSaveLocation={}
SlurmdSpoolDir={}
SlurmctldPidFile={}
SlurmdPidFile={}
SlurmctldLogFile={}
SlurmdLogFile={}
PlugStackConfig={}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
NodeName={host} NodeAddr=127.0.0.1 CPUs={} RealMemory=4000 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
",
                PORTS[0],
                PORTS[1],
                socket.display(),
                path("state"),
                path("spool"),
                path("slurmctld.pid"),
                path("slurmd.pid"),
                path("log/slurmctld.log"),
                path("log/slurmd.log"),
                path("plugstack.conf"),
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        )?;
        std::fs::write(folder.join("plugstack.conf"), "")?;
        let mut cluster = Cluster { folder: folder.to_path_buf(), conf: conf.clone(), daemons: Vec::new() };
        let spawn = |command: &mut Command| -> Result<Child> {
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("start {:?}", command.get_program()))
        };
        cluster.daemons.push(spawn(Command::new("munged").args([
            "--foreground",
            "--force",
            &format!("--key-file={}", key.display()),
            &format!("--socket={}", socket.display()),
            &format!("--pid-file={}", folder.join("munge/munged.pid").display()),
            &format!("--log-file={}", folder.join("log/munged.log").display()),
            &format!("--seed-file={}", folder.join("munge/munged.seed").display()),
        ]))?);
        wait_for("munged's socket", Duration::from_secs(20), || socket.exists())?;
        cluster.daemons.push(spawn(Command::new("slurmctld").arg("-D").arg("-f").arg(&conf))?);
        cluster.daemons.push(spawn(Command::new("slurmd").arg("-D").arg("-f").arg(&conf))?);
        wait_for("the node to be idle", Duration::from_secs(60), || {
            cluster.client("sinfo").args(["-h", "-o", "%t"]).output().is_ok_and(|out| out.stdout.starts_with(b"idle"))
        })
        .with_context(|| format!("the cluster did not start; logs in {}", folder.join("log").display()))?;
        Ok(cluster)
    }

    /// A SLURM client command on this cluster only.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.client("scancel").arg("--full").arg("--name=intrinsic-smoke").status();
        for daemon in self.daemons.iter_mut().rev() {
            // SIGTERM first: the daemons remove their sockets and pid files.
            let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && daemon.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = &self.folder;
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            bail!("waited {} s for {what}", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The smoke preset as a 2-task CPU array with one task requeued mid-run, against one process.
fn check(root: &Path, cluster: &Cluster) -> Result<String> {
    let single = cluster.folder.join("single");
    let array = cluster.folder.join("array");
    let binary = crate::release_binary(root);
    // `cargo xtask slurm` builds the release binary and checks the preset, as a user's would.
    let args: Vec<String> =
        ["--preset", "smoke", "--device", "cpu", "--array", "2", "--cpus-per-task", "1", "--time", "20"]
            .iter()
            .map(|arg| (*arg).to_owned())
            .chain(["--out".to_owned(), array.display().to_string()])
            .collect();
    slurm::run(&args)?;
    let script = array.join("smoke.sbatch");
    run_checked(
        Command::new(&binary)
            .args(["reproduce", "--preset", "smoke", "--device", "cpu", "--out"])
            .arg(&single)
            .stdout(Stdio::null()),
    )?;

    let submitted = cluster.client("sbatch").arg(&script).output().context("sbatch")?;
    let text = String::from_utf8_lossy(&submitted.stdout).into_owned();
    let job = text
        .trim()
        .strip_prefix("Submitted batch job ")
        .with_context(|| format!("sbatch refused the script: {}{text}", String::from_utf8_lossy(&submitted.stderr)))?
        .to_owned();
    // Requeue task 0 while it trains: once a run of it has written a checkpoint.
    let running = |task: &str| {
        cluster
            .client("squeue")
            .args(["-h", "-j", &format!("{job}_{task}"), "-o", "%T"])
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"RUNNING"))
    };
    let has_checkpoint = || {
        std::fs::read_dir(array.join("work"))
            .map(|dirs| dirs.filter_map(Result::ok).any(|dir| dir.path().join("state.json").exists()))
            .unwrap_or(false)
    };
    wait_for("task 0 to train", Duration::from_secs(300), || running("0") && has_checkpoint())?;
    run_checked(cluster.client("scontrol").args(["requeue", &format!("{job}_0")]))?;
    wait_for("the array to finish", Duration::from_secs(1200), || {
        cluster.client("squeue").args(["-h", "-j", &job]).output().is_ok_and(|out| out.stdout.is_empty())
    })?;

    let logs: Vec<String> = std::fs::read_dir(array.join("slurm"))?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "out"))
        .map(|entry| std::fs::read_to_string(entry.path()))
        .collect::<std::io::Result<_>>()?;
    let starts: usize = logs.iter().map(|log| log.matches("smoke: 1 searches (shard").count()).sum();
    if starts < 3 {
        bail!("expected 3 task starts (2 tasks, one requeued) in the logs, found {starts}:\n{}", logs.join("\n"));
    }
    // Every run trained exactly once over both tasks (a requeued run resumes, it does not retrain
    // from scratch under a second result).
    let mut trained: BTreeMap<String, usize> = BTreeMap::new();
    for line in logs.iter().flat_map(|log| log.lines()) {
        if line.ends_with(" s)") && line.contains(": best ") {
            *trained.entry(line.trim().split(": best ").next().unwrap_or("").to_owned()).or_default() += 1;
        }
    }
    if let Some((run, count)) = trained.iter().find(|(_, count)| **count != 1) {
        bail!("run {run} trained {count} times over the array's tasks");
    }
    let (single_searches, single_runs) = records(&single)?;
    let (array_searches, array_runs) = records(&array)?;
    if array_runs != single_runs {
        bail!("the array's runs differ from one process's: {array_runs:?} vs {single_runs:?}");
    }
    if trained.len() != single_runs.len() {
        bail!("{} runs trained in the array, {} in one process", trained.len(), single_runs.len());
    }
    if array_searches != single_searches {
        bail!("the array's searches differ from one process's:\n{array_searches:#?}\nvs\n{single_searches:#?}");
    }
    Ok(format!(
        "2-task CPU array of the smoke preset, task 0 requeued mid-run; {} searches and {} runs equal to one \
         process's, each run trained once",
        single_searches.len(),
        single_runs.len()
    ))
}

/// What must agree between two results folders: each search's outcome and probes (by key), and
/// each run's key with its best score and evaluations.
type Searches = BTreeMap<String, (serde_json::Value, serde_json::Value)>;
type Runs = BTreeSet<(String, String)>;

fn records(folder: &Path) -> Result<(Searches, Runs)> {
    let read = |sub: &str| -> Result<Vec<serde_json::Value>> {
        let mut values = Vec::new();
        for entry in std::fs::read_dir(folder.join(sub)).with_context(|| format!("{}", folder.join(sub).display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                values.push(
                    serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{}", path.display()))?,
                );
            }
        }
        Ok(values)
    };
    let searches = read("searches")?
        .into_iter()
        .map(|search| (search["key"].to_string(), (search["outcome"].clone(), search["probes"].clone())))
        .collect();
    let runs = read("runs")?
        .into_iter()
        .map(|run| (run["key"].to_string(), format!("{} {}", run["best_score"], run["result"]["evaluations"])))
        .collect();
    Ok((searches, runs))
}
