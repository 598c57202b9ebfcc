//! Device selection: `cpu`, `cuda` or `cuda:N`.

use tch::Device;

use crate::cuda;

/// Why [`parse_device`] cannot give a device for a name.
#[derive(Debug, thiserror::Error, Clone)]
pub enum DeviceError {
    /// A name other than `cpu`, `cuda` or `cuda:N` (`N` a non-negative integer); holds the name.
    #[error("unknown device `{0}`: expected cpu, cuda or cuda:N")]
    Unknown(String),
    /// CUDA was asked for but `libtorch_cuda.so` could not be loaded ([`cuda::load_backend`]).
    #[error(transparent)]
    NoCudaLibrary(#[from] cuda::BackendError),
    /// The CUDA backend is loaded but PyTorch counts no CUDA device (no driver or no GPU).
    #[error("libtorch_cuda.so is loaded but PyTorch sees no CUDA device (driver missing or no GPU)")]
    NoCudaDevice,
    /// `cuda:N` (or `cuda`, meaning 0) with `N` not below the number of CUDA devices.
    #[error("CUDA device {index} asked for, but only {count} are present")]
    NoSuchCudaDevice {
        /// The 0-based device index asked for.
        index: usize,
        /// The number of CUDA devices PyTorch sees.
        count: usize,
    },
}

/// The device a name stands for, without loading the CUDA backend or asking whether the device
/// exists: for what is keyed by the device's kind alone (a check that trains nothing, on a machine
/// without the device). Training takes [`parse_device`].
pub fn device_named(name: &str) -> Result<Device, DeviceError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match name.strip_prefix("cuda:").and_then(|index| index.parse::<usize>().ok()) {
            Some(index) => Ok(Device::Cuda(index)),
            None => Err(DeviceError::Unknown(name.to_owned())),
        },
    }
}

/// Parses a device name and, for CUDA, makes sure the CUDA backend is loaded
/// ([`cuda::load_backend`]) and the device exists.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let index = match device_named(name)? {
        Device::Cuda(index) => index,
        device => return Ok(device),
    };
    cuda::load_backend()?;
    let count = tch::Cuda::device_count() as usize;
    if count == 0 {
        return Err(DeviceError::NoCudaDevice);
    }
    if index >= count {
        return Err(DeviceError::NoSuchCudaDevice { index, count });
    }
    Ok(Device::Cuda(index))
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
            assert!(matches!(device_named(bad).unwrap_err(), DeviceError::Unknown(_)), "{bad}");
        }
        // Named without loading CUDA (this test runs on machines without it).
        assert_eq!(device_named("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(device_named("cuda:3").unwrap(), Device::Cuda(3));
    }
}
