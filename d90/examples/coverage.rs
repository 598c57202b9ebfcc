//! Prints the coverage of the d90 intervals in the simulation (`d90::simulate`) for the seed counts
//! given (default 3 5 10), every scenario, or those whose name starts with `D90_SCENARIO`:
//! `D90_REPEATS=400 cargo run --release -p d90 --example coverage -- 3 5`.
fn main() {
    let mut seeds: Vec<usize> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    if seeds.is_empty() {
        seeds = vec![3, 5, 10];
    }
    let repeats = std::env::var("D90_REPEATS").ok().and_then(|value| value.parse().ok()).unwrap_or(200);
    let only = std::env::var("D90_SCENARIO").unwrap_or_default();
    let scenarios = [
        d90::simulate::Scenario::quick(),
        d90::simulate::Scenario::quick_two_epochs(),
        d90::simulate::Scenario::mrpc(),
    ];
    for scenario in scenarios.iter().filter(|scenario| scenario.name.starts_with(&only)) {
        for &count in &seeds {
            let started = std::time::Instant::now();
            let coverage = d90::simulate::coverage(scenario, count, repeats);
            println!("{coverage} ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
}
