//! Criterion benches of bench-suite: `cargo xtask bench criterion` (or `cargo bench -p bench-suite`).

mod benchmarks;

criterion::criterion_main!(benchmarks::fwht::benches, benchmarks::fastfood::benches);
