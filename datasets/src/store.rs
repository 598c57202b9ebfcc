//! The verified asset cache, mirrors and downloads.
//!
//! Layout under `<home>/assets/<asset id>/`: `files/<name>` for files as published (archives
//! included) and `unpacked/<member path>` for archive members. Every verified file has a sidecar
//! `<file>.sha256` (`<sha256> <size>`), written only after hashing its content; a file without one
//! is hashed again, so a cache copied to another machine just works.
//!
//! Where a file comes from, in order: the cache; a mirror (read-only folders searched by size and
//! sha256, whatever the path inside them; a file is used only when both match the manifest); the
//! network (unless offline). Downloads stream into `<file>.partial` while hashing (the hash of what
//! is already there is carried across attempts, or computed once for a partial file left by an
//! earlier process), resume with an
//! HTTP Range request after a broken connection, retry connection errors and 5xx with backoff,
//! and are renamed into place only after size and hash are checked. A file that fails its hash is
//! moved to `<home>/assets/quarantine/` and never left where it would be trusted.
//!
//! Archives: when every member the suite reads has a known hash and all are in the cache or a
//! mirror, the archive itself is never needed; otherwise it is fetched and the members are
//! unpacked and verified (members without a pinned hash are trusted on first use and recorded in
//! the lock file, with a warning).

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::manifest::{Asset, AssetFile, HashLock, LockedHash, Manifest, Member};
use crate::{Error, Mismatch, io_error, unpack};

/// How a [`Store`] behaves; [`StoreConfig::from_env`] reads the usual environment.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The cache folder (`INTRINSIC_BENCH_HOME`); assets live under `<home>/assets/`.
    pub home: PathBuf,
    /// Read-only folders searched for files by size and sha256 (`INTRINSIC_BENCH_MIRROR`).
    pub mirrors: Vec<PathBuf>,
    /// Never use the network: a file in neither the cache nor a mirror is an [`Error::Missing`].
    pub offline: bool,
    /// The HF hub endpoint for `hf` assets and the model API (`HF_ENDPOINT`, default
    /// `https://huggingface.co`).
    pub hf_endpoint: String,
    /// The lock file of hashes learned on first use: `INTRINSIC_BENCH_HASHES_LOCK`, else
    /// `hashes.lock` beside the manifest.
    pub lock_path: PathBuf,
    /// Attempts per URL (connection errors, 5xx, truncated bodies).
    pub attempts: u32,
    /// First backoff; doubled after each failed attempt.
    pub backoff: Duration,
    /// The longest wait for the next bytes of a response.
    pub read_timeout: Duration,
}

impl StoreConfig {
    /// `INTRINSIC_BENCH_HOME` (default `${XDG_CACHE_HOME:-$HOME/.cache}/intrinsic-bench`),
    /// `INTRINSIC_BENCH_MIRROR` (folders separated by `:`), `HF_ENDPOINT`.
    pub fn from_env() -> Result<StoreConfig, Error> {
        let home = match std::env::var_os("INTRINSIC_BENCH_HOME").filter(|value| !value.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => match std::env::var_os("XDG_CACHE_HOME").filter(|value| !value.is_empty()) {
                Some(xdg) => PathBuf::from(xdg).join("intrinsic-bench"),
                None => match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
                    Some(home) => PathBuf::from(home).join(".cache").join("intrinsic-bench"),
                    None => {
                        return Err(Error::Io {
                            path: PathBuf::from("$HOME"),
                            source: std::io::Error::other("set INTRINSIC_BENCH_HOME to a cache folder"),
                        });
                    }
                },
            },
        };
        let mirrors = std::env::var("INTRINSIC_BENCH_MIRROR")
            .map(|value| value.split(':').filter(|part| !part.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        Ok(StoreConfig {
            home,
            mirrors,
            offline: false,
            hf_endpoint: std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_owned()),
            lock_path: std::env::var_os("INTRINSIC_BENCH_HASHES_LOCK")
                .filter(|value| !value.is_empty())
                .map_or_else(crate::manifest::default_lock_path, PathBuf::from),
            attempts: 5,
            backoff: Duration::from_secs(1),
            read_timeout: Duration::from_secs(60),
        })
    }
}

/// Where a verified file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Already verified in the cache.
    Cache,
    /// Copied from this mirror file.
    Mirror(PathBuf),
    /// Downloaded from this URL.
    Network(String),
    /// Unpacked from an archive that came from the given origin.
    Archive(Box<Origin>),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Cache => write!(f, "cache"),
            Origin::Mirror(path) => write!(f, "mirror {}", path.display()),
            Origin::Network(url) => write!(f, "{url}"),
            Origin::Archive(origin) => write!(f, "archive from {origin}"),
        }
    }
}

/// A file that is not available offline, with where to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// The id of the asset the file belongs to.
    pub asset: String,
    /// The file's name in the manifest (an archive's, when members of it are needed).
    pub file: String,
    /// The URLs to download it from.
    pub urls: Vec<String>,
}

impl fmt::Display for MissingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} / {}: download {} (or put it in a --mirror folder)",
            self.asset,
            self.file,
            self.urls.join(" or ")
        )
    }
}

/// The verified files of one asset.
#[derive(Debug, Clone)]
pub struct AssetPaths {
    /// The asset id.
    pub id: String,
    /// The asset's cache folder, `<home>/assets/<asset id>/`.
    pub root: PathBuf,
    /// One line per file or member: what it is and where it came from.
    pub origins: Vec<(String, Origin)>,
}

impl AssetPaths {
    /// A file as published (not an archive member).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join("files").join(name)
    }

    /// An archive member.
    pub fn member(&self, path: &str) -> PathBuf {
        self.root.join("unpacked").join(path)
    }
}

/// The verified asset cache: brings an asset's files from the cache, a mirror or the network
/// and checks them against the manifest and the lock file (see the module documentation).
pub struct Store {
    config: StoreConfig,
    manifest: Manifest,
    client: reqwest::blocking::Client,
    lock: Mutex<HashLock>,
    /// (size, path) of every mirror file, built on first use.
    mirror_index: Mutex<Option<Vec<(u64, PathBuf)>>>,
    mirror_hashes: Mutex<HashMap<PathBuf, String>>,
    warnings: Mutex<Vec<String>>,
}

/// What a wanted file must be.
struct Wanted<'a> {
    asset: &'a str,
    /// Name in messages and in the lock file: `<file>` or `<archive>:<member>`.
    label: String,
    size: Option<u64>,
    sha256: Option<String>,
    path: PathBuf,
}

impl Store {
    /// A store of `manifest`'s assets with `config`'s cache, mirrors and lock file (read now).
    ///
    /// # Errors
    /// The lock file cannot be read or parsed, or the HTTP client cannot be built.
    pub fn new(config: StoreConfig, manifest: Manifest) -> Result<Store, Error> {
        let lock = HashLock::load(&config.lock_path)?;
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(config.read_timeout)
            .user_agent(concat!("intrinsic-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Io { path: PathBuf::from("<http client>"), source: std::io::Error::other(err) })?;
        Ok(Store {
            config,
            manifest,
            client,
            lock: Mutex::new(lock),
            mirror_index: Mutex::new(None),
            mirror_hashes: Mutex::new(HashMap::new()),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The manifest the store serves.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Warnings printed so far (trust on first use, wrong files in mirrors).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings.lock().unwrap().push(message);
    }

    /// The cache folder (`INTRINSIC_BENCH_HOME`).
    pub fn home(&self) -> &Path {
        &self.config.home
    }

    /// A short identity of an asset's content for result signatures: the pinned Hugging Face
    /// revision (7 hex digits) for checkpoints, else the first 8 hex digits of its first file's
    /// sha256 (from the manifest, or from the lock file once trusted on first use).
    pub fn content_id(&self, id: &str) -> Result<String, Error> {
        let asset = self.manifest.asset(id)?;
        if let Some(hf) = &asset.hf {
            return Ok(hf.revision.chars().take(7).collect());
        }
        let file = asset.files.first().ok_or_else(|| Error::Manifest {
            file: PathBuf::from("manifest.yaml"),
            message: format!("asset `{id}` has no files"),
        })?;
        let locked = self.lock.lock().unwrap().files.get(&format!("{id}/{}", file.name)).map(|l| l.sha256.clone());
        let sha256 = file.sha256.clone().or(locked).unwrap_or_else(|| "unverified".to_owned());
        Ok(sha256.chars().take(8).collect())
    }

    /// The cache folder of asset `id`, `<home>/assets/<id>/` (whether or not it exists yet).
    pub fn asset_root(&self, id: &str) -> PathBuf {
        self.config.home.join("assets").join(id)
    }

    /// Makes every file of an asset available and verified, from the cache, a mirror or the
    /// network; offline, a missing file is an [`Error::Missing`] naming it and its URLs.
    pub fn ensure(&self, id: &str) -> Result<AssetPaths, Error> {
        self.ensure_asset(self.manifest.asset(id)?)
    }

    /// [`Store::ensure`] for an asset that need not be in the manifest (a hub checkpoint named by
    /// a spec, [`Asset::hub_checkpoint`]): the same cache, mirrors, verification and lock file.
    ///
    /// A hub asset without files ([`Asset::hub_checkpoint`]) gets its files first: the names its
    /// lock entries record (a checkpoint fetched before, also offline), else what the hub's model
    /// API lists at the commit ([`Store::pin`]), else, offline, the three files HF looks for
    /// first (`config.json`, `model.safetensors`, `tokenizer.json`), or those a commit of
    /// `datasets/hub-revisions.tsv` holds ([`crate::pin::published_files`]), which a missing-file
    /// error then names. A listed commit without a tokenizer the suite reads is refused first.
    pub fn ensure_asset(&self, asset: &Asset) -> Result<AssetPaths, Error> {
        let listed;
        let asset = match &asset.hf {
            Some(hf) if asset.files.is_empty() => {
                listed =
                    Asset { files: self.hub_checkpoint_files(&asset.id, &hf.repo, &hf.revision)?, ..asset.clone() };
                &listed
            }
            _ => asset,
        };
        let id = asset.id.as_str();
        let mut paths = AssetPaths { id: id.to_owned(), root: self.asset_root(id), origins: Vec::new() };
        let mut missing = Vec::new();
        for file in &asset.files {
            match self.ensure_file(asset, file, &paths) {
                Ok(origins) => paths.origins.extend(origins),
                Err(Error::Missing(mut files)) => missing.append(&mut files),
                Err(err) => return Err(err),
            }
        }
        if !missing.is_empty() {
            return Err(Error::Missing(missing));
        }
        Ok(paths)
    }

    /// The files of `asset` that [`Store::ensure_asset`] would have to download: neither verified
    /// in the cache nor found in a mirror (an archive counts as available when each member it is
    /// wanted for is). Nothing is copied, unpacked or downloaded, so a check can name tens of GB
    /// still to fetch (C4's shards) without fetching them; as in [`Store::ensure_asset`], a cached
    /// file without its sidecar is hashed once and the sidecar written. `asset.files` as given: a
    /// hub checkpoint's list is not looked up here.
    ///
    /// # Errors
    /// A cached or mirrored file cannot be read.
    pub fn unavailable(&self, asset: &Asset) -> Result<Vec<MissingFile>, Error> {
        let paths = AssetPaths { id: asset.id.clone(), root: self.asset_root(&asset.id), origins: Vec::new() };
        let here = |wanted: &Wanted| -> Result<bool, Error> {
            Ok(self.is_verified(wanted)? || self.find_in_mirror(wanted)?.is_some())
        };
        let mut missing = Vec::new();
        for file in &asset.files {
            let mut members_here = file.archive.is_some();
            for member in &file.members {
                if !members_here {
                    break;
                }
                members_here = here(&self.member_wanted(asset, file, member, &paths))?;
            }
            if members_here {
                continue;
            }
            let wanted = self.wanted(asset, &file.name, file.size, file.sha256.clone(), paths.file(&file.name));
            if !here(&wanted)? {
                missing.push(MissingFile {
                    asset: asset.id.clone(),
                    file: file.name.clone(),
                    urls: asset.urls(file, &self.config.hf_endpoint),
                });
            }
        }
        Ok(missing)
    }

    /// The files of the hub checkpoint `id` (`repo` at commit `revision`); see
    /// [`Store::ensure_asset`].
    fn hub_checkpoint_files(&self, id: &str, repo: &str, revision: &str) -> Result<Vec<AssetFile>, Error> {
        let file = |name: &str, size: Option<u64>, sha256: Option<String>| AssetFile {
            name: name.to_owned(),
            urls: Vec::new(),
            size,
            sha256,
            archive: None,
            members: Vec::new(),
        };
        let prefix = format!("{id}/");
        let locked: Vec<String> = self
            .lock
            .lock()
            .unwrap()
            .files
            .keys()
            .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
            .collect();
        let has = |names: &[&str]| names.iter().any(|name| locked.iter().any(|locked| locked == name));
        if has(&["config.json"])
            && has(&["model.safetensors", "pytorch_model.bin"])
            && has(&["tokenizer.json", "vocab.txt"])
        {
            // Sizes and hashes come from the lock when each file is wanted.
            return Ok(locked.iter().map(|name| file(name, None, None)).collect());
        }
        // A commit of `datasets/hub-revisions.tsv`: refused before any fetch when it holds no
        // tokenizer the suite reads; offline, its listed files are the ones to fetch.
        let listed = crate::pin::published_files(repo, revision).transpose()?;
        if self.config.offline
            && let Some(names) = listed
        {
            return Ok(names.into_iter().map(|name| file(name, None, None)).collect());
        }
        if self.config.offline {
            // Never fetched: the missing-file error names the files HF looks for first (which
            // the hub's model API would replace by what the commit has, online).
            self.warn(format!(
                "`{id}` was never fetched: offline, its files are assumed to be config.json, model.safetensors and \
                 tokenizer.json; run once online (the hub's model API lists what the commit has) to fetch and lock them"
            ));
            return Ok(["config.json", "model.safetensors", "tokenizer.json"]
                .into_iter()
                .map(|name| file(name, None, None))
                .collect());
        }
        let mut pinned = self.pin(repo, revision)?;
        if pinned.commit != revision {
            return Err(Error::Pin(crate::pin::PinError::Hub {
                repo: repo.to_owned(),
                revision: revision.to_owned(),
                message: format!("the hub answered for commit {}, not the one asked for", pinned.commit),
            }));
        }
        // The tokenizer file that makes the lock's list complete (above) is fetched last: a fetch
        // that stops early (a failed download, a kill) leaves the list incomplete, so the next
        // run asks the hub again rather than going on without `tokenizer_config.json`.
        pinned.files.sort_by_key(|pinned| ["tokenizer.json", "vocab.txt"].contains(&pinned.name.as_str()));
        Ok(pinned.files.into_iter().map(|pinned| file(&pinned.name, pinned.size, pinned.sha256)).collect())
    }

    /// Asks the hub's model API which commit `revision` of `repo` names now and which files the
    /// suite reads there ([`crate::pin`]).
    ///
    /// # Errors
    /// Offline; the API cannot be reached or answers an error (a private or missing repository,
    /// an unknown revision); an answer [`crate::pin::pin_from_info`] refuses.
    pub fn pin(&self, repo: &str, revision: &str) -> Result<crate::pin::HubPin, Error> {
        let url = crate::pin::api_url(&self.config.hf_endpoint, repo, revision);
        let error = |message: String| {
            Error::Pin(crate::pin::PinError::Hub { repo: repo.to_owned(), revision: revision.to_owned(), message })
        };
        if self.config.offline {
            return Err(error(format!("offline: the hub's model API ({url}) says which files the commit has")));
        }
        // Connection errors and 5xx are retried with backoff, as downloads are; a 4xx is an answer.
        let mut backoff = self.config.backoff;
        let mut last_failure = String::new();
        for attempt in 1..=self.config.attempts.max(1) {
            if attempt > 1 {
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            let response = match self.client.get(&url).send() {
                Ok(response) => response,
                Err(err) => {
                    last_failure = err.to_string();
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() {
                last_failure = format!("the hub answered {status}");
                continue;
            }
            if !status.is_success() {
                return Err(error(format!(
                    "{url}: the hub answered {status} (a private or missing repository, or an unknown revision)"
                )));
            }
            match response.text() {
                Ok(text) => return Ok(crate::pin::pin_from_info(repo, revision, &text)?),
                Err(err) => last_failure = err.to_string(),
            }
        }
        Err(error(format!("{url}: {} attempts failed, last: {last_failure}", self.config.attempts.max(1))))
    }

    fn ensure_file(&self, asset: &Asset, file: &AssetFile, paths: &AssetPaths) -> Result<Vec<(String, Origin)>, Error> {
        let wanted_file = self.wanted(asset, &file.name, file.size, file.sha256.clone(), paths.file(&file.name));
        if file.archive.is_none() {
            let origin = self.obtain(&wanted_file, &asset.urls(file, &self.config.hf_endpoint))?;
            return Ok(vec![(file.name.clone(), origin)]);
        }

        let members: Vec<Wanted> =
            file.members.iter().map(|member| self.member_wanted(asset, file, member, paths)).collect();
        // Members already verified in the cache, or all available from mirrors: no archive needed.
        if let Some(origins) = self.members_without_archive(&members)? {
            return Ok(origins);
        }
        let archive_origin = self.obtain(&wanted_file, &asset.urls(file, &self.config.hf_endpoint))?;
        let kind = file.archive.expect("checked above");
        let staging = paths.root.join("unpacked.partial");
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
        }
        let member_paths: Vec<&str> = file.members.iter().map(|member| member.path.as_str()).collect();
        unpack::unpack_members(&wanted_file.path, kind, &member_paths, &staging)?;
        let mut origins = Vec::new();
        for (member, wanted) in file.members.iter().zip(&members) {
            let extracted = staging.join(&member.path);
            self.accept(wanted, &extracted, &format!("{}", Origin::Archive(Box::new(archive_origin.clone()))), None)?;
            if let Some(parent) = wanted.path.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            fs::rename(&extracted, &wanted.path).map_err(io_error(&wanted.path))?;
            let sidecar_from = sidecar(&extracted);
            fs::rename(&sidecar_from, sidecar(&wanted.path)).map_err(io_error(&sidecar_from))?;
            origins.push((wanted.label.clone(), Origin::Archive(Box::new(archive_origin.clone()))));
        }
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
        Ok(origins)
    }

    fn wanted<'a>(
        &self,
        asset: &'a Asset,
        label: &str,
        size: Option<u64>,
        sha256: Option<String>,
        path: PathBuf,
    ) -> Wanted<'a> {
        let key = format!("{}/{label}", asset.id);
        let locked = self.lock.lock().unwrap().files.get(&key).cloned();
        Wanted {
            asset: &asset.id,
            label: label.to_owned(),
            size: size.or(locked.as_ref().map(|locked| locked.size)),
            sha256: sha256.or(locked.map(|locked| locked.sha256)),
            path,
        }
    }

    fn member_wanted<'a>(&self, asset: &'a Asset, file: &AssetFile, member: &Member, paths: &AssetPaths) -> Wanted<'a> {
        let label = format!("{}:{}", file.name, member.path);
        self.wanted(asset, &label, member.size, member.sha256.clone(), paths.member(&member.path))
    }

    fn members_without_archive(&self, members: &[Wanted]) -> Result<Option<Vec<(String, Origin)>>, Error> {
        let mut origins = Vec::new();
        for member in members {
            if self.is_verified(member)? {
                origins.push((member.label.clone(), Origin::Cache));
                continue;
            }
            match self.copy_from_mirror(member)? {
                Some(origin) => origins.push((member.label.clone(), origin)),
                None => return Ok(None),
            }
        }
        Ok(Some(origins))
    }

    /// Cache, then mirrors, then the network.
    fn obtain(&self, wanted: &Wanted, urls: &[String]) -> Result<Origin, Error> {
        if self.is_verified(wanted)? {
            return Ok(Origin::Cache);
        }
        if let Some(origin) = self.copy_from_mirror(wanted)? {
            return Ok(origin);
        }
        if self.config.offline {
            return Err(Error::Missing(vec![MissingFile {
                asset: wanted.asset.to_owned(),
                file: wanted.label.clone(),
                urls: urls.to_vec(),
            }]));
        }
        self.download(wanted, urls)
    }

    /// A verified file is in place: its sidecar matches its size and the expected hash, or its
    /// content hashes to it (then the sidecar is written).
    fn is_verified(&self, wanted: &Wanted) -> Result<bool, Error> {
        let Ok(metadata) = fs::metadata(&wanted.path) else { return Ok(false) };
        if wanted.size.is_some_and(|size| size != metadata.len()) {
            return Ok(false);
        }
        let Some(expected) = &wanted.sha256 else {
            // Unknown hash, yet a file is in place: it was accepted on first use only if a sidecar
            // says so (the lock file then knows it too, so this is a leftover).
            return Ok(false);
        };
        if let Ok(text) = fs::read_to_string(sidecar(&wanted.path))
            && text.split_whitespace().collect::<Vec<_>>() == [expected.as_str(), &metadata.len().to_string()]
        {
            return Ok(true);
        }
        let actual = sha256_file(&wanted.path)?;
        if &actual == expected {
            write_sidecar(&wanted.path, &actual, metadata.len())?;
            return Ok(true);
        }
        Ok(false)
    }

    fn copy_from_mirror(&self, wanted: &Wanted) -> Result<Option<Origin>, Error> {
        let Some(path) = self.find_in_mirror(wanted)? else { return Ok(None) };
        self.copy_verified(&path, wanted)?;
        Ok(Some(Origin::Mirror(path)))
    }

    /// The mirror file with `wanted`'s hash (and size, where known), warning about a namesake
    /// that does not match; a file whose hash is not known yet is never found in a mirror.
    fn find_in_mirror(&self, wanted: &Wanted) -> Result<Option<PathBuf>, Error> {
        if self.config.mirrors.is_empty() {
            return Ok(None);
        }
        let Some(expected) = &wanted.sha256 else { return Ok(None) };
        // The cache path ends with the file's (or member's) own name.
        let wanted_name = wanted.path.file_name();
        for (size, path) in self.mirror_files()? {
            let same_name = wanted_name.is_some() && path.file_name() == wanted_name;
            let size_fits = wanted.size.is_none_or(|wanted_size| wanted_size == size);
            if !size_fits && !same_name {
                continue;
            }
            let actual = self.mirror_hash(&path)?;
            if &actual == expected && size_fits {
                return Ok(Some(path));
            }
            // Warn only about a file that really stands for this one: same name, and the same size
            // or a path naming the asset (a corrupted or outdated copy), not a namesake of another.
            let names_asset = path.to_string_lossy().contains(wanted.asset);
            if same_name && (wanted.size == Some(size) || names_asset) {
                self.warn(format!(
                    "mirror file {} looks like `{}` of `{}` but does not match the manifest (sha256 {actual}, {size} bytes; \
                     expected {expected}{}): ignored",
                    path.display(),
                    wanted.label,
                    wanted.asset,
                    wanted.size.map(|size| format!(", {size} bytes")).unwrap_or_default()
                ));
            }
        }
        Ok(None)
    }

    fn mirror_files(&self) -> Result<Vec<(u64, PathBuf)>, Error> {
        let mut index = self.mirror_index.lock().unwrap();
        if index.is_none() {
            let mut files = Vec::new();
            for mirror in &self.config.mirrors {
                if !mirror.is_dir() {
                    self.warn(format!("mirror {} is not a folder: ignored", mirror.display()));
                    continue;
                }
                walk(mirror, &mut files)?;
            }
            files.sort();
            *index = Some(files);
        }
        Ok(index.clone().unwrap_or_default())
    }

    fn mirror_hash(&self, path: &Path) -> Result<String, Error> {
        if let Some(hash) = self.mirror_hashes.lock().unwrap().get(path) {
            return Ok(hash.clone());
        }
        let hash = sha256_file(path)?;
        self.mirror_hashes.lock().unwrap().insert(path.to_path_buf(), hash.clone());
        Ok(hash)
    }

    fn copy_verified(&self, source: &Path, wanted: &Wanted) -> Result<(), Error> {
        let partial = partial_path(&wanted.path);
        if let Some(parent) = partial.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::copy(source, &partial).map_err(io_error(&partial))?;
        // The copy is hashed again: a mirror on a flaky disk must not poison the cache.
        self.accept(wanted, &partial, &format!("mirror {}", source.display()), None)?;
        self.move_into_place(&partial, &wanted.path)
    }

    fn move_into_place(&self, partial: &Path, target: &Path) -> Result<(), Error> {
        fs::rename(partial, target).map_err(io_error(target))?;
        fs::rename(sidecar(partial), sidecar(target)).map_err(io_error(target))
    }

    /// Checks size and hash of a finished file and writes its sidecar; a mismatch moves it to
    /// quarantine. An unknown hash is trusted on first use and recorded in the lock file.
    fn accept(&self, wanted: &Wanted, path: &Path, origin: &str, streamed_sha256: Option<String>) -> Result<(), Error> {
        let size = fs::metadata(path).map_err(io_error(path))?.len();
        if let Some(expected) = wanted.size
            && expected != size
        {
            return Err(self.reject(
                wanted,
                path,
                origin,
                "size",
                format!("{expected} bytes"),
                format!("{size} bytes"),
            ));
        }
        let actual = match streamed_sha256 {
            Some(hash) => hash,
            None => sha256_file(path)?,
        };
        match &wanted.sha256 {
            Some(expected) if *expected != actual => {
                return Err(self.reject(wanted, path, origin, "sha256", expected.clone(), actual));
            }
            // A hub checkpoint outside the manifest whose weights the hub's LFS sha256 pinned:
            // locked too, since its lock entries also name its files when offline.
            Some(_) if self.manifest.asset(wanted.asset).is_err() => self.lock_file(wanted, size, &actual)?,
            Some(_) => {}
            None => {
                self.warn(format!(
                    "`{}` of `{}` has no pinned sha256: trusting the first copy ({actual}, {size} bytes, from {origin}) \
                     and recording it in {}; commit that file",
                    wanted.label,
                    wanted.asset,
                    self.config.lock_path.display()
                ));
                self.lock_file(wanted, size, &actual)?;
            }
        }
        write_sidecar(path, &actual, size)
    }

    fn lock_file(&self, wanted: &Wanted, size: u64, sha256: &str) -> Result<(), Error> {
        let mut lock = self.lock.lock().unwrap();
        let key = format!("{}/{}", wanted.asset, wanted.label);
        // The file's lock, with what other processes recorded meanwhile.
        *lock = HashLock::record(&self.config.lock_path, &key, LockedHash { size, sha256: sha256.to_owned() })?;
        Ok(())
    }

    /// Moves a file that is not what the manifest says to quarantine, and says so.
    fn reject(
        &self,
        wanted: &Wanted,
        path: &Path,
        origin: &str,
        what: &'static str,
        expected: String,
        actual: String,
    ) -> Error {
        let quarantined = match self.quarantine(path, &wanted.label) {
            Ok(quarantined) => quarantined,
            Err(err) => return err,
        };
        Error::Mismatch(Box::new(Mismatch {
            what,
            asset: wanted.asset.to_owned(),
            file: wanted.label.clone(),
            origin: origin.to_owned(),
            expected,
            actual,
            quarantined,
        }))
    }

    fn quarantine(&self, path: &Path, label: &str) -> Result<PathBuf, Error> {
        let folder = self.config.home.join("assets").join("quarantine");
        fs::create_dir_all(&folder).map_err(io_error(&folder))?;
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
        let target = folder.join(format!("{}.{stamp}", label.replace(['/', ':'], "_")));
        fs::rename(path, &target).map_err(io_error(&target))?;
        let _ = fs::remove_file(sidecar(path));
        Ok(target)
    }

    fn download(&self, wanted: &Wanted, urls: &[String]) -> Result<Origin, Error> {
        let partial = partial_path(&wanted.path);
        if let Some(parent) = partial.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let mut failures = Vec::new();
        for url in urls {
            match self.download_from(wanted, url, &partial) {
                Ok(streamed_sha256) => {
                    self.accept(wanted, &partial, url, Some(streamed_sha256))?;
                    self.move_into_place(&partial, &wanted.path)?;
                    return Ok(Origin::Network(url.clone()));
                }
                Err(_) if crate::stop::requested() => {
                    let what = format!("downloading {} (kept in {})", wanted.label, partial.display());
                    return Err(Error::Stopped(crate::stop::Stopped { what }));
                }
                Err(message) => failures.push(format!("{url}: {message}")),
            }
        }
        Err(Error::Download {
            asset: wanted.asset.to_owned(),
            file: wanted.label.clone(),
            attempts: failures.join("; "),
        })
    }

    /// Fills `partial` with the whole body of `url`, resuming what is already there, and returns
    /// its sha256, computed while the bytes stream in. Returns a description of the last failure
    /// when every attempt failed.
    fn download_from(&self, wanted: &Wanted, url: &str, partial: &Path) -> Result<String, String> {
        let mut backoff = self.config.backoff;
        let mut last_failure = String::new();
        // The hash of the bytes already in `partial`, carried from one attempt to the next.
        let mut hashed: Option<(Sha256, u64)> = None;
        for attempt in 1..=self.config.attempts {
            if attempt > 1 {
                // The wait between attempts ends early on a stop.
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !crate::stop::requested() {
                    std::thread::sleep(std::time::Duration::from_millis(50).min(backoff));
                }
                if crate::stop::requested() {
                    return Err("a stop was asked for".to_owned());
                }
                backoff *= 2;
            }
            match self.attempt(wanted, url, partial, &mut hashed) {
                Ok(Attempt::Complete(sha256)) => return Ok(sha256),
                Ok(Attempt::Retry(why)) => last_failure = format!("attempt {attempt}: {why}"),
                Err(why) => return Err(why),
            }
        }
        Err(format!("{} attempts failed, last: {last_failure}", self.config.attempts))
    }

    fn attempt(
        &self,
        wanted: &Wanted,
        url: &str,
        partial: &Path,
        hashed: &mut Option<(Sha256, u64)>,
    ) -> Result<Attempt, String> {
        let mut offset = fs::metadata(partial).map_or(0, |metadata| metadata.len());
        if wanted.size.is_some_and(|size| offset > size) {
            let _ = fs::remove_file(partial);
            offset = 0;
        }
        let mut request = self.client.get(url);
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = match request.send() {
            Ok(response) => response,
            Err(err) => return Ok(Attempt::Retry(format!("request failed: {err}"))),
        };
        let status = response.status();
        if status.is_server_error() {
            return Ok(Attempt::Retry(format!("server answered {status}")));
        }
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            let _ = fs::remove_file(partial);
            return Ok(Attempt::Retry("server refused the resume range; starting over".to_owned()));
        }
        if !status.is_success() {
            return Err(format!("server answered {status}"));
        }
        let partial_content = status == reqwest::StatusCode::PARTIAL_CONTENT;
        let resumed = partial_content && offset > 0 && content_range_start(&response) == Some(offset);
        if partial_content && !resumed {
            let _ = fs::remove_file(partial);
            *hashed = None;
            return Ok(Attempt::Retry("server sent a range that was not asked for; starting over".to_owned()));
        }
        let (mut file, mut hasher) = if resumed {
            let hasher = match hashed.take() {
                Some((hasher, length)) if length == offset => hasher,
                // A partial file left by an earlier process: hash what is there once.
                _ => hash_prefix(partial).map_err(|err| err.to_string())?,
            };
            (fs::OpenOptions::new().append(true).open(partial).map_err(|err| err.to_string())?, hasher)
        } else {
            // A 200 to a range request: the server ignored it and sends everything.
            offset = 0;
            (File::create(partial).map_err(|err| err.to_string())?, Sha256::new())
        };
        let expected_total = response.content_length().map(|length| offset + length);
        if let (Some(total), Some(size)) = (expected_total, wanted.size)
            && total != size
        {
            // The final size check decides; say it early in the message of a later failure.
            tracing::info!("{url} announces {total} bytes, the manifest says {size}");
        }
        let progress = progress_bar(wanted.size.or(expected_total), offset, &wanted.label);
        let mut buffer = vec![0u8; 1 << 16];
        let mut written = offset;
        loop {
            if crate::stop::requested() {
                file.flush().map_err(|err| err.to_string())?;
                progress.abandon();
                *hashed = Some((hasher, written));
                return Err("a stop was asked for".to_owned());
            }
            match response.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => {
                    file.write_all(&buffer[..count]).map_err(|err| err.to_string())?;
                    hasher.update(&buffer[..count]);
                    written += count as u64;
                    progress.set_position(written);
                }
                Err(err) => {
                    file.flush().map_err(|err| err.to_string())?;
                    progress.abandon();
                    *hashed = Some((hasher, written));
                    return Ok(Attempt::Retry(format!("connection broke after {written} bytes: {err}")));
                }
            }
        }
        file.sync_all().map_err(|err| err.to_string())?;
        progress.finish_and_clear();
        let target = wanted.size.or(expected_total);
        match target {
            Some(total) if written < total => {
                *hashed = Some((hasher, written));
                Ok(Attempt::Retry(format!("body ended after {written} of {total} bytes; resuming")))
            }
            _ => Ok(Attempt::Complete(format!("{:x}", hasher.finalize()))),
        }
    }
}

enum Attempt {
    /// The whole body is in place; its sha256.
    Complete(String),
    Retry(String),
}

fn content_range_start(response: &reqwest::blocking::Response) -> Option<u64> {
    let value = response.headers().get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    range.split('-').next()?.parse().ok()
}

fn progress_bar(total: Option<u64>, position: u64, label: &str) -> indicatif::ProgressBar {
    let bar = match total {
        Some(total) if total > 1 << 20 => indicatif::ProgressBar::new(total),
        _ => indicatif::ProgressBar::hidden(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .expect("valid template"),
    );
    bar.set_message(label.to_owned());
    bar.set_position(position);
    bar
}

pub(crate) fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn write_sidecar(path: &Path, sha256: &str, size: u64) -> Result<(), Error> {
    let sidecar = sidecar(path);
    fs::write(&sidecar, format!("{sha256} {size}\n")).map_err(io_error(&sidecar))
}

/// The lowercase hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    match hash_prefix(path) {
        Ok(hasher) => Ok(format!("{:x}", hasher.finalize())),
        Err(err) if err.kind() == std::io::ErrorKind::Interrupted && crate::stop::requested() => {
            Err(Error::Stopped(crate::stop::Stopped { what: format!("hashing {}", path.display()) }))
        }
        Err(err) => Err(io_error(path)(err)),
    }
}

/// A hasher fed with a file's content.
fn hash_prefix(path: &Path) -> std::io::Result<Sha256> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        if crate::stop::requested() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "a stop was asked for"));
        }
        let count = file.read(&mut buffer)?;
        if count == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..count]);
    }
}

fn walk(folder: &Path, files: &mut Vec<(u64, PathBuf)>) -> Result<(), Error> {
    for entry in fs::read_dir(folder).map_err(io_error(folder))? {
        let entry = entry.map_err(io_error(folder))?;
        let path = entry.path();
        let metadata = fs::metadata(&path).map_err(io_error(&path))?;
        if metadata.is_dir() {
            walk(&path, files)?;
        } else if metadata.is_file() {
            files.push((metadata.len(), path));
        }
    }
    Ok(())
}
