//! A stop (SIGTERM, through `datasets::stop::flag`) ends a download and a hash within a second,
//! keeping the partial download for the next run. Its own test binary: the flag is the
//! process's, and setting it would stop the other tests' downloads.

// The loopback server the fetch tests share; this binary uses part of it.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datasets::Error;
use datasets::manifest::Manifest;
use datasets::store::{Store, StoreConfig};
use support::{Reply, Server, payload, sha256};

#[test]
fn a_stop_ends_a_download_and_a_hash_within_a_second() {
    let body = payload(400_000, 3);
    let server = Server::start({
        let body = body.clone();
        move |_, _| Reply::Slow { body: body.clone(), chunk: 4096, pause: Duration::from_millis(20) }
    });
    let home = tempfile::tempdir().unwrap();
    let manifest = format!(
        "assets:\n  - id: slow\n    description: test\n    files:\n      - name: data.bin\n        urls: [{}]\n        size: {}\n        sha256: {}\n",
        server.url("data.bin"),
        body.len(),
        sha256(&body)
    );
    let config = StoreConfig {
        home: home.path().to_path_buf(),
        mirrors: Vec::new(),
        offline: false,
        hf_endpoint: "http://127.0.0.1:9".to_owned(),
        lock_path: home.path().join("hashes.lock"),
        attempts: 4,
        backoff: Duration::from_millis(10),
        read_timeout: Duration::from_secs(5),
    };
    let store = Store::new(config, Manifest::parse(&manifest, Path::new("m.yaml")).unwrap()).unwrap();
    let flag = datasets::stop::flag();
    let asked = std::thread::spawn({
        let flag = flag.clone();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
            Instant::now()
        }
    });
    let err = store.ensure("slow").unwrap_err();
    let ended = Instant::now();
    let asked = asked.join().unwrap();
    assert!(ended.duration_since(asked) < Duration::from_secs(1), "{:?}", ended.duration_since(asked));
    assert!(matches!(err, Error::Stopped(_)), "{err}");
    assert!(err.to_string().contains("terminated (SIGTERM) while downloading"), "{err}");
    let files = home.path().join("assets/slow/files");
    assert!(files.join("data.bin.partial").exists() && !files.join("data.bin").exists());
    // A hash stops at its next chunk.
    let big = home.path().join("big");
    std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
    let err = datasets::store::sha256_file(&big).unwrap_err();
    assert!(err.to_string().contains("terminated (SIGTERM) while hashing"), "{err}");
    flag.store(false, Ordering::SeqCst);
    assert_eq!(datasets::store::sha256_file(&big).unwrap().len(), 64);
}
