//! An rpath to the libtorch this crate is built against, for its tests and examples, and that
//! folder as `INTRINSIC_BENCH_LIBTORCH_LIB` for [`cuda`](src/cuda.rs), which loads
//! `libtorch_cuda.so` from it when nothing else names one. torch-sys (`links = "tch"`) reports
//! its lib folder as `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it directly; link
//! arguments printed by a dependency's build script do not reach our targets, so without this
//! they fail to start with `libtorch_cpu.so: cannot open shared object`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-env=INTRINSIC_BENCH_LIBTORCH_LIB={lib_dir}");
    }
}
