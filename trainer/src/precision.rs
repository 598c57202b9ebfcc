//! Numeric precision of the encoder's forward and backward: f32, or bf16 autocast.
//!
//! With [`Precision::Bf16`] the forward pass (and so the backward, which follows the forward's
//! dtypes) runs under PyTorch's autocast in bfloat16: matrix products in bf16, reductions, softmax
//! and LayerNorm in f32, exactly as `torch.autocast(device_type, dtype=torch.bfloat16)`. The
//! weights, their gradients, the optimiser and the whole Fastfood projection stay f32.
//!
//! tch's own `autocast` turns autocast on for CUDA only and leaves its dtype at PyTorch's default,
//! float16; bf16 needs `at::autocast::set_autocast_dtype`, which tch does not wrap. We call four
//! `at::autocast` functions of the libtorch we link directly (and torch-sys's wrappers for the
//! nesting count and the cast cache). They take `c10::DeviceType` and `c10::ScalarType`, both
//! `enum class : int8_t`, which the x86-64 and AArch64 C ABIs pass exactly as an `i8`; the test
//! below checks the round trip through the real library.

use results::Precision;
use tch::Device;

/// Running a forward pass in a [`Precision`] (the enum is part of the results schema, in the
/// `results` crate; the autocast that implements it needs tch, so it lives here).
pub trait Autocast {
    /// Runs `f` (a forward pass) in this precision on `device`.
    fn run<T>(self, device: Device, f: impl FnOnce() -> T) -> T;
}

impl Autocast for Precision {
    fn run<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        match self {
            Precision::F32 => f(),
            Precision::Bf16 => autocast(device, BFLOAT16, f),
        }
    }
}

/// `c10::DeviceType` values.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
/// `c10::ScalarType::BFloat16`.
const BFLOAT16: i8 = 15;

unsafe extern "C" {
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn is_autocast_enabled(device_type: i8) -> bool;
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn set_autocast_enabled(device_type: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn get_autocast_dtype(device_type: i8) -> i8;
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn set_autocast_dtype(device_type: i8, dtype: i8);
}

fn device_type(device: Device) -> i8 {
    match device {
        Device::Cuda(_) => DEVICE_CUDA,
        _ => DEVICE_CPU,
    }
}

/// Runs `f` with autocast on for `device`'s type in `dtype`, restoring the previous state after
/// (also the nesting count and the cast cache, as `torch.autocast`'s exit does).
fn autocast<T>(device: Device, dtype: i8, f: impl FnOnce() -> T) -> T {
    let kind = device_type(device);
    // SAFETY: plain setters/getters of thread-local autocast state in the linked libtorch; the
    // argument types match the C++ signatures (see the module doc).
    let (was_enabled, old_dtype) = unsafe { (is_autocast_enabled(kind), get_autocast_dtype(kind)) };
    unsafe {
        set_autocast_dtype(kind, dtype);
        set_autocast_enabled(kind, true);
        torch_sys::at_autocast_increment_nesting();
    }
    struct Restore {
        kind: i8,
        was_enabled: bool,
        old_dtype: i8,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: as above.
            unsafe {
                if torch_sys::at_autocast_decrement_nesting() == 0 {
                    torch_sys::at_autocast_clear_cache();
                }
                set_autocast_enabled(self.kind, self.was_enabled);
                set_autocast_dtype(self.kind, self.old_dtype);
            }
        }
    }
    let _restore = Restore { kind, was_enabled, old_dtype };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn bf16_autocast_runs_matmuls_in_bf16_and_restores_the_state() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        // SAFETY: reads of thread-local state.
        let before = unsafe { (is_autocast_enabled(DEVICE_CPU), get_autocast_dtype(DEVICE_CPU)) };
        let (inside_kind, inside_dtype) =
            Precision::Bf16.run(Device::Cpu, || (a.matmul(&b).kind(), unsafe { get_autocast_dtype(DEVICE_CPU) }));
        assert_eq!(inside_kind, Kind::BFloat16);
        assert_eq!(inside_dtype, BFLOAT16);
        let after = unsafe { (is_autocast_enabled(DEVICE_CPU), get_autocast_dtype(DEVICE_CPU)) };
        assert_eq!(before, after);
        assert!(!after.0);
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(Precision::F32.run(Device::Cpu, || a.matmul(&b).kind()), Kind::Float);
        // The CUDA state is set and read through the same functions without a GPU.
        // SAFETY: as above.
        unsafe {
            let old = get_autocast_dtype(DEVICE_CUDA);
            set_autocast_dtype(DEVICE_CUDA, BFLOAT16);
            assert_eq!(get_autocast_dtype(DEVICE_CUDA), BFLOAT16);
            set_autocast_dtype(DEVICE_CUDA, old);
        }
    }
}
