//! The manifest of pinned assets (`manifest.yaml`, compiled into the crate) and the lock file of
//! hashes learned on first use (`hashes.lock`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The manifest shipped with the crate.
pub const MANIFEST_YAML: &str = include_str!("../manifest.yaml");

/// Where first-use hashes are recorded by default: beside the manifest, to be committed.
pub fn default_lock_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hashes.lock")
}

/// The manifest of pinned assets, as `manifest.yaml` lays it out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every asset, each id listed once.
    pub assets: Vec<Asset>,
}

/// One asset (a dataset, a checkpoint, a corpus): its files and where they come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// The unique id (e.g. `glue-sst2`, or `org/name@revision` for a hub checkpoint), also the
    /// name of its cache folder, `<home>/assets/<id>/`.
    pub id: String,
    /// A human-readable description of the asset.
    pub description: String,
    /// Files fetched from the Hugging Face hub at a pinned revision.
    #[serde(default)]
    pub hf: Option<HfSource>,
    /// Fetched only when named or needed (a pre-training corpus of tens of GB), never by a
    /// plain `datasets fetch`.
    #[serde(default)]
    pub on_demand: bool,
    /// The files to fetch; empty only for a hub checkpoint whose files the store asks the hub
    /// for ([`Asset::hub_checkpoint`]).
    pub files: Vec<AssetFile>,
}

/// A Hugging Face hub repository at a pinned revision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfSource {
    /// The hub repository, `org/name`.
    pub repo: String,
    /// The pinned commit (40 hex digits): files come from `<endpoint>/<repo>/resolve/<revision>/`.
    pub revision: String,
}

/// One file of an asset as published upstream and, for an archive, the members the suite reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFile {
    /// The file's name: its name in the cache (`files/<name>`) and, for `hf` assets, its path in
    /// the hub repository.
    pub name: String,
    /// Upstream URLs, tried in order (empty for `hf` assets, whose URL is derived).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Size in bytes; `None`: not yet known (learned on first use, recorded in the lock file).
    #[serde(default)]
    pub size: Option<u64>,
    /// `None`: not yet known (trust on first use, recorded in the lock file).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The archive format; `None`: the file is used as published, not unpacked.
    #[serde(default)]
    pub archive: Option<ArchiveKind>,
    /// The archive members the suite reads (empty for a file that is no archive).
    #[serde(default)]
    pub members: Vec<Member>,
}

/// An archive format the store can unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ArchiveKind {
    /// A zip archive (`zip` in the manifest).
    #[serde(rename = "zip")]
    Zip,
    /// A gzip-compressed tar archive (`tar.gz` in the manifest).
    #[serde(rename = "tar.gz")]
    TarGz,
}

/// A member of an archive that the suite reads, unpacked and verified on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member's path inside the archive, also its path under the cache's `unpacked/` folder.
    pub path: String,
    /// Size in bytes; `None`: not yet known (learned on first use, recorded in the lock file).
    #[serde(default)]
    pub size: Option<u64>,
    /// Lowercase hex sha256; `None`: not yet known (trust on first use, recorded in the lock
    /// file).
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Manifest {
    /// The manifest shipped with the crate.
    pub fn embedded() -> Manifest {
        Manifest::parse(MANIFEST_YAML, Path::new("datasets/manifest.yaml")).expect("the shipped manifest is valid")
    }

    /// Parses and checks a manifest; errors name the file and, where known, the line.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, Error> {
        let manifest: Manifest = serde_norway::from_str(text).map_err(|err| Error::Manifest {
            file: file.to_path_buf(),
            message: match err.location() {
                Some(location) => format!("line {}: {err}", location.line()),
                None => err.to_string(),
            },
        })?;
        manifest.check(file)?;
        Ok(manifest)
    }

    fn check(&self, file: &Path) -> Result<(), Error> {
        let invalid = |message: String| Error::Manifest { file: file.to_path_buf(), message };
        let mut seen = std::collections::BTreeSet::new();
        for asset in &self.assets {
            if !seen.insert(asset.id.as_str()) {
                return Err(invalid(format!("asset `{}` is listed twice", asset.id)));
            }
            if asset.files.is_empty() {
                return Err(invalid(format!("asset `{}` has no files", asset.id)));
            }
            for file_entry in &asset.files {
                if asset.hf.is_none() && file_entry.urls.is_empty() {
                    return Err(invalid(format!("asset `{}` file `{}` has no URL", asset.id, file_entry.name)));
                }
                if file_entry.archive.is_none() && !file_entry.members.is_empty() {
                    return Err(invalid(format!(
                        "asset `{}` file `{}` has members but is no archive",
                        asset.id, file_entry.name
                    )));
                }
                let hashes =
                    file_entry.sha256.iter().chain(file_entry.members.iter().filter_map(|m| m.sha256.as_ref()));
                if let Some(bad) = hashes.into_iter().find(|hash| !is_sha256_hex(hash)) {
                    return Err(invalid(format!("asset `{}`: `{bad}` is not a lowercase hex sha256", asset.id)));
                }
            }
        }
        Ok(())
    }

    /// The asset with id `id`.
    ///
    /// # Errors
    /// [`Error::UnknownAsset`], listing the known ids, when the manifest has no such asset.
    pub fn asset(&self, id: &str) -> Result<&Asset, Error> {
        self.assets.iter().find(|asset| asset.id == id).ok_or_else(|| Error::UnknownAsset {
            id: id.to_owned(),
            known: self.assets.iter().map(|asset| asset.id.clone()).collect::<Vec<_>>().join(", "),
        })
    }
}

impl Asset {
    /// A checkpoint of the Hugging Face hub that the manifest does not list, pinned by `repo`
    /// (`org/name`) and a 40-hex commit `revision` (asset id `org/name@revision`). It lists no
    /// files: the store asks the hub which ones the commit has (the weights, `config.json`, the
    /// tokenizer: what [`crate::pin`] pins, with the LFS sha256 of the weights) when it first
    /// fetches them, and reads the names from its lock file afterwards
    /// ([`crate::store::Store::ensure_asset`]).
    ///
    /// # Errors
    /// A repo that is not `org/name`, or a revision that is not a commit (a branch such as `main`
    /// moves, so results on it could not be reproduced): the message says what to give.
    pub fn hub_checkpoint(repo: &str, revision: &str) -> Result<Asset, String> {
        let valid_part = |part: &str| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !part.starts_with('.')
        };
        if !matches!(repo.split('/').collect::<Vec<_>>()[..], [org, name] if valid_part(org) && valid_part(name)) {
            return Err(format!("`{repo}` is not a hub repository (`org/name`)"));
        }
        // One commit, one spelling: the cache folder, the lock and the run keys use lowercase.
        if revision.len() != 40 || !revision.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            return Err(format!(
                "`{repo}@{revision}`: pin a commit, `{repo}@<40 lowercase hex digits>` (the repository's history lists them); \
                 a branch or tag can move, and results on it could not be reproduced"
            ));
        }
        Ok(Asset {
            id: format!("{repo}@{revision}"),
            description: format!("{repo} at {revision} (a hub checkpoint named by a spec or --model)"),
            hf: Some(HfSource { repo: repo.to_owned(), revision: revision.to_owned() }),
            on_demand: false,
            files: Vec::new(),
        })
    }

    /// The URLs of a file: its own, or the hub URL at the pinned revision for `hf` assets.
    pub fn urls(&self, file: &AssetFile, hf_endpoint: &str) -> Vec<String> {
        match &self.hf {
            Some(hf) => {
                vec![format!("{}/{}/resolve/{}/{}", hf_endpoint.trim_end_matches('/'), hf.repo, hf.revision, file.name)]
            }
            None => file.urls.clone(),
        }
    }
}

/// Whether `text` is a sha256 in lowercase hex (64 digits `0-9a-f`).
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Hashes learned on first use, keyed by `<asset id>/<file name>` (or `.../<member path>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashLock {
    /// The locked hashes by key: `<asset id>/<file name>`, or `<asset id>/<archive>:<member path>`
    /// for an archive member.
    pub files: BTreeMap<String, LockedHash>,
}

/// The size and sha256 of one file, as verified on first use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedHash {
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

impl HashLock {
    /// Reads the lock file at `path`; a file that does not exist is an empty lock.
    ///
    /// # Errors
    /// [`Error::Manifest`] for a file that is not a lock file, [`Error::Io`] for one that cannot
    /// be read.
    pub fn load(path: &Path) -> Result<HashLock, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_norway::from_str(&text)
                .map_err(|err| Error::Manifest { file: path.to_path_buf(), message: err.to_string() }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(HashLock::default()),
            Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Records `entry` under `key` in the lock file at `path` and returns the file's whole lock.
    /// Several processes (shards on one cache) may record at once: each holds an exclusive lock
    /// on `<path>.guard` while it reads the file again, adds its entry and replaces the file
    /// through a partial file of its own, so no entry another process recorded is lost.
    ///
    /// # Errors
    /// The file cannot be read, written or guarded, or it already holds `key` with another
    /// sha256 (another process verified a different file under the same name: the message names
    /// both).
    pub fn record(path: &Path, key: &str, entry: LockedHash) -> Result<HashLock, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let guard_path = path.with_extension("lock.guard");
        let guard = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(io(&guard_path))?;
        guard.lock().map_err(io(&guard_path))?;
        let mut lock = HashLock::load(path)?;
        match lock.files.get(key) {
            Some(existing) if existing.sha256 != entry.sha256 => {
                return Err(Error::Manifest {
                    file: path.to_path_buf(),
                    message: format!(
                        "`{key}` is locked with sha256 {} ({} bytes), and this process verified {} ({} bytes): two \
                         different files under one name; remove the wrong one from the cache and the entry from {}",
                        existing.sha256,
                        existing.size,
                        entry.sha256,
                        entry.size,
                        path.display()
                    ),
                });
            }
            _ => {
                lock.files.insert(key.to_owned(), entry);
            }
        }
        let text = format!(
            "# Hashes of files the manifest does not pin (small files of a checkpoint, a corpus), trusted on first\n\
             # verified use, and of the files of hub checkpoints named by commit (which this lock also names).\n{}",
            serde_norway::to_string(&lock).expect("serialisable")
        );
        let partial = path.with_extension(format!("lock.partial.{}", std::process::id()));
        std::fs::write(&partial, text).map_err(io(&partial))?;
        std::fs::rename(&partial, path).map_err(io(path))?;
        Ok(lock)
    }
}
