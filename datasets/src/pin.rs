//! Pinning a Hugging Face hub checkpoint for the manifest: the commit that a revision (a branch
//! such as `main`, a tag, or a commit) names now, and the size and sha256 of each file the suite
//! reads, from the hub's model API (`GET <endpoint>/api/models/<repo>/revision/<revision>?blobs=true`,
//! the call `huggingface_hub.model_info(..., files_metadata=True)` makes).
//!
//! The suite reads `config.json`, one weights file (`model.safetensors`, else `pytorch_model.bin`:
//! HF's order) and the tokenizer: `tokenizer.json`, else BERT's `vocab.txt` with the
//! `tokenizer_config.json` beside it when there is one (many older repositories, the MultiBERTs
//! and the BERT miniatures among them, publish only those; bench-suite builds the tokenizer HF
//! builds from them). The hub gives the sha256 of files stored with Git LFS (the weights); a small
//! file kept in git gets none, and is trusted on first download and locked in `hashes.lock`, as
//! every manifest file without a pinned hash. A repository with neither tokenizer file (a
//! SentencePiece model alone), or with sharded weights, is refused with what it has, since the
//! suite could not load it.

use serde::Deserialize;

use crate::manifest::is_sha256_hex;

/// A file of a pinned checkpoint, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// The file's path in the repository (the hub's `rfilename`).
    pub name: String,
    /// Size in bytes, from the LFS metadata, else the hub's listing; `None` when the hub gives
    /// none.
    pub size: Option<u64>,
    /// From the hub's LFS metadata; `None` for files kept in git.
    pub sha256: Option<String>,
}

/// A hub checkpoint pinned to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubPin {
    /// The hub repository, `org/name`.
    pub repo: String,
    /// The 40-hex commit the revision named when it was asked.
    pub commit: String,
    /// The weights, `config.json`, then `tokenizer.json` or `vocab.txt` (and its
    /// `tokenizer_config.json`, if published), in the manifest's order.
    pub files: Vec<PinnedFile>,
}

/// Why a hub checkpoint cannot be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The hub's model API cannot be asked (offline, unreachable, an error answer), its answer is
    /// not usable, or the repository lacks what the suite reads.
    #[error("{repo}@{revision}: {message}")]
    Hub {
        /// The hub repository asked for, `org/name`.
        repo: String,
        /// The revision asked for (a branch, a tag or a commit).
        revision: String,
        /// What is wrong, and what to do where something can be done.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
struct ModelInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
}

/// A hub commit from public sources that the suite's presets name (`datasets/hub-revisions.tsv`,
/// compiled in): what it holds, as far as those sources show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The hub repository, `org/name`.
    pub repo: &'static str,
    /// The 40-hex commit.
    pub commit: &'static str,
    /// The files the sources show at the commit; `None` where they do not show them all (`?`).
    pub files: Option<Vec<&'static str>>,
    /// How many independent public sources give the commit, and which kind.
    pub sources: &'static str,
}

impl Published {
    /// Whether the commit holds a tokenizer file the suite reads (`tokenizer.json`, or BERT's
    /// `vocab.txt`); `None` when its files are not all known.
    pub fn has_tokenizer(&self) -> Option<bool> {
        let files = self.files.as_ref()?;
        Some(files.iter().any(|file| ["tokenizer.json", "vocab.txt"].contains(file)))
    }
}

/// Every commit of `datasets/hub-revisions.tsv`, in its order.
pub fn published() -> Vec<Published> {
    include_str!("../hub-revisions.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [repo, commit, files, sources] = fields[..] else {
                panic!("datasets/hub-revisions.tsv: `{line}` does not have 4 tab-separated fields")
            };
            let files: Vec<&str> = files.split_whitespace().collect();
            Published { repo, commit, files: (!files.contains(&"?")).then_some(files), sources }
        })
        .collect()
}

/// The listed commit of `repo` at `commit`, if [`published`] has it.
pub fn published_commit(repo: &str, commit: &str) -> Option<Published> {
    published().into_iter().find(|entry| entry.repo.eq_ignore_ascii_case(repo) && entry.commit == commit)
}

/// Why a commit whose files hold no `tokenizer.json` or `vocab.txt` cannot run (`others`: the
/// tokenizer files it has), naming a listed commit of the same repository that has one, if any.
fn no_tokenizer_message(repo: &str, revision: &str, others: &[&str]) -> String {
    let has = if others.is_empty() { "no tokenizer files".to_owned() } else { others.join(", ") };
    // A listed commit of the same repository with a tokenizer the suite reads (tokenizer.json
    // first), and which of the two it has.
    let listed = ["tokenizer.json", "vocab.txt"].into_iter().find_map(|wanted| {
        published()
            .into_iter()
            .find(|entry| {
                entry.repo.eq_ignore_ascii_case(repo)
                    && entry.commit != revision
                    && entry.files.as_ref().is_some_and(|files| files.contains(&wanted))
            })
            .map(|entry| (entry, wanted))
    });
    match listed {
        Some((entry, wanted)) => format!(
            "no tokenizer.json and no vocab.txt (it has {has}), and the suite does not read a SentencePiece model \
             alone; commit {commit} of this repository has {wanted} (datasets/hub-revisions.tsv): name \
             `{repo}@{commit}` instead",
            commit = entry.commit,
            repo = entry.repo
        ),
        None => format!(
            "no tokenizer.json and no vocab.txt (it has {has}); the suite reads tokenizer.json: convert the tokenizer \
             with `transformers` (`AutoTokenizer.from_pretrained(repo).save_pretrained(folder)` writes it) and use \
             the folder"
        ),
    }
}

/// The files a listed commit is known to hold that the suite would read, and a refusal where it
/// holds no tokenizer the suite reads: said before anything is fetched, also offline. `None`
/// for a commit the list does not have, or whose files it does not show.
pub fn published_files(repo: &str, commit: &str) -> Option<Result<Vec<&'static str>, PinError>> {
    let entry = published_commit(repo, commit)?;
    let files = entry.files.clone()?;
    if entry.has_tokenizer() == Some(false) {
        let others: Vec<&str> = files.iter().copied().filter(|file| TOKENIZER_KINDS.contains(file)).collect();
        let message = no_tokenizer_message(repo, commit, &others);
        return Some(Err(PinError::Hub { repo: repo.to_owned(), revision: commit.to_owned(), message }));
    }
    let weights = ["model.safetensors", "pytorch_model.bin"].into_iter().find(|name| files.contains(name))?;
    let tokenizer: Vec<&str> = match files.contains(&"tokenizer.json") {
        true => vec!["tokenizer.json"],
        false => ["vocab.txt", "tokenizer_config.json"].into_iter().filter(|name| files.contains(name)).collect(),
    };
    Some(Ok([weights, "config.json"].into_iter().chain(tokenizer).collect()))
}

/// Tokenizer files other than the two the suite reads, named when a commit has only these.
const TOKENIZER_KINDS: [&str; 4] = ["spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt"];

/// The API URL of `repo` at `revision` under `endpoint` (e.g. `https://huggingface.co`).
pub fn api_url(endpoint: &str, repo: &str, revision: &str) -> String {
    format!("{}/api/models/{repo}/revision/{revision}?blobs=true", endpoint.trim_end_matches('/'))
}

/// Reads the hub's answer for `repo` at `revision` (the JSON of [`api_url`]) into a pin.
///
/// # Errors
/// An answer that is not the API's JSON, a `sha` that is not a commit, a repository without
/// `config.json`, with neither `tokenizer.json` nor `vocab.txt` (named with the tokenizer files it
/// has), with sharded weights, or with neither `model.safetensors` nor `pytorch_model.bin`.
pub fn pin_from_info(repo: &str, revision: &str, json: &str) -> Result<HubPin, PinError> {
    let error = |message: String| PinError::Hub { repo: repo.to_owned(), revision: revision.to_owned(), message };
    let info: ModelInfo =
        serde_json::from_str(json).map_err(|err| error(format!("not the hub's model API answer: {err}")))?;
    if info.sha.len() != 40 || !info.sha.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(error(format!("the hub answered `{}` for the commit, which is not 40 hex digits", info.sha)));
    }
    let find = |name: &str| info.siblings.iter().find(|sibling| sibling.rfilename == name);
    let names: Vec<&str> = info.siblings.iter().map(|sibling| sibling.rfilename.as_str()).collect();
    let weights = match (find("model.safetensors"), find("pytorch_model.bin")) {
        (Some(safetensors), _) => safetensors,
        (None, Some(bin)) => bin,
        (None, None) => {
            let sharded = names.iter().any(|name| name.ends_with(".index.json"));
            return Err(error(if sharded {
                "its weights are sharded (an `*.index.json` and several files); the suite reads one \
                 model.safetensors or pytorch_model.bin"
                    .to_owned()
            } else {
                format!("no model.safetensors or pytorch_model.bin among its files ({})", names.join(", "))
            }));
        }
    };
    let config = find("config.json").ok_or_else(|| error("no config.json".to_owned()))?;
    // `tokenizer.json`, else BERT's `vocab.txt` and, when published, the `tokenizer_config.json`
    // that sets its casing (bench-suite reads it beside the vocabulary, as HF does).
    let tokenizer: Vec<&Sibling> = match (find("tokenizer.json"), find("vocab.txt")) {
        (Some(json), _) => vec![json],
        (None, Some(vocab)) => std::iter::once(vocab).chain(find("tokenizer_config.json")).collect(),
        (None, None) => {
            let others: Vec<&str> = names.iter().copied().filter(|name| TOKENIZER_KINDS.contains(name)).collect();
            return Err(error(no_tokenizer_message(repo, revision, &others)));
        }
    };
    let file = |sibling: &Sibling| -> Result<PinnedFile, PinError> {
        let sha256 = match &sibling.lfs {
            Some(lfs) if is_sha256_hex(&lfs.sha256) => Some(lfs.sha256.clone()),
            Some(lfs) => {
                return Err(error(format!(
                    "`{}`: LFS sha256 `{}` is not 64 hex digits",
                    sibling.rfilename, lfs.sha256
                )));
            }
            None => None,
        };
        let size = sibling.lfs.as_ref().and_then(|lfs| lfs.size).or(sibling.size);
        Ok(PinnedFile { name: sibling.rfilename.clone(), size, sha256 })
    };
    Ok(HubPin {
        repo: repo.to_owned(),
        commit: info.sha.to_ascii_lowercase(),
        files: [weights, config].into_iter().chain(tokenizer).map(file).collect::<Result<_, _>>()?,
    })
}

/// The manifest entry (YAML, the manifest's own layout) of a pinned checkpoint.
pub fn manifest_entry(pin: &HubPin, description: &str) -> String {
    // A JSON string is a YAML double-quoted scalar: any description stays one value.
    let description = serde_json::to_string(description).expect("a string serialises");
    let mut entry = format!(
        "  - id: {repo}\n    description: {description}\n    hf: {{repo: {repo}, revision: {commit}}}\n    files:\n",
        repo = pin.repo,
        commit = pin.commit
    );
    for file in &pin.files {
        let mut fields = vec![format!("name: {}", file.name)];
        if let Some(size) = file.size {
            fields.push(format!("size: {size}"));
        }
        if let Some(sha256) = &file.sha256 {
            fields.push(format!("sha256: {sha256}"));
        }
        entry.push_str(&format!("      - {{{}}}\n", fields.join(", ")));
    }
    entry
}
