//! Sweep of the CPU FWHT's blocking parameters (leaf bits, tile row bits, tile width) against a
//! memcpy of the same buffer: `cargo run --release -p subspace --example fwht_blocking`.
use std::time::Instant;

fn best_of(runs: usize, mut work: impl FnMut()) -> f64 {
    work();
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    for log2 in [20u32, 24, 26] {
        let len = 1usize << log2;
        let source: Vec<f32> = (0..len).map(|idx| (idx % 17) as f32).collect();
        let mut data = source.clone();
        let memcpy = best_of(7, || data.copy_from_slice(std::hint::black_box(&source)));
        println!("2^{log2}: memcpy {memcpy:.3} ms");
        for (leaf, rows, width) in
            [(15, 11, 128), (15, 11, 64), (15, 11, 256), (14, 12, 128), (16, 10, 128), (12, 12, 32), (12, 12, 128)]
        {
            let time = best_of(5, || subspace::fwht::fwht_slice_blocked(&mut data, leaf, rows, width).unwrap());
            println!("  leaf {leaf} rows {rows} width {width}: {time:.3} ms = {:.2} x memcpy", time / memcpy);
        }
    }
}
