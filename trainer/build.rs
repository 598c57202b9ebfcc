//! An rpath to the libtorch this crate is built against, for its tests. torch-sys (`links = "tch"`)
//! reports its lib folder as `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it directly, so
//! without this the tests fail to start with `libtorch_cpu.so: cannot open shared object`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
