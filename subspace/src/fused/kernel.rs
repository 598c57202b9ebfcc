//! The CUDA side of the fused FWHT: NVRTC compilation of `fwht.cu` and launches on tch's memory.
//!
//! Nothing here is linked against CUDA: cudarc (features `dynamic-loading`, `cuda-13000`) opens
//! `libcuda.so.1` and `libnvrtc.so.13` with `dlopen` the first time a CUDA tensor needs the
//! kernel. On the GPU machines those come from the driver and from PyTorch's pip install
//! (`site-packages/nvidia/cu13/lib`, which `cargo xtask gpu-check`'s script puts on
//! `LD_LIBRARY_PATH`); `cargo xtask setup` installs NVRTC here too, so that the CPU tests compile
//! the kernel's source (NVRTC needs no GPU).
//!
//! Context and stream: PyTorch computes in the device's primary context on the legacy default
//! stream (stream 0) unless a program switches streams, which tch never does. cudarc's
//! `CudaContext::new` retains that same primary context and `default_stream` is stream 0, so a
//! launch here is ordered after every tch operation already queued and before every later one:
//! no synchronisation is needed, and none is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{CompileOptions, Ptx};
use tch::Tensor;

use crate::cuda::{self, libraries_present, nvrtc_present};

use super::{At, DEFAULT_TILE_LOG2, FusedError, MAX_TILE_LOG2, Transform, plan};

/// The kernel's CUDA C source.
pub const SOURCE: &str = include_str!("fwht.cu");
const FUNCTION: &str = "fwht_pass";

/// Compiles [`SOURCE`] for `arch` (e.g. `compute_90` for PTX, `sm_90` for a cubin) and returns the
/// PTX. `--fmad=false` keeps every product and sum rounded separately, as the CPU emulation does.
pub fn compile(arch: &str) -> Result<Ptx, String> {
    nvrtc_present()?;
    let options = CompileOptions {
        fmad: Some(false),
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_owned()],
        name: Some("fwht.cu".to_owned()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(SOURCE, options).map_err(|err| match err {
        cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => {
            format!("NVRTC failed ({nvrtc:?}):\n{}", log.to_string_lossy())
        }
        other => format!("NVRTC failed: {other:?}"),
    })
}

/// Compiles [`SOURCE`] to machine code for `sm_arch` (e.g. `sm_90`) with ptxas's verbose report and
/// returns NVRTC's log: registers per thread, spills, shared memory. Needs only NVRTC.
pub fn resource_report(sm_arch: &str) -> Result<String, String> {
    use cudarc::nvrtc::result;
    nvrtc_present()?;
    let source = std::ffi::CString::new(SOURCE).map_err(|err| err.to_string())?;
    let program = result::create_program(&source, None).map_err(|err| format!("{err:?}"))?;
    let options = [format!("--gpu-architecture={sm_arch}"), "--fmad=false".to_owned(), "--ptxas-options=-v".to_owned()];
    // SAFETY: `program` was created above and is destroyed once, after its last use.
    unsafe {
        let compiled = result::compile_program(program, &options);
        let log = result::get_program_log(program).map_err(|err| format!("{err:?}"));
        let _ = result::destroy_program(program);
        let log: String = log?.iter().take_while(|&&byte| byte != 0).map(|&byte| byte as u8 as char).collect();
        compiled.map_err(|err| format!("NVRTC failed ({err:?}):\n{log}"))?;
        Ok(log)
    }
}

/// The compiled kernel on one device.
pub struct Kernel {
    stream: Arc<CudaStream>,
    function: CudaFunction,
    max_tile_log2: u32,
    /// e.g. `NVIDIA H200, sm_90, 227 KiB shared/block`.
    description: String,
}

/// The kernel for CUDA device `ordinal`, compiled and loaded on first use (then cached; a
/// failure is cached too, so it is reported once per process and costs nothing afterwards).
pub fn get(ordinal: usize) -> Result<&'static Kernel, FusedError> {
    type Cache = Mutex<HashMap<usize, Result<&'static Kernel, String>>>;
    static KERNELS: OnceLock<Cache> = OnceLock::new();
    let mut kernels = KERNELS.get_or_init(Default::default).lock().unwrap_or_else(|err| err.into_inner());
    kernels
        .entry(ordinal)
        .or_insert_with(|| load(ordinal).map(|kernel| &*Box::leak(Box::new(kernel))))
        .clone()
        .map_err(FusedError::Unavailable)
}

fn load(ordinal: usize) -> Result<Kernel, String> {
    libraries_present()?;
    // Make sure tch has initialised CUDA (its primary context) before cudarc touches the device.
    cuda::load_backend().map_err(|err| err.to_string())?;
    fn driver(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> String {
        move |err| format!("{what}: {err:?}")
    }
    let context = CudaContext::new(ordinal).map_err(driver("cuInit/primary context"))?;
    let (major, minor) = context.compute_capability().map_err(driver("compute capability"))?;
    let optin = context
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .map_err(driver("shared memory attribute"))?;
    let name = context.name().unwrap_or_else(|_| "unknown device".to_owned());
    let ptx = compile(&format!("compute_{major}{minor}"))?;
    let module = context.load_module(ptx).map_err(driver("loading the PTX"))?;
    let function = module.load_function(FUNCTION).map_err(driver("finding fwht_pass"))?;
    // The largest tile whose f32 elements fit the shared memory a block may opt into.
    let max_tile_log2 = (DEFAULT_TILE_LOG2..=MAX_TILE_LOG2)
        .rev()
        .find(|&bits| (4i64 << bits) <= i64::from(optin))
        .unwrap_or(DEFAULT_TILE_LOG2);
    function
        .set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 4 << max_tile_log2)
        .map_err(driver("opting into shared memory"))?;
    Ok(Kernel {
        stream: context.default_stream(),
        function,
        max_tile_log2,
        description: format!("{name}, sm_{major}{minor}, {} KiB shared/block", optin / 1024),
    })
}

/// A device pointer as the kernel's argument (0 for an absent operand).
fn pointer(tensor: Option<&Tensor>) -> u64 {
    tensor.map_or(0, |tensor| tensor.data_ptr() as u64)
}

impl Kernel {
    /// The largest tile this device takes (bits), which [`plan`] uses.
    pub fn max_tile_log2(&self) -> u32 {
        self.max_tile_log2
    }

    /// The device the kernel was loaded on, in words: name, architecture and the shared memory a
    /// block may opt into (e.g. `NVIDIA H200, sm_90, 227 KiB shared/block`).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Launches the passes of `transform` with tiles of at most `2^max_tile_log2` elements,
    /// writing `dst` (`[rows, 2^log_n]` f32, contiguous, on the source's device; checked by the
    /// caller). Asynchronous, like every tch operation.
    pub(super) fn launch(&self, transform: &Transform, dst: &Tensor, max_tile_log2: u32) -> Result<(), FusedError> {
        let max_tile_log2 = max_tile_log2.min(self.max_tile_log2);
        let passes = plan(transform.log_n, max_tile_log2);
        let src = pointer(Some(transform.src));
        let dst_ptr = pointer(Some(dst));
        let src_len = transform.src.numel() as i64;
        let rows = transform.rows as i64;
        let log_n = transform.log_n as i32;
        let gather = pointer(transform.gather);
        let broadcast = i32::from(transform.broadcast_src);
        let log_period = transform.log_period() as i32;
        let pre_vec = pointer(transform.pre_vec.map(|(tensor, _)| tensor));
        let pre_at_source = i32::from(matches!(transform.pre_vec, Some((_, At::Source))));
        let pre_sign = pointer(transform.pre_sign);
        let pre_row = pointer(transform.pre_row);
        let post_vec = pointer(transform.post_vec);
        let post_row = pointer(transform.post_row);
        let post_sign = pointer(transform.post_sign);
        for (idx, pass) in passes.iter().enumerate() {
            let tiles = pass.n_tiles(transform.rows, transform.log_n);
            let grid = u32::try_from(tiles)
                .map_err(|_| FusedError::Launch(format!("{tiles} tiles exceed the grid's 2^32 - 1 blocks")))?;
            let config = LaunchConfig {
                grid_dim: (grid, 1, 1),
                block_dim: (pass.threads(), 1, 1),
                shared_mem_bytes: pass.shared_bytes(),
            };
            let (lo, log_m, log_t) = (pass.lo as i32, pass.log_m as i32, pass.log_t as i32);
            let (first, last) = (i32::from(idx == 0), i32::from(idx + 1 == passes.len()));
            let mut builder = self.stream.launch_builder(&self.function);
            builder
                .arg(&src)
                .arg(&dst_ptr)
                .arg(&src_len)
                .arg(&rows)
                .arg(&log_n)
                .arg(&lo)
                .arg(&log_m)
                .arg(&log_t)
                .arg(&first)
                .arg(&last)
                .arg(&gather)
                .arg(&broadcast)
                .arg(&log_period)
                .arg(&pre_vec)
                .arg(&pre_at_source)
                .arg(&pre_sign)
                .arg(&pre_row)
                .arg(&post_vec)
                .arg(&post_row)
                .arg(&post_sign);
            // SAFETY: the argument list matches `fwht_pass`'s signature (pointers as u64, `i64` as
            // i64, `int` as i32); every pointer is a live, contiguous tensor of the checked dtype
            // and length on this device, held by the caller until the launch is ordered on stream
            // 0 before any later tch operation that could free it; `dst` has `rows << log_n`
            // elements, which the grid covers exactly once per pass.
            unsafe { builder.launch(config) }.map_err(|err| FusedError::Launch(format!("{err:?}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether NVRTC is here; if not, says why the calling test skips.
    fn nvrtc_or_skip() -> bool {
        nvrtc_present().map_err(|reason| eprintln!("skipped: {reason}")).is_ok()
    }

    /// NVRTC needs no GPU: where `cargo xtask setup` installed it, the kernel's source is compiled
    /// for the H100/H200 (sm_90) and for an older target, and the entry point must be in the PTX.
    #[test]
    fn kernel_source_compiles_with_nvrtc() {
        if !nvrtc_or_skip() {
            return;
        }
        for arch in ["compute_90", "compute_80"] {
            let ptx = compile(arch).unwrap_or_else(|err| panic!("{arch}: {err}"));
            let text = ptx.to_src();
            assert!(text.contains(".entry fwht_pass"), "{arch}: no fwht_pass entry in the PTX");
            assert!(text.contains(&format!(".target sm_{}", &arch["compute_".len()..])), "{arch}");
            // --fmad=false: no fused multiply-add may appear, so results match the CPU emulation.
            assert!(!text.contains("fma.rn.f32"), "{arch}: fused multiply-add in the PTX");
        }
    }

    /// Every launch uses up to 1024 threads, so the kernel must fit in 64 registers per thread
    /// (65,536 per block) on the H100/H200 and the A100, and it must not spill to local memory.
    #[test]
    fn kernel_fits_1024_threads_without_spills() {
        if !nvrtc_or_skip() {
            return;
        }
        for arch in ["sm_90", "sm_80"] {
            let log = resource_report(arch).unwrap_or_else(|err| panic!("{arch}: {err}"));
            let registers: usize = log
                .split("Used ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| panic!("{arch}: no register count in:\n{log}"));
            eprintln!("{arch}: {registers} registers per thread");
            assert!(registers <= 64, "{arch}: {registers} registers per thread: 1024 threads would not fit\n{log}");
            assert!(log.contains("0 bytes spill stores, 0 bytes spill loads"), "{arch}: spills\n{log}");
        }
    }

    /// A compile error is reported with NVRTC's log (not a panic inside cudarc).
    #[test]
    fn bad_architecture_is_a_clear_error() {
        if !nvrtc_or_skip() {
            return;
        }
        let err = compile("compute_1").unwrap_err();
        assert!(err.contains("NVRTC failed"), "{err}");
    }
}
