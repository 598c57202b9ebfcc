//! `datasets pin`: manifest entries for hub checkpoints, pinned to the commit a revision names,
//! from the hub's model API as a loopback server answers it; and its refusals.

#[allow(dead_code)]
mod support;

use datasets::manifest::Manifest;
use datasets::pin::{PinnedFile, manifest_entry, pin_from_info};
use support::{Reply, Server};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const WEIGHTS_SHA: &str = "68d45e234eb4a928074dfd868cead0219ab85354cc53d20e772753c6bb9169d3";

/// The shape of the hub's answer to `/api/models/<repo>/revision/<rev>?blobs=true`.
fn info(files: &[(&str, u64, Option<&str>)]) -> String {
    let siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, size, lfs)| {
            let mut sibling = serde_json::json!({"rfilename": name, "size": size, "blobId": "abc"});
            if let Some(sha) = lfs {
                sibling["lfs"] = serde_json::json!({"sha256": sha, "size": size, "pointerSize": 134});
            }
            sibling
        })
        .collect();
    serde_json::json!({"id": "org/model", "sha": COMMIT, "private": false, "siblings": siblings}).to_string()
}

#[test]
fn pins_the_commit_and_the_lfs_hashes_and_prefers_safetensors() {
    let answer = info(&[
        (".gitattributes", 1500, None),
        ("config.json", 570, None),
        ("pytorch_model.bin", 440473133, Some(&"1".repeat(64))),
        ("model.safetensors", 440449768, Some(WEIGHTS_SHA)),
        ("tokenizer.json", 466062, None),
        ("vocab.txt", 231508, None),
    ]);
    let pin = pin_from_info("org/model", "main", &answer).unwrap();
    assert_eq!(pin.commit, COMMIT);
    assert_eq!(
        pin.files,
        [
            PinnedFile { name: "model.safetensors".into(), size: Some(440449768), sha256: Some(WEIGHTS_SHA.into()) },
            PinnedFile { name: "config.json".into(), size: Some(570), sha256: None },
            PinnedFile { name: "tokenizer.json".into(), size: Some(466062), sha256: None },
        ]
    );
    // The entry is one the manifest reads, pinned as the store fetches it.
    let manifest = Manifest::parse(
        &format!("assets:\n{}", manifest_entry(&pin, "a model: with a colon # and a hash")),
        std::path::Path::new("entry.yaml"),
    )
    .unwrap();
    let asset = manifest.asset("org/model").unwrap();
    assert_eq!(asset.description, "a model: with a colon # and a hash");
    assert_eq!(asset.hf.as_ref().unwrap().revision, COMMIT);
    assert_eq!(asset.files[0].sha256.as_deref(), Some(WEIGHTS_SHA));
}

#[test]
fn takes_pytorch_model_bin_when_there_is_no_safetensors() {
    let answer =
        info(&[("config.json", 500, None), ("pytorch_model.bin", 9, Some(WEIGHTS_SHA)), ("tokenizer.json", 9, None)]);
    let pin = pin_from_info("google/multiberts-seed_0-step_0k", "main", &answer).unwrap();
    assert_eq!(pin.files[0].name, "pytorch_model.bin");
}

/// The BERT miniatures and the MultiBERTs publish BERT's vocab.txt and no tokenizer.json: the pin
/// takes the vocabulary and, when published, the tokenizer_config.json that sets its casing.
#[test]
fn takes_berts_vocab_txt_when_there_is_no_tokenizer_json() {
    let miniature =
        info(&[("config.json", 500, None), ("pytorch_model.bin", 9, Some(WEIGHTS_SHA)), ("vocab.txt", 9, None)]);
    let pin = pin_from_info("google/bert_uncased_L-2_H-128_A-2", "main", &miniature).unwrap();
    let names: Vec<&str> = pin.files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(names, ["pytorch_model.bin", "config.json", "vocab.txt"]);
    let cased = info(&[
        ("config.json", 500, None),
        ("model.safetensors", 9, Some(WEIGHTS_SHA)),
        ("tokenizer_config.json", 9, None),
        ("vocab.txt", 9, None),
    ]);
    let pin = pin_from_info("org/cased", "main", &cased).unwrap();
    let names: Vec<&str> = pin.files.iter().map(|file| file.name.as_str()).collect();
    assert_eq!(names, ["model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json"]);
    // With both, tokenizer.json wins and nothing else is pinned.
    let both = info(&[
        ("config.json", 500, None),
        ("model.safetensors", 9, Some(WEIGHTS_SHA)),
        ("tokenizer.json", 9, None),
        ("tokenizer_config.json", 9, None),
        ("vocab.txt", 9, None),
    ]);
    let pin = pin_from_info("org/both", "main", &both).unwrap();
    assert_eq!(pin.files.last().unwrap().name, "tokenizer.json");
    assert_eq!(pin.files.len(), 3);
}

#[test]
fn refuses_what_the_suite_could_not_load_naming_what_is_there() {
    let sentencepiece =
        info(&[("config.json", 500, None), ("pytorch_model.bin", 9, Some(WEIGHTS_SHA)), ("spiece.model", 9, None)]);
    let err = pin_from_info("google/t5-v1_1-small", "main", &sentencepiece).unwrap_err().to_string();
    assert!(
        err.contains("no tokenizer.json and no vocab.txt (it has spiece.model)") && err.contains("t5-v1_1"),
        "{err}"
    );
    let sharded = info(&[
        ("config.json", 500, None),
        ("model.safetensors.index.json", 9, None),
        ("model-00001-of-00002.safetensors", 9, Some(WEIGHTS_SHA)),
        ("tokenizer.json", 9, None),
    ]);
    let err = pin_from_info("org/big", "main", &sharded).unwrap_err().to_string();
    assert!(err.contains("sharded"), "{err}");
    let bad_commit = info(&[]).replace(COMMIT, "main");
    let err = pin_from_info("org/model", "main", &bad_commit).unwrap_err().to_string();
    assert!(err.contains("not 40 hex digits"), "{err}");
    let err = pin_from_info("org/model", "main", "<html>rate limited</html>").unwrap_err().to_string();
    assert!(err.contains("not the hub's model API answer"), "{err}");
}

/// The commits the presets name (datasets/hub-revisions.tsv): all readable, one per repository
/// and commit, and the SentencePiece-only XLM-R commit refused before anything is fetched, online
/// or offline, naming the listed commit that has tokenizer.json.
#[test]
fn listed_commits_are_read_and_a_sentencepiece_only_commit_names_the_one_to_use() {
    let listed = datasets::pin::published();
    assert_eq!(listed.len(), 34);
    for (index, entry) in listed.iter().enumerate() {
        assert!(datasets::manifest::Asset::hub_checkpoint(entry.repo, entry.commit).is_ok(), "{entry:?}");
        assert!(!listed[..index].iter().any(|other| other.repo == entry.repo && other.commit == entry.commit));
    }
    let old = "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089";
    let refusal = datasets::pin::published_files("FacebookAI/xlm-roberta-base", old).unwrap().unwrap_err().to_string();
    assert!(
        refusal.contains("it has sentencepiece.bpe.model")
            && refusal.contains("`FacebookAI/xlm-roberta-base@42f548f32366559214515ec137cdd16002968bf6`"),
        "{refusal}"
    );
    // The same refusal when the hub's answer shows it (a commit named before the list knew it).
    let answer =
        info(&[("config.json", 500, None), ("pytorch_model.bin", 9, None), ("sentencepiece.bpe.model", 9, None)]);
    let err = pin_from_info("FacebookAI/xlm-roberta-base", old, &answer).unwrap_err().to_string();
    assert!(err.contains("@42f548f32366559214515ec137cdd16002968bf6"), "{err}");
    // The files a MultiBERTs commit holds: what an offline check says must be fetched.
    let multiberts =
        datasets::pin::published_files("google/multiberts-seed_0-step_0k", "93e2ee33230f548b15bebc8c936f0cb5ef17b37a");
    assert_eq!(
        multiberts.unwrap().unwrap(),
        ["pytorch_model.bin", "config.json", "vocab.txt", "tokenizer_config.json"]
    );
    // A commit whose files no source shows is asked of the hub.
    assert!(datasets::pin::published_files("google-t5/t5-large", "150ebc2c4b72291e770f58e6057481c8d2ed331a").is_none());
}

/// The command end to end against a loopback hub: the API path it asks, and entries on stdout.
#[test]
fn the_command_prints_entries_from_the_hubs_answers() {
    let answer =
        info(&[("config.json", 500, None), ("model.safetensors", 9, Some(WEIGHTS_SHA)), ("tokenizer.json", 9, None)]);
    let server = Server::start(move |_, request| {
        if request.path == "api/models/org/model/revision/v1.0?blobs=true" {
            Reply::Ok(answer.clone().into_bytes())
        } else {
            Reply::Status(404)
        }
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_datasets"))
        .args(["pin", "org/model@v1.0", "--description", "a test model"])
        .env("HF_ENDPOINT", &server.base_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("hf: {{repo: org/model, revision: {COMMIT}}}")), "{stdout}");
    assert!(stdout.contains(&format!("{{name: model.safetensors, size: 9, sha256: {WEIGHTS_SHA}}}")), "{stdout}");

    // A list with repositories the hub does not have: the others' entries are printed, every
    // refusal is named, and the command fails.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_datasets"))
        .args(["pin", "org/absent", "org/model@v1.0", "org/gone"])
        .env("HF_ENDPOINT", &server.base_url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && stderr.contains("2 of 3 not pinned"), "{stderr}");
    assert!(
        stderr.contains("org/absent@main") && stderr.contains("org/gone@main") && stderr.contains("404"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&missing.stdout).contains("hf: {repo: org/model"), "{stderr}");
}
