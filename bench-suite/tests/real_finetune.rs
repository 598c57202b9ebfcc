//! Real data (run by `cargo xtask test` when `../shared/mirror` is present): MiniLM fine-tuned on
//! a 4000-example SST-2 subset for one epoch reaches a dev accuracy clearly above the majority
//! class (50.9%), fully and through a SAID subspace of d = 1000.

use std::path::PathBuf;

use bench_suite::finetune::{FinetuneRequest, finetune};
use bench_suite::train::{Mode, Status};
use datasets::tasks::Task;

#[test]
fn minilm_learns_sst2_fully_and_in_a_said_subspace() {
    let Some(mirror) = std::env::var_os("INTRINSIC_BENCH_TEST_MIRROR").map(PathBuf::from) else {
        eprintln!("INTRINSIC_BENCH_TEST_MIRROR not set: skipping the real fine-tuning test");
        return;
    };
    for (mode, d, lr) in [(Mode::Full, 0, 5e-5), (Mode::Said, 1000, 0.3)] {
        let mut request = FinetuneRequest::new("sentence-transformers/all-MiniLM-L6-v2", Task::Sst2, mode, d);
        request.lr = Some(lr);
        request.epochs = 1;
        request.max_len = 64;
        request.max_train_examples = Some(4000);
        request.mirrors = vec![mirror.clone()];
        request.offline = true;
        let output = finetune(&request, &mut |_| {}, &mut |_| {}).unwrap();
        let accuracy = output.result.best.as_ref().unwrap().score;
        eprintln!(
            "MiniLM SST-2 {mode:?} d={d} lr={lr}: dev accuracy {accuracy:.4} in {:.0} s, {} trainable parameters",
            output.result.wall_time_s, output.result.trainable_parameters
        );
        assert_eq!(output.result.status, Status::Completed);
        assert_eq!(output.train_examples, 4000);
        assert!(accuracy > 0.65, "{mode:?}: dev accuracy {accuracy} is not clearly above the majority class (0.509)");
    }
}
