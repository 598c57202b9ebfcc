//! Device selection: `cpu`, `cuda` or `cuda:N`.
//!
//! rustc links with `--as-needed`, so `libtorch_cuda.so` is never a load-time dependency of our
//! binaries (which keeps CPU machines free of the 2 GB CUDA stack), and PyTorch's CUDA backend only
//! registers itself once that library is loaded. So a CUDA device is prepared by loading it at run
//! time, from `$INTRINSIC_BENCH_LIBTORCH_CUDA` if set, else by name through the dynamic loader's
//! search path (`LD_LIBRARY_PATH`, e.g. a PyTorch install's `torch/lib`), else from the libtorch
//! folder this binary was built against.

use std::path::PathBuf;
use std::sync::OnceLock;

use tch::Device;

#[derive(Debug, thiserror::Error, Clone)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected cpu, cuda or cuda:N")]
    Unknown(String),
    #[error(
        "CUDA was asked for but libtorch_cuda.so could not be loaded (tried {tried}): point \
         INTRINSIC_BENCH_LIBTORCH_CUDA at it, or LD_LIBRARY_PATH at a CUDA PyTorch 2.11.0's torch/lib"
    )]
    NoCudaLibrary { tried: String },
    #[error("libtorch_cuda.so is loaded but PyTorch sees no CUDA device (driver missing or no GPU)")]
    NoCudaDevice,
    #[error("CUDA device {index} asked for, but only {count} are present")]
    NoSuchCudaDevice { index: usize, count: usize },
}

/// Parses a device name and, for CUDA, makes sure the CUDA backend is loaded and the device exists.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let index = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match name.strip_prefix("cuda:").and_then(|index| index.parse::<usize>().ok()) {
            Some(index) => index,
            None => return Err(DeviceError::Unknown(name.to_owned())),
        },
    };
    load_cuda_backend()?;
    let count = tch::Cuda::device_count() as usize;
    if count == 0 {
        return Err(DeviceError::NoCudaDevice);
    }
    if index >= count {
        return Err(DeviceError::NoSuchCudaDevice { index, count });
    }
    Ok(Device::Cuda(index))
}

/// Loads `libtorch_cuda.so` once (kept loaded for the life of the process).
pub fn load_cuda_backend() -> Result<(), DeviceError> {
    static LOADED: OnceLock<Result<(), DeviceError>> = OnceLock::new();
    LOADED.get_or_init(load_cuda_library).clone()
}

fn load_cuda_library() -> Result<(), DeviceError> {
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
    Err(DeviceError::NoCudaLibrary { tried: tried.join("; ") })
}

/// Device memory in use on CUDA device `ordinal`, as the driver sees it (`total - free`): what
/// PyTorch's caching allocator holds (its reserve, so the high-water mark of a training loop) plus
/// the contexts of every process on the device.
pub fn cuda_memory_in_use(ordinal: usize) -> anyhow::Result<u64> {
    load_cuda_backend()?;
    crate::fused::kernel::driver_present().map_err(anyhow::Error::msg)?;
    let context = cudarc::driver::CudaContext::new(ordinal).map_err(|err| anyhow::anyhow!("CUDA context: {err:?}"))?;
    let (free, total) = context.mem_get_info().map_err(|err| anyhow::anyhow!("cuMemGetInfo: {err:?}"))?;
    Ok((total - free) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_nonsense() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            let err = parse_device(bad).unwrap_err();
            assert!(matches!(err, DeviceError::Unknown(_)), "{bad}: {err}");
        }
    }
}
