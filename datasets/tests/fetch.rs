//! Downloads against a loopback server that injects faults, mirrors and archives. Every fault case
//! must end in a verified file or a clear error, never in a file a later run would trust.

mod support;

use std::path::Path;
use std::time::Duration;

use datasets::Error;
use datasets::manifest::Manifest;
use datasets::store::{Origin, Store, StoreConfig};
use support::{Reply, Server, payload, sha256};

const ASSET: &str = "test-asset";

fn store(home: &Path, yaml: &str, mirrors: Vec<std::path::PathBuf>, offline: bool) -> Store {
    let config = StoreConfig {
        home: home.to_path_buf(),
        mirrors,
        offline,
        hf_endpoint: "http://127.0.0.1:9".to_owned(),
        lock_path: home.join("hashes.lock"),
        attempts: 4,
        backoff: Duration::from_millis(10),
        read_timeout: Duration::from_millis(400),
    };
    Store::new(config, Manifest::parse(yaml, Path::new("test-manifest.yaml")).unwrap()).unwrap()
}

fn one_file_manifest(url: &str, body: &[u8]) -> String {
    format!(
        "assets:\n  - id: {ASSET}\n    description: test\n    files:\n      - name: data.bin\n        urls: [{url}]\n        size: {}\n        sha256: {}\n",
        body.len(),
        sha256(body)
    )
}

/// The file in the cache, checked against the expected bytes; no `.partial` left behind.
fn assert_verified(home: &Path, body: &[u8]) {
    let path = home.join("assets").join(ASSET).join("files").join("data.bin");
    assert_eq!(std::fs::read(&path).unwrap(), body, "cached file differs");
    assert!(path.with_extension("bin.sha256").exists(), "no sidecar");
    assert!(!path.with_extension("bin.partial").exists(), "partial left behind");
}

/// No file where it would be trusted.
fn assert_nothing_trusted(home: &Path) {
    let path = home.join("assets").join(ASSET).join("files").join("data.bin");
    assert!(!path.exists(), "{} exists after a failure", path.display());
}

/// Runs one fault case: the server script, and whether it must end verified.
fn fault_case(
    name: &str,
    body: Vec<u8>,
    script: impl Fn(usize, &support::Request) -> Reply + Send + Sync + 'static,
) -> Result<Vec<support::Request>, Error> {
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(script);
    let store = store(home.path(), &one_file_manifest(&server.url("data.bin"), &body), Vec::new(), false);
    let result = store.ensure(ASSET);
    match &result {
        Ok(paths) => {
            assert_verified(home.path(), &body);
            assert!(matches!(paths.origins[0].1, Origin::Network(_)), "{name}: {:?}", paths.origins);
        }
        Err(err) => {
            assert_nothing_trusted(home.path());
            if let Error::Mismatch(mismatch) = err {
                assert!(mismatch.quarantined.exists(), "{name}: quarantined copy missing");
            }
        }
    }
    result.map(|_| server.requests())
}

#[test]
fn happy_path_then_cache_hit_without_network() {
    let body = payload(300_000, 1);
    let home = tempfile::tempdir().unwrap();
    let server = {
        let body = body.clone();
        Server::start(move |_, _| Reply::Ok(body.clone()))
    };
    let yaml = one_file_manifest(&server.url("data.bin"), &body);
    store(home.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap();
    assert_verified(home.path(), &body);
    assert_eq!(server.requests().iter().map(|request| request.path.as_str()).collect::<Vec<_>>(), ["data.bin"]);
    let again = store(home.path(), &yaml, Vec::new(), true).ensure(ASSET).unwrap();
    assert_eq!(again.origins[0].1, Origin::Cache);
    assert_eq!(server.requests().len(), 1, "a cache hit must not touch the network");
}

/// The injected faults. Each one is counted; all must end clean (verified or a clear error).
#[test]
fn injected_faults_end_verified_or_in_a_clear_error() {
    let body = payload(200_000, 2);
    let mut cases = 0;
    let mut clean = 0;
    let mut check = |name: &str, result: Result<Vec<support::Request>, Error>, must_succeed: bool| {
        cases += 1;
        match (&result, must_succeed) {
            (Ok(_), true) => clean += 1,
            (Err(err), false) => {
                eprintln!("{name}: clear error: {err}");
                clean += 1;
            }
            _ => panic!("{name}: unexpected outcome {:?}", result.map(|requests| requests.len())),
        }
        result
    };

    // 1. Connection reset mid-stream, then resume with Range.
    let requests = check(
        "reset then resume",
        fault_case("reset", body.clone(), {
            let body = body.clone();
            move |index, _| {
                if index == 0 { Reply::CutAfter { body: body.clone(), keep: 70_000 } } else { Reply::Ok(body.clone()) }
            }
        }),
        true,
    )
    .unwrap();
    assert_eq!(requests[1].range_start, Some(70_000), "the second request must resume: {requests:?}");

    // 2. Truncated body: a server that keeps cutting; the resume fills the file piece by piece.
    let requests = check(
        "truncated body",
        fault_case("truncated", body.clone(), {
            let body = body.clone();
            move |_, _| Reply::CutAfter { body: body.clone(), keep: 60_000 }
        }),
        true,
    )
    .unwrap();
    assert_eq!(requests.len(), 4, "{requests:?}");

    // 3. Truncated forever: attempts run out, clear error, nothing trusted.
    let short = body[..1000].to_vec();
    check(
        "always truncated",
        fault_case("always truncated", body.clone(), move |_, _| Reply::IgnoreRange(short.clone())),
        false,
    )
    .map(|_| ())
    .unwrap_err();

    // 4. One flipped byte: checksum mismatch, file quarantined.
    let mut flipped = body.clone();
    flipped[12_345] ^= 0x40;
    let err = check("flipped byte", fault_case("flipped", body.clone(), move |_, _| Reply::Ok(flipped.clone())), false)
        .unwrap_err();
    match err {
        Error::Mismatch(mismatch) => {
            assert_eq!(mismatch.what, "sha256");
            assert!(mismatch.origin.contains("data.bin"), "{}", mismatch.origin);
        }
        other => panic!("flipped byte: {other}"),
    }

    // 5. 500, then success.
    let requests = check(
        "500 then success",
        fault_case("500", body.clone(), {
            let body = body.clone();
            move |index, _| if index == 0 { Reply::Status(500) } else { Reply::Ok(body.clone()) }
        }),
        true,
    )
    .unwrap();
    assert_eq!(requests.len(), 2);

    // 6. A server that ignores Range after a broken connection: the download starts over.
    let requests = check(
        "ignores range",
        fault_case("ignores range", body.clone(), {
            let body = body.clone();
            move |index, _| {
                if index == 0 {
                    Reply::CutAfter { body: body.clone(), keep: 50_000 }
                } else {
                    Reply::IgnoreRange(body.clone())
                }
            }
        }),
        true,
    )
    .unwrap();
    assert_eq!(requests[1].range_start, Some(50_000));

    // 7. Wrong Content-Length (fewer bytes announced than the file has): the rest is resumed.
    check(
        "wrong content-length",
        fault_case("wrong length", body.clone(), {
            let body = body.clone();
            move |index, _| {
                if index == 0 {
                    Reply::WrongLength { body: body.clone(), claimed: 1234 }
                } else {
                    Reply::Ok(body.clone())
                }
            }
        }),
        true,
    )
    .unwrap();

    // 8. A slow server (pauses shorter than the read timeout) completes.
    check(
        "slow server",
        fault_case("slow", body.clone(), {
            let body = body.clone();
            move |_, _| Reply::Slow { body: body.clone(), chunk: 50_000, pause: Duration::from_millis(50) }
        }),
        true,
    )
    .unwrap();

    // 9. A server that stalls past the read timeout, then answers: timeout, resume, verified.
    check(
        "stalled server",
        fault_case("stalled", body.clone(), {
            let body = body.clone();
            move |index, _| {
                if index == 0 {
                    Reply::Slow { body: body.clone(), chunk: 100_000, pause: Duration::from_millis(900) }
                } else {
                    Reply::Ok(body.clone())
                }
            }
        }),
        true,
    )
    .unwrap();

    // 10. 404: no retry, clear error.
    let err = check("404", fault_case("404", body.clone(), |_, _| Reply::Status(404)), false).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    // 11. A zip with a `../` entry (in `archives_with_escaping_entries_are_refused`), counted here.
    cases += 1;
    clean += usize::from(zip_with_escaping_entry_is_refused());

    eprintln!("fault cases: {cases}, ended clean: {clean}");
    assert_eq!((cases, clean), (11, 11));
}

fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut buffer);
        for (name, data) in entries {
            writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut writer, data).unwrap();
        }
        writer.finish().unwrap();
    }
    buffer.into_inner()
}

fn archive_manifest(url: &str, archive: &[u8], kind: &str, members: &[(&str, Option<&[u8]>)]) -> String {
    let mut yaml = format!(
        "assets:\n  - id: {ASSET}\n    description: test\n    files:\n      - name: data.{ext}\n        urls: [{url}]\n        size: {}\n        sha256: {}\n        archive: {kind}\n        members:\n",
        archive.len(),
        sha256(archive),
        ext = if kind == "zip" { "zip" } else { "tgz" },
    );
    for (path, content) in members {
        match content {
            Some(content) => {
                yaml += &format!("          - {{path: {path}, size: {}, sha256: {}}}\n", content.len(), sha256(content))
            }
            None => yaml += &format!("          - {{path: {path}}}\n"),
        }
    }
    yaml
}

fn zip_with_escaping_entry_is_refused() -> bool {
    let home = tempfile::tempdir().unwrap();
    let archive = zip_bytes(&[("data/a.txt", b"fine"), ("../escaped.txt", b"evil")]);
    let server = {
        let archive = archive.clone();
        Server::start(move |_, _| Reply::Ok(archive.clone()))
    };
    let yaml = archive_manifest(&server.url("data.zip"), &archive, "zip", &[("data/a.txt", Some(b"fine"))]);
    let err = store(home.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap_err();
    let refused = matches!(&err, Error::UnsafeArchiveEntry { entry, .. } if entry == "../escaped.txt");
    let root = home.path().join("assets").join(ASSET);
    let nothing_escaped =
        !root.join("escaped.txt").exists() && !home.path().join("assets").join("escaped.txt").exists();
    let nothing_unpacked = !root.join("unpacked").exists() && !root.join("unpacked.partial").exists();
    eprintln!("zip with ../ entry: clear error: {err}");
    refused && nothing_escaped && nothing_unpacked
}

#[test]
fn archives_unpack_verified_members_zip_and_tar_gz() {
    let member_a = b"sentence\tlabel\nfine\t1\n".to_vec();
    let member_b = payload(5000, 3);
    // zip, nested paths
    let archive = zip_bytes(&[("SET/a.tsv", &member_a), ("SET/sub/b.bin", &member_b), ("SET/ignored.txt", b"x")]);
    let home = tempfile::tempdir().unwrap();
    let server = {
        let archive = archive.clone();
        Server::start(move |_, _| Reply::Ok(archive.clone()))
    };
    let yaml = archive_manifest(
        &server.url("data.zip"),
        &archive,
        "zip",
        &[("SET/a.tsv", Some(&member_a)), ("SET/sub/b.bin", None)],
    );
    let paths = store(home.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap();
    assert_eq!(std::fs::read(paths.member("SET/a.tsv")).unwrap(), member_a);
    assert_eq!(std::fs::read(paths.member("SET/sub/b.bin")).unwrap(), member_b);
    assert!(!paths.member("SET/ignored.txt").exists());
    // The member without a pinned hash was trusted on first use and recorded.
    let lock = std::fs::read_to_string(home.path().join("hashes.lock")).unwrap();
    assert!(lock.contains(&sha256(&member_b)), "{lock}");
    // Second run: members verified in the cache, the archive is not needed again.
    let again = store(home.path(), &yaml, Vec::new(), true).ensure(ASSET).unwrap();
    assert!(again.origins.iter().all(|(_, origin)| *origin == Origin::Cache), "{:?}", again.origins);

    // tar.gz
    let mut tar_builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in [("csv/train.csv", &member_a), ("csv/test.csv", &member_b)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar_builder.append_data(&mut header, path, data.as_slice()).unwrap();
    }
    let tgz = tar_builder.into_inner().unwrap().finish().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = {
        let tgz = tgz.clone();
        Server::start(move |_, _| Reply::Ok(tgz.clone()))
    };
    let yaml = archive_manifest(
        &server.url("data.tgz"),
        &tgz,
        "tar.gz",
        &[("csv/train.csv", Some(&member_a)), ("csv/test.csv", Some(&member_b))],
    );
    let paths = store(home.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap();
    assert_eq!(std::fs::read(paths.member("csv/test.csv")).unwrap(), member_b);
}

#[test]
fn a_member_that_fails_its_hash_is_quarantined() {
    let archive = zip_bytes(&[("SET/a.tsv", b"not what the manifest says")]);
    let home = tempfile::tempdir().unwrap();
    let server = {
        let archive = archive.clone();
        Server::start(move |_, _| Reply::Ok(archive.clone()))
    };
    let yaml = archive_manifest(&server.url("data.zip"), &archive, "zip", &[("SET/a.tsv", Some(b"expected content"))]);
    let err = store(home.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap_err();
    assert!(
        matches!(&err, Error::Mismatch(mismatch) if mismatch.what == "size" && mismatch.quarantined.exists()),
        "{err}"
    );
    assert!(!home.path().join("assets").join(ASSET).join("unpacked").join("SET/a.tsv").exists());
}

#[test]
fn mirrors_are_searched_by_hash_and_wrong_files_are_ignored_with_a_warning() {
    let body = payload(10_000, 4);
    let mirror = tempfile::tempdir().unwrap();
    // The right bytes under an unrelated name, and a wrong file under the right name.
    std::fs::create_dir_all(mirror.path().join("deep/er")).unwrap();
    std::fs::write(mirror.path().join("deep/er/renamed.dat"), &body).unwrap();
    let mut wrong = body.clone();
    wrong[0] ^= 1;
    std::fs::write(mirror.path().join("data.bin"), &wrong).unwrap();

    let home = tempfile::tempdir().unwrap();
    let yaml = one_file_manifest("http://127.0.0.1:9/never-used", &body);
    let store = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true);
    let paths = store.ensure(ASSET).unwrap();
    assert_eq!(paths.origins[0].1, Origin::Mirror(mirror.path().join("deep/er/renamed.dat")));
    assert_verified(home.path(), &body);
    let warnings = store.warnings();
    assert!(warnings.iter().any(|warning| warning.contains("data.bin") && warning.contains("ignored")), "{warnings:?}");

    // Only the wrong file in the mirror, offline: missing, with the URL to get it.
    std::fs::remove_file(mirror.path().join("deep/er/renamed.dat")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let err = self::store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true).ensure(ASSET).unwrap_err();
    match err {
        Error::Missing(files) => assert_eq!(files[0].urls, ["http://127.0.0.1:9/never-used"]),
        other => panic!("{other}"),
    }
    assert_nothing_trusted(home.path());
}

#[test]
fn unknown_hash_is_trusted_once_then_enforced() {
    let body = payload(4000, 5);
    let home = tempfile::tempdir().unwrap();
    let server = {
        let body = body.clone();
        Server::start(move |_, _| Reply::Ok(body.clone()))
    };
    let yaml = format!(
        "assets:\n  - id: {ASSET}\n    description: test\n    files:\n      - name: data.bin\n        urls: [{}]\n",
        server.url("data.bin")
    );
    let first = store(home.path(), &yaml, Vec::new(), false);
    first.ensure(ASSET).unwrap();
    assert!(first.warnings().iter().any(|warning| warning.contains("no pinned sha256")), "{:?}", first.warnings());

    // Upstream changes behind our back: the recorded hash rejects it.
    let changed = payload(4000, 6);
    let home2 = tempfile::tempdir().unwrap();
    std::fs::copy(home.path().join("hashes.lock"), home2.path().join("hashes.lock")).unwrap();
    let server = Server::start(move |_, _| Reply::Ok(changed.clone()));
    let yaml = yaml.replace(&yaml[yaml.find("http").unwrap()..yaml.find("/data.bin").unwrap()], &server.base_url);
    let err = store(home2.path(), &yaml, Vec::new(), false).ensure(ASSET).unwrap_err();
    assert!(matches!(&err, Error::Mismatch(mismatch) if mismatch.what == "sha256"), "{err}");
}

#[test]
fn manifest_errors_name_the_file_and_line() {
    let yaml = "assets:\n  - id: a\n    description: x\n    colour: blue\n    files: []\n";
    let err = Manifest::parse(yaml, Path::new("bad.yaml")).unwrap_err().to_string();
    assert!(err.contains("bad.yaml") && err.contains("line 4") && err.contains("colour"), "{err}");
    let err =
        Manifest::parse("assets:\n  - id: a\n    description: x\n    files: []\n", Path::new("m.yaml")).unwrap_err();
    assert!(err.to_string().contains("has no files"), "{err}");
    let shipped = Manifest::embedded();
    assert_eq!(shipped.assets.len(), 12);
    // The pre-training corpus: 64 C4 shards, fetched only on demand.
    let c4 = shipped.asset("c4-en").unwrap();
    assert!(c4.on_demand && c4.files.len() == datasets::corpus::C4_SHARDS, "{c4:?}");
    assert_eq!(shipped.assets.iter().filter(|asset| asset.on_demand).count(), 1);
    let err = shipped.asset("glue-cola").unwrap_err().to_string();
    assert!(err.contains("glue-cola") && err.contains("glue-sst2"), "{err}");
}

/// A `.partial` left by an interrupted earlier process is resumed, not downloaded again.
#[test]
fn partial_file_from_an_earlier_process_is_resumed() {
    let body = payload(150_000, 7);
    let home = tempfile::tempdir().unwrap();
    let files = home.path().join("assets").join(ASSET).join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("data.bin.partial"), &body[..40_000]).unwrap();
    let server = {
        let body = body.clone();
        Server::start(move |_, _| Reply::Ok(body.clone()))
    };
    store(home.path(), &one_file_manifest(&server.url("data.bin"), &body), Vec::new(), false).ensure(ASSET).unwrap();
    assert_verified(home.path(), &body);
    assert_eq!(server.requests()[0].range_start, Some(40_000));
}

/// A mirror may hold the archive instead of its members: offline, it is found by hash and unpacked.
#[test]
fn an_archive_in_a_mirror_is_unpacked_offline() {
    let member = b"sentence\tlabel\nfine\t1\n".to_vec();
    let archive = zip_bytes(&[("SET/a.tsv", &member)]);
    let mirror = tempfile::tempdir().unwrap();
    std::fs::write(mirror.path().join("downloaded-long-ago.zip"), &archive).unwrap();
    let home = tempfile::tempdir().unwrap();
    let yaml = archive_manifest("http://127.0.0.1:9/never-used.zip", &archive, "zip", &[("SET/a.tsv", Some(&member))]);
    let paths = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true).ensure(ASSET).unwrap();
    assert_eq!(std::fs::read(paths.member("SET/a.tsv")).unwrap(), member);
    let expected = Origin::Archive(Box::new(Origin::Mirror(mirror.path().join("downloaded-long-ago.zip"))));
    assert_eq!(paths.origins, [("data.zip:SET/a.tsv".to_owned(), expected)]);
}

/// `Store::unavailable` names what `ensure` would download, online too, without copying,
/// unpacking or downloading anything: a file in neither the cache nor a mirror is named with its
/// URL; one in a mirror (by hash) or verified in the cache is not; an archive whose members are
/// cached is not either.
#[test]
fn unavailable_names_what_ensure_would_download_and_fetches_nothing() {
    let body = payload(5_000, 7);
    let server = Server::start(|_, _| Reply::Status(404));
    let yaml = one_file_manifest(&server.url("data.bin"), &body);
    let home = tempfile::tempdir().unwrap();
    let mirror = tempfile::tempdir().unwrap();
    let online = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], false);
    let asset = online.manifest().asset(ASSET).unwrap().clone();
    let missing = online.unavailable(&asset).unwrap();
    assert_eq!(missing.len(), 1);
    assert_eq!((missing[0].file.as_str(), missing[0].urls.clone()), ("data.bin", vec![server.url("data.bin")]));
    assert!(server.requests().is_empty(), "unavailable went to the network");
    assert!(!home.path().join("assets").exists(), "unavailable wrote into the cache");

    // In a mirror under another name: available, and still not copied.
    std::fs::write(mirror.path().join("elsewhere.dat"), &body).unwrap();
    let online = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], false);
    assert!(online.unavailable(&asset).unwrap().is_empty());
    assert!(!home.path().join("assets").exists(), "unavailable copied from the mirror");
    // Verified in the cache, the mirror gone: available.
    online.ensure(ASSET).unwrap();
    std::fs::remove_file(mirror.path().join("elsewhere.dat")).unwrap();
    let online = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], false);
    assert!(online.unavailable(&asset).unwrap().is_empty());
    assert!(server.requests().is_empty());

    // An archive: missing while neither it nor its members are here; not once its members are cached.
    let member = b"sentence\tlabel\nfine\t1\n".to_vec();
    let archive = zip_bytes(&[("SET/a.tsv", &member)]);
    let yaml = archive_manifest(&server.url("data.zip"), &archive, "zip", &[("SET/a.tsv", Some(&member))]);
    let home = tempfile::tempdir().unwrap();
    let offline = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true);
    let asset = offline.manifest().asset(ASSET).unwrap().clone();
    let missing: Vec<String> = offline.unavailable(&asset).unwrap().into_iter().map(|file| file.file).collect();
    assert_eq!(missing, ["data.zip"]);
    std::fs::write(mirror.path().join("old.zip"), &archive).unwrap();
    let offline = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true);
    offline.ensure(ASSET).unwrap();
    std::fs::remove_file(mirror.path().join("old.zip")).unwrap();
    let _ = std::fs::remove_file(home.path().join("assets").join(ASSET).join("files").join("data.zip"));
    let offline = store(home.path(), &yaml, vec![mirror.path().to_path_buf()], true);
    assert!(offline.unavailable(&asset).unwrap().is_empty(), "cached members count");
    assert!(server.requests().is_empty());
}

/// A store on the cache `home` with the hub at `endpoint`, two quick attempts per file.
fn hub_store(home: &Path, endpoint: &str, offline: bool) -> Store {
    let config = StoreConfig {
        home: home.to_path_buf(),
        mirrors: Vec::new(),
        offline,
        hf_endpoint: endpoint.to_owned(),
        lock_path: home.join("hashes.lock"),
        attempts: 2,
        backoff: Duration::from_millis(10),
        read_timeout: Duration::from_millis(400),
    };
    Store::new(config, Manifest::embedded()).unwrap()
}

/// A hub checkpoint the manifest does not list: fetched from the hub's URL at its commit, trusted
/// on first use and locked like a manifest asset, then served from the cache; the same commit
/// with other bytes later is refused; a branch instead of a commit is refused before anything.
#[test]
fn a_hub_checkpoint_outside_the_manifest_is_fetched_trusted_once_and_locked() {
    use datasets::manifest::{Asset, HashLock};
    let revision = "0123456789abcdef0123456789abcdef01234567";
    let files = [
        ("config.json", payload(200, 1)),
        ("model.safetensors", payload(5_000, 2)),
        ("tokenizer.json", payload(300, 3)),
    ];
    // The hub: its model API lists the commit's files `listed` (LFS sha256 for the weights
    // only, as the hub gives it), `resolve/` serves `served`.
    let hub = |listed: &[(&'static str, Vec<u8>)], served: Vec<(&'static str, Vec<u8>)>| {
        let siblings: Vec<serde_json::Value> = listed
            .iter()
            .map(|(name, body)| match name.ends_with(".safetensors") || name.ends_with(".bin") {
                true => serde_json::json!({"rfilename": name, "size": body.len(), "lfs": {"sha256": sha256(body), "size": body.len()}}),
                false => serde_json::json!({"rfilename": name, "size": body.len()}),
            })
            .chain([serde_json::json!({"rfilename": "README.md", "size": 10})])
            .collect();
        let info = serde_json::json!({"sha": revision, "siblings": siblings}).to_string();
        Server::start(move |_, request| {
            if request.path == format!("api/models/org/tiny/revision/{revision}?blobs=true") {
                return Reply::Ok(info.clone().into_bytes());
            }
            let prefix = format!("org/tiny/resolve/{revision}/");
            match request.path.strip_prefix(&prefix).and_then(|name| served.iter().find(|(file, _)| *file == name)) {
                Some((_, body)) => Reply::Ok(body.clone()),
                None => Reply::Status(404),
            }
        })
    };
    let serve = |files: Vec<(&'static str, Vec<u8>)>| hub(&files, files.clone());
    let asset = Asset::hub_checkpoint("org/tiny", revision).unwrap();
    assert_eq!(asset.id, format!("org/tiny@{revision}"));
    let home = tempfile::tempdir().unwrap();
    let server = serve(files.to_vec());
    let paths = hub_store(home.path(), &server.base_url, false).ensure_asset(&asset).unwrap();
    for (name, body) in &files {
        assert_eq!(&std::fs::read(paths.file(name)).unwrap(), body, "{name}");
    }
    let lock = HashLock::load(&home.path().join("hashes.lock")).unwrap();
    for (name, body) in &files {
        assert_eq!(lock.files[&format!("org/tiny@{revision}/{name}")].sha256, sha256(body), "{name} locked");
    }
    // From the cache, offline: the lock names the files.
    let again = hub_store(home.path(), "http://127.0.0.1:9", true).ensure_asset(&asset).unwrap();
    assert!(again.origins.iter().all(|(_, origin)| *origin == Origin::Cache));
    assert_eq!(again.origins.len(), 3);
    // The same commit with other weights (a rewritten hub, a wrong mirror): refused by the lock.
    std::fs::remove_dir_all(home.path().join("assets")).unwrap();
    let mut changed = files.to_vec();
    changed[1].1 = payload(5_000, 9);
    let server = serve(changed.clone());
    let err = hub_store(home.path(), &server.base_url, false).ensure_asset(&asset).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
    // On first use the weights are checked against the hub's own LFS sha256: a server that
    // lists one file and serves another is refused, not trusted.
    let fresh = tempfile::tempdir().unwrap();
    let lying = hub(&files, changed);
    let err = hub_store(fresh.path(), &lying.base_url, false).ensure_asset(&asset).unwrap_err();
    assert!(matches!(&err, Error::Mismatch(mismatch) if mismatch.file == "model.safetensors"), "{err}");
    // Not a commit, not a repository.
    let err = Asset::hub_checkpoint("org/tiny", "main").unwrap_err();
    assert!(err.contains("pin a commit"), "{err}");
    assert!(Asset::hub_checkpoint("tiny", revision).unwrap_err().contains("org/name"));
    assert!(Asset::hub_checkpoint("org/../x", revision).is_err());
}

/// A hub checkpoint named by commit that publishes `pytorch_model.bin` and BERT's `vocab.txt`
/// (the MultiBERTs, the BERT miniatures): the store fetches what the hub's model API lists, and
/// offline afterwards reads the names from the lock. Offline and never fetched, the missing-file
/// error names the files HF looks for first.
#[test]
fn a_hub_checkpoint_by_commit_takes_the_files_the_hub_lists() {
    use datasets::manifest::Asset;
    let revision = "89abcdef0123456789abcdef0123456789abcdef";
    let files = [
        ("config.json", payload(200, 4)),
        ("pytorch_model.bin", payload(4_000, 5)),
        ("vocab.txt", payload(300, 6)),
        ("tokenizer_config.json", payload(50, 7)),
    ];
    let info = serde_json::json!({
        "sha": revision,
        "siblings": [
            {"rfilename": "config.json", "size": 200},
            {"rfilename": "pytorch_model.bin", "size": 4_000, "lfs": {"sha256": sha256(&files[1].1), "size": 4_000}},
            {"rfilename": "tf_model.h5", "size": 9, "lfs": {"sha256": sha256(b"h5"), "size": 9}},
            {"rfilename": "vocab.txt", "size": 300},
            {"rfilename": "tokenizer_config.json", "size": 50},
        ],
    })
    .to_string();
    // While `broken` is set, tokenizer_config.json cannot be downloaded.
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = Server::start({
        let broken = broken.clone();
        move |_, request| {
            if request.path == format!("api/models/google/bert_uncased_L-2_H-128_A-2/revision/{revision}?blobs=true") {
                return Reply::Ok(info.clone().into_bytes());
            }
            if request.path.ends_with("/tokenizer_config.json") && broken.load(std::sync::atomic::Ordering::SeqCst) {
                return Reply::Status(404);
            }
            let prefix = format!("google/bert_uncased_L-2_H-128_A-2/resolve/{revision}/");
            match request.path.strip_prefix(&prefix).and_then(|name| files.iter().find(|(file, _)| *file == name)) {
                Some((_, body)) => Reply::Ok(body.clone()),
                None => Reply::Status(404),
            }
        }
    });
    let asset = Asset::hub_checkpoint("google/bert_uncased_L-2_H-128_A-2", revision).unwrap();
    let home = tempfile::tempdir().unwrap();
    let err = hub_store(home.path(), "http://127.0.0.1:9", true).ensure_asset(&asset).unwrap_err().to_string();
    assert!(err.contains(&format!("resolve/{revision}/model.safetensors")), "{err}");
    // A first fetch that stops at tokenizer_config.json leaves the lock's list incomplete (the
    // tokenizer file comes last): offline it is not taken as the checkpoint's files, and the
    // next run online asks the hub again and fetches what is missing.
    broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = hub_store(home.path(), &server.base_url, false).ensure_asset(&asset).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json"), "{err}");
    let err = hub_store(home.path(), "http://127.0.0.1:9", true).ensure_asset(&asset).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("model.safetensors"), "{err}");
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let paths = hub_store(home.path(), &server.base_url, false).ensure_asset(&asset).unwrap();
    let mut fetched: Vec<&str> = paths.origins.iter().map(|(name, _)| name.as_str()).collect();
    fetched.sort_unstable();
    assert_eq!(fetched, ["config.json", "pytorch_model.bin", "tokenizer_config.json", "vocab.txt"]);
    assert!(!paths.file("tf_model.h5").exists(), "only what the suite reads");
    let again = hub_store(home.path(), "http://127.0.0.1:9", true).ensure_asset(&asset).unwrap();
    assert_eq!(again.origins.len(), 4);
    assert!(again.origins.iter().all(|(_, origin)| *origin == Origin::Cache));
    // A commit the hub does not know.
    let other = Asset::hub_checkpoint("google/bert_uncased_L-2_H-128_A-2", &"f".repeat(40)).unwrap();
    let err = hub_store(tempfile::tempdir().unwrap().path(), &server.base_url, false).ensure_asset(&other).unwrap_err();
    assert!(err.to_string().contains("the hub answered 404"), "{err}");
}

/// Processes that record in one lock file at once (shards on one cache) lose nothing: each
/// reads the file again under a guard before it writes; a second, different hash for a name is
/// refused, naming both.
#[test]
fn concurrent_records_in_the_lock_file_are_all_kept() {
    use datasets::manifest::{HashLock, LockedHash};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hashes.lock");
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let path = path.clone();
            std::thread::spawn(move || {
                for file in 0..10 {
                    let entry = LockedHash { size: file, sha256: format!("{thread:032x}{file:032x}") };
                    HashLock::record(&path, &format!("asset{thread}/file{file}"), entry).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(HashLock::load(&path).unwrap().files.len(), 80);
    let same = LockedHash { size: 3, sha256: format!("{:032x}{:032x}", 1, 3) };
    assert_eq!(HashLock::record(&path, "asset1/file3", same).unwrap().files.len(), 80);
    let other = LockedHash { size: 3, sha256: "f".repeat(64) };
    let err = HashLock::record(&path, "asset1/file3", other).unwrap_err().to_string();
    assert!(err.contains("two different files under one name") && err.contains(&"f".repeat(64)), "{err}");
}
