//! The datasets command line: `fetch` (run through `cargo xtask fetch`).

use anyhow::{Result, bail};
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use datasets::{Error, tasks::Task};

const USAGE: &str = "usage: datasets fetch [--mirror DIR]... [--offline] [ASSET...]\n\
                     (no ASSET: every asset of the manifest)";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("fetch") => fetch(args.collect()),
        _ => bail!("{USAGE}"),
    }
}

fn fetch(args: Vec<String>) -> Result<()> {
    let mut config = StoreConfig::from_env()?;
    let mut ids = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--offline" => config.offline = true,
            "--mirror" => match args.next() {
                Some(dir) => config.mirrors.push(dir.into()),
                None => bail!("--mirror needs a folder\n{USAGE}"),
            },
            flag if flag.starts_with('-') => bail!("unknown flag `{flag}`\n{USAGE}"),
            id => ids.push(id.to_owned()),
        }
    }
    let store = Store::new(config, Manifest::embedded())?;
    if ids.is_empty() {
        ids = store.manifest().assets.iter().map(|asset| asset.id.clone()).collect();
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
