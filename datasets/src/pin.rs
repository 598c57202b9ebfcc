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
            let others: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| ["spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt"].contains(name))
                .collect();
            return Err(error(format!(
                "no tokenizer.json and no vocab.txt (it has {}); the suite reads tokenizer.json: convert the tokenizer \
                 with `transformers` (`AutoTokenizer.from_pretrained(repo).save_pretrained(folder)` writes it) and use \
                 the folder",
                if others.is_empty() { "no tokenizer files".to_owned() } else { others.join(", ") }
            )));
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
