//! A loopback HTTP/1.1 server for download tests, whose every answer a test scripts, faults
//! included. It serves on 127.0.0.1 only, answers each connection on its own thread, closes it
//! after one response, and stops by itself after a bounded number of connections or seconds.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// The start of a `Range: bytes=N-` header.
    pub range_start: Option<u64>,
}

/// How the server answers one request.
pub enum Reply {
    /// `200` with the body (or `206` from the range start when the request has a range).
    Ok(Vec<u8>),
    /// `200` with the whole body, whatever the range asked.
    IgnoreRange(Vec<u8>),
    Status(u16),
    /// Headers announce the whole (remaining) body, but only `keep` bytes are sent before the
    /// connection closes.
    CutAfter {
        body: Vec<u8>,
        keep: usize,
    },
    /// `Content-Length` says `claimed` while the body is the whole file.
    WrongLength {
        body: Vec<u8>,
        claimed: usize,
    },
    /// The body in `chunk`-byte pieces with `pause` between them.
    Slow {
        body: Vec<u8>,
        chunk: usize,
        pause: Duration,
    },
}

type Script = dyn Fn(usize, &Request) -> Reply + Send + Sync;

pub struct Server {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server answering request number `n` (from 0) to `request` with `script(n, request)`.
    pub fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::start_for(64, Duration::from_secs(60), script)
    }

    /// [`Server::start`] for at most `connections` connections within `lifetime` (a test that
    /// fetches many files, with training between the fetches).
    pub fn start_for(
        connections: usize,
        lifetime: Duration,
        script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut served = 0;
                while !stop.load(Ordering::Relaxed) && served < connections && started.elapsed() < lifetime {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            // One thread per connection, so a stalled answer does not block the retry.
                            let index = served;
                            served += 1;
                            let (script, requests) = (script.clone(), requests.clone());
                            std::thread::spawn(move || handle(stream, index, &*script, &requests));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Server { base_url, requests, stop, thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(mut stream: TcpStream, index: usize, script: &Script, requests: &Mutex<Vec<Request>>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
    let range_start = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.eq_ignore_ascii_case("range") {
            return None;
        }
        value.trim().strip_prefix("bytes=")?.trim_end_matches('-').parse().ok()
    });
    let request = Request { path, range_start };
    requests.lock().unwrap().push(request.clone());
    let _ = match script(index, &request) {
        Reply::Ok(body) => match request.range_start {
            Some(start) if (start as usize) < body.len() => {
                let total = body.len();
                let range = format!("Content-Range: bytes {start}-{}/{total}\r\n", total - 1);
                write_response(&mut stream, 206, &range, &body[start as usize..], None)
            }
            _ => write_response(&mut stream, 200, "", &body, None),
        },
        Reply::IgnoreRange(body) => write_response(&mut stream, 200, "", &body, None),
        Reply::Status(status) => write_response(&mut stream, status, "", b"", None),
        Reply::CutAfter { body, keep } => {
            let start = request.range_start.unwrap_or(0) as usize;
            let remaining = &body[start..];
            let (status, range) = if start > 0 {
                (206, format!("Content-Range: bytes {start}-{}/{}\r\n", body.len() - 1, body.len()))
            } else {
                (200, String::new())
            };
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{range}Connection: close\r\n\r\n",
                remaining.len()
            )
            .and_then(|()| stream.write_all(&remaining[..keep.min(remaining.len())]))
        }
        Reply::WrongLength { body, claimed } => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n")
                .and_then(|()| stream.write_all(&body))
        }
        Reply::Slow { body, chunk, pause } => write_response(&mut stream, 200, "", &body, Some((chunk, pause))),
    };
    let _ = stream.flush();
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    extra_headers: &str,
    body: &[u8],
    slow: Option<(usize, Duration)>,
) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n",
        body.len()
    )?;
    match slow {
        None => stream.write_all(body),
        Some((chunk, pause)) => {
            for piece in body.chunks(chunk) {
                stream.write_all(piece)?;
                stream.flush()?;
                std::thread::sleep(pause);
            }
            Ok(())
        }
    }
}

/// Deterministic bytes of a given length.
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|idx| (idx as u32).wrapping_mul(2_654_435_761).rotate_left(seed as u32 % 31) as u8 ^ seed).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
