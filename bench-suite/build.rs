//! Gives bench-suite's binaries, tests and benches an rpath to the libtorch they were built against.
//!
//! torch-sys (`links = "tch"`) reports its lib folder as `DEP_TCH_LIBTORCH_LIB` to crates that
//! depend on it directly; link arguments printed by a dependency's build script do not reach our
//! targets, so without this they fail to start with `libtorch_cpu.so: cannot open shared object`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-env=INTRINSIC_BENCH_LIBTORCH_LIB={lib_dir}");
    }
}
