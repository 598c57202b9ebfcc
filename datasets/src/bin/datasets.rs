//! The datasets command line: `fetch` and `pin` (run through `cargo xtask fetch` and
//! `cargo xtask pin`, which forward their arguments).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use datasets::{Error, tasks::Task};
use tracing_subscriber::EnvFilter;

/// The datasets and checkpoints of the manifest: fetched, verified, cached.
#[derive(Debug, Parser)]
#[command(name = "datasets", max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring assets into the verified cache (from mirrors first, then the network) and parse
    /// each task's data once.
    Fetch(FetchArgs),
    /// Print manifest entries for hub checkpoints, pinned to the commit each revision names now,
    /// with the size and sha256 (of LFS files) the hub reports. Needs the hub (HF_ENDPOINT).
    Pin(PinArgs),
}

#[derive(Debug, clap::Args)]
struct PinArgs {
    /// Hub repositories, `org/name` or `org/name@<revision>` (a branch, tag or commit; default
    /// `main`).
    #[arg(value_name = "REPO", required = true)]
    repos: Vec<String>,
    /// The description of every entry [default: the repository's name].
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    /// A read-only folder to take files from before the network (repeatable; also
    /// INTRINSIC_BENCH_MIRROR, `:`-separated).
    #[arg(long, value_name = "DIR")]
    mirror: Vec<PathBuf>,
    /// Never touch the network: say what is missing instead.
    #[arg(long)]
    offline: bool,
    /// Manifest asset ids [default: every asset of the manifest but the on-demand corpora].
    #[arg(value_name = "ASSET")]
    ids: Vec<String>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .without_time()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Fetch(args) => fetch(args),
        Command::Pin(args) => pin(args),
    }
}

fn pin(args: PinArgs) -> Result<()> {
    let config = StoreConfig::from_env()?;
    if config.offline {
        bail!("pin asks the hub which commit each revision names: it cannot run offline (INTRINSIC_BENCH_OFFLINE)");
    }
    // Every name is checked before the hub is asked anything.
    let mut repos = Vec::with_capacity(args.repos.len());
    for spec in &args.repos {
        let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
        if !matches!(repo.split('/').collect::<Vec<_>>()[..], [org, name] if !org.is_empty() && !name.is_empty()) {
            bail!("`{spec}`: a hub repository is `org/name` (optionally `@<revision>`)");
        }
        repos.push((repo, revision));
    }
    let store = Store::new(config, Manifest::embedded())?;
    // The entries of the repositories the suite can load go to stdout; the others are refused
    // by name, all of them, after the rest is printed.
    let mut refused = Vec::new();
    for (repo, revision) in repos {
        match store.pin(repo, revision) {
            Ok(pinned) => {
                tracing::info!("{repo}@{revision} is commit {}", pinned.commit);
                let description = args.description.as_deref().unwrap_or(repo);
                println!("{}", datasets::pin::manifest_entry(&pinned, description));
            }
            Err(err) => refused.push(err.to_string()),
        }
    }
    if !refused.is_empty() {
        bail!("{} of {} not pinned:\n  {}", refused.len(), args.repos.len(), refused.join("\n  "));
    }
    Ok(())
}

fn fetch(args: FetchArgs) -> Result<()> {
    let mut config = StoreConfig::from_env()?;
    config.offline |= args.offline;
    config.mirrors.extend(args.mirror);
    let mut ids = args.ids;
    let store = Store::new(config, Manifest::embedded())?;
    if ids.is_empty() {
        ids = store.manifest().assets.iter().filter(|asset| !asset.on_demand).map(|asset| asset.id.clone()).collect();
    }
    // Unknown names fail before anything is fetched.
    for id in &ids {
        store.manifest().asset(id)?;
    }
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for id in &ids {
        match store.ensure(id) {
            Ok(paths) => {
                println!("verified {id} ({})", paths.root.display());
                for (file, origin) in &paths.origins {
                    println!("  {file}: from {origin}");
                }
                if let Some(task) = Task::ALL.into_iter().find(|task| task.asset_id() == id) {
                    let data = task.load(&paths)?;
                    let sizes: Vec<String> =
                        data.splits.iter().map(|(split, examples)| format!("{split} {}", examples.len())).collect();
                    println!("  parsed {}: {}", task.name(), sizes.join(", "));
                }
            }
            Err(Error::Missing(files)) => missing.extend(files),
            Err(err) => failed.push(format!("{id}: {err}")),
        }
    }
    if !missing.is_empty() {
        println!("missing (offline, and not in the cache or a mirror):");
        for file in &missing {
            println!("  {file}");
        }
    }
    if !failed.is_empty() {
        bail!("failed:\n  {}", failed.join("\n  "));
    }
    if !missing.is_empty() {
        bail!("{} file(s) missing: bring them in with a --mirror folder or fetch without --offline", missing.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_is_consistent_and_fetch_help_lists_its_flags() {
        Cli::command().debug_assert();
        let help = Cli::command().find_subcommand_mut("fetch").unwrap().render_long_help().to_string();
        for flag in ["--mirror", "--offline", "[ASSET]"] {
            assert!(help.contains(flag), "{flag}:\n{help}");
        }
    }
}
