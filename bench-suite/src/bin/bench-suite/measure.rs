//! What the benchmarks share: medians of repeated timings, and this process's memory figures
//! from `/proc/self/status` (Linux).

use std::time::{Duration, Instant};

use bench_suite::finetune::process_memory_bytes;

/// Median wall time of `runs` calls after one warm-up call.
pub fn median_time(runs: usize, mut work: impl FnMut()) -> Duration {
    work();
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    median(&times)
}

pub fn median(times: &[Duration]) -> Duration {
    let mut times = times.to_vec();
    times.sort();
    times[times.len() / 2]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    format!("{} ({cores} threads available)", model.unwrap_or("unknown CPU"))
}

/// Resets the kernel's peak-RSS counter (`/proc/self/clear_refs`) and returns the current RSS.
pub fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    process_memory_bytes("VmRSS")
}

pub fn peak_rss() -> Option<u64> {
    process_memory_bytes("VmHWM")
}
