//! Prints the coverage of the d90 intervals in the simulation (`d90::simulate`) for the seed counts
//! given (default 3 5 10), every scenario, or those whose name starts with `D90_SCENARIO`:
//! `D90_REPEATS=400 cargo run --release -p d90 --example coverage -- 3 5`.
//!
//! To weigh a design before running it, `D90_GRID=100,322,1037` replaces each scenario's grid with
//! these values and `D90_SD=0.01` its seed spread (how quick's third design was chosen: the share
//! of intervals closed and determined for each candidate grid).
use d90::simulate::Scenario;

fn main() {
    let mut seeds: Vec<usize> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    if seeds.is_empty() {
        seeds = vec![3, 5, 10];
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let repeats = var("D90_REPEATS").parse().unwrap_or(200);
    let only = var("D90_SCENARIO");
    let grid: Vec<usize> = var("D90_GRID").split(',').filter_map(|value| value.trim().parse().ok()).collect();
    let seed_sd: Option<f64> = var("D90_SD").parse().ok();
    let scenarios = [Scenario::quick(), Scenario::quick_said(), Scenario::quick_did(), Scenario::mrpc()];
    for scenario in scenarios.into_iter().filter(|scenario| scenario.name.starts_with(&only)) {
        let scenario = Scenario {
            grid: if grid.is_empty() { scenario.grid.clone() } else { grid.clone() },
            seed_sd: seed_sd.unwrap_or(scenario.seed_sd),
            ..scenario
        };
        for &count in &seeds {
            let started = std::time::Instant::now();
            let coverage = d90::simulate::coverage(&scenario, count, repeats);
            println!("{coverage} ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
}
