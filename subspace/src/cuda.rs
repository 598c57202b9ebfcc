//! The CUDA libraries this crate opens at run time, and the one driver query it makes for others.
//!
//! Nothing is linked against CUDA. rustc links with `--as-needed`, so `libtorch_cuda.so` is never
//! a load-time dependency of our binaries (which keeps CPU machines free of the 2 GB CUDA stack),
//! and PyTorch's CUDA backend only registers itself once that library is loaded: [`load_backend`]
//! loads it, from `$INTRINSIC_BENCH_LIBTORCH_CUDA` if set, else by name through the dynamic
//! loader's search path (`LD_LIBRARY_PATH`, e.g. a PyTorch install's `torch/lib`), else from the
//! libtorch folder this crate was built against. The fused kernel's driver API and NVRTC are
//! opened by cudarc (features `dynamic-loading`, `cuda-13000`); [`driver_present`] and
//! [`nvrtc_present`] say whether they can be.
//!
//! Device selection ([`crate::device`]) and the fused kernel ([`crate::fused::kernel`]) both use
//! this module, and it uses neither.

use std::path::PathBuf;
use std::sync::OnceLock;

/// `libtorch_cuda.so` could not be loaded from any of the places tried.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "CUDA was asked for but libtorch_cuda.so could not be loaded (tried {tried}): point \
     INTRINSIC_BENCH_LIBTORCH_CUDA at it, or LD_LIBRARY_PATH at a CUDA PyTorch {torch}'s torch/lib",
    torch = crate::TORCH_VERSION
)]
pub struct BackendError {
    /// Each candidate path with the loader's reason, `; `-separated.
    pub tried: String,
}

/// Loads `libtorch_cuda.so` once (kept loaded for the life of the process); later calls return
/// the first call's outcome.
pub fn load_backend() -> Result<(), BackendError> {
    static LOADED: OnceLock<Result<(), BackendError>> = OnceLock::new();
    LOADED.get_or_init(load_library).clone()
}

fn load_library() -> Result<(), BackendError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("INTRINSIC_BENCH_LIBTORCH_CUDA") {
        candidates.push(path.into());
    }
    candidates.push("libtorch_cuda.so".into());
    if let Some(lib_dir) = option_env!("INTRINSIC_BENCH_LIBTORCH_LIB") {
        candidates.push(PathBuf::from(lib_dir).join("libtorch_cuda.so"));
    }
    let mut tried = Vec::new();
    for candidate in candidates {
        // SAFETY: loading libtorch_cuda runs its static initialisers, which register the CUDA
        // backend with the libtorch already loaded; that is its intended use.
        let opened = unsafe {
            libloading::os::unix::Library::open(
                Some(&candidate),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        };
        match opened {
            Ok(library) => {
                // Never unloaded: PyTorch keeps pointers into it.
                std::mem::forget(library);
                return Ok(());
            }
            Err(err) => tried.push(format!("{} ({err:?})", candidate.display())),
        }
    }
    Err(BackendError { tried: tried.join("; ") })
}

/// Whether both libraries the fused kernel needs (NVRTC and the driver) can be opened here, with
/// the reason if not.
pub fn libraries_present() -> Result<(), String> {
    nvrtc_present()?;
    driver_present()
}

/// Only whether the driver library can be opened.
pub fn driver_present() -> Result<(), String> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err("libcuda.so.1 (the NVIDIA driver) not found".to_owned())
    }
}

/// Only whether NVRTC can be opened (it needs no GPU, so the CPU tests compile the kernel).
pub fn nvrtc_present() -> Result<(), String> {
    // SAFETY: only tries to dlopen NVRTC by its usual names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err("libnvrtc.so.13 not found on the loader path (it ships with PyTorch's pip install in \
             site-packages/nvidia/cu13/lib, and `cargo xtask setup` installs it into its cache)"
            .to_owned())
    }
}

/// Device memory in use on CUDA device `ordinal` in bytes, as the driver sees it (`total - free`):
/// what PyTorch's caching allocator holds (its reserve, so the high-water mark of a training
/// loop) plus the contexts of every process on the device.
///
/// # Errors
/// The backend or the driver cannot be loaded, or the driver call fails (the message says which).
pub fn memory_in_use(ordinal: usize) -> Result<u64, String> {
    load_backend().map_err(|err| err.to_string())?;
    driver_present()?;
    let context = cudarc::driver::CudaContext::new(ordinal).map_err(|err| format!("CUDA context: {err:?}"))?;
    let (free, total) = context.mem_get_info().map_err(|err| format!("cuMemGetInfo: {err:?}"))?;
    Ok((total - free) as u64)
}
