//! The one place where a concrete Burn backend is chosen, by cargo feature.
//!
//! Library code stays generic over `B: Backend`; binaries, examples and the xtask
//! use [`Backend`] (inference) and [`TrainBackend`] (autodiff) from here.
//! Priority when several features are on: `cuda` > `wgpu` > `flex` > `ndarray`.

#[cfg(feature = "cuda")]
mod chosen {
    /// The selected backend: CUDA.
    pub type Backend = burn::backend::Cuda<f32, i32>;
    /// Human-readable backend name.
    pub const NAME: &str = "cuda";
}
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    /// The selected backend: WGPU.
    pub type Backend = burn::backend::Wgpu<f32, i32>;
    /// Human-readable backend name.
    pub const NAME: &str = "wgpu";
}
#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    /// The selected backend: Flex (CPU).
    pub type Backend = burn::backend::Flex;
    /// Human-readable backend name.
    pub const NAME: &str = "flex (cpu)";
}
#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    /// The selected backend: NdArray (CPU).
    pub type Backend = burn::backend::NdArray<f32>;
    /// Human-readable backend name.
    pub const NAME: &str = "ndarray (cpu)";
}
#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("enable one backend feature: ndarray (default), flex, wgpu or cuda");

pub use chosen::{Backend, NAME};

/// The selected backend with automatic differentiation, for training.
pub type TrainBackend = burn::backend::Autodiff<Backend>;

/// The device type of [`Backend`].
pub type Device = <Backend as burn::tensor::backend::BackendTypes>::Device;

/// The device with the given index (GPU ordinal; ignored by CPU backends).
pub fn device(index: usize) -> Device {
    #[cfg(feature = "cuda")]
    {
        burn::backend::cuda::CudaDevice::new(index)
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        if index == 0 {
            burn::backend::wgpu::WgpuDevice::DefaultDevice
        } else {
            burn::backend::wgpu::WgpuDevice::DiscreteGpu(index)
        }
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = index;
        Default::default()
    }
}

/// A short description of the backend and device, e.g. `ndarray (cpu) Cpu`.
pub fn describe(device: &Device) -> String {
    format!("{NAME} {device:?}")
}

/// Checks that `device` is usable: runs one tiny computation on it and reads it back.
///
/// GPU backends initialise their runtime on the first operation and *panic* when it is
/// unavailable (no Vulkan driver or adapter for WGPU; no `libcuda`, no NVIDIA GPU or a bad
/// ordinal for CUDA). Binaries call this first so that such a machine gets one clear error
/// naming the backend and device instead of a panic deep inside Burn. The panic is caught
/// (`catch_unwind`) with the default panic message silenced while probing; its text is
/// part of the error.
///
/// # Errors
/// When the device cannot be initialised or returns a wrong result.
pub fn probe(device: &Device) -> anyhow::Result<()> {
    use burn::tensor::Tensor;
    use std::panic::{self, AssertUnwindSafe};

    // Silence the default hook (it would print the panic and a backtrace hint) and keep the
    // messages for the error instead. CubeCL initialises a device on its own thread: the
    // first message is the cause, the caller's is a consequence.
    let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let previous = panic::take_hook();
    {
        let messages = messages.clone();
        panic::set_hook(Box::new(move |info| {
            if let Ok(mut m) = messages.lock() {
                m.push(info.to_string());
            }
        }));
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let t = Tensor::<Backend, 1>::from_floats([1.0f32, 2.0, 3.0], device);
        (t.clone() * t).sum().into_data().to_vec::<f32>()
    }));
    panic::set_hook(previous);
    match result {
        Ok(Ok(v)) if v.len() == 1 && (v[0] - 14.0).abs() < 1e-3 => Ok(()),
        Ok(Ok(v)) => anyhow::bail!(
            "backend {NAME}, device {device:?}: a probe computation (1+4+9) returned {v:?}, not 14"
        ),
        Ok(Err(e)) => {
            anyhow::bail!("backend {NAME}, device {device:?}: reading a probe result failed: {e:?}")
        }
        Err(payload) => {
            let detail = messages
                .lock()
                .ok()
                .filter(|m| !m.is_empty())
                .map(|m| m.join("; then "))
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            anyhow::bail!(
                "backend {NAME}, device {device:?} is not usable on this machine ({}); \
                 Burn failed to initialise it: {detail}",
                hint()
            )
        }
    }
}

/// What the selected backend needs from the machine (for [`probe`]'s error).
fn hint() -> &'static str {
    #[cfg(feature = "cuda")]
    {
        "CUDA needs an NVIDIA GPU with its driver (libcuda) and NVRTC from a CUDA toolkit"
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        "WGPU needs a Vulkan, Metal or DX12 driver with an adapter; on a machine without a \
         GPU, Mesa's software Vulkan driver works: apt-get install mesa-vulkan-drivers"
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        "a CPU backend needs nothing more"
    }
}

/// Memory of a GPU backend's device pool (CubeCL's accounting), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes held by live tensors.
    pub in_use: u64,
    /// Bytes the pool has reserved from the device: it keeps pages once allocated, so
    /// after a workload this is its high-water mark (what must fit on the GPU).
    pub reserved: u64,
}

/// The device pool's memory on GPU backends (`None` on CPU backends, whose memory is the
/// process's resident set, or if the runtime cannot report it).
pub fn device_memory(device: &Device) -> Option<DeviceMemory> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        use cubecl::Runtime as _;
        #[cfg(feature = "cuda")]
        let usage = cubecl::cuda::CudaRuntime::client(device).memory_usage();
        #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
        let usage = burn::backend::wgpu::WgpuRuntime::client(device).memory_usage();
        let usage = usage.ok()?;
        Some(DeviceMemory {
            in_use: usage.bytes_in_use,
            reserved: usage.bytes_reserved,
        })
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        let _ = device;
        None
    }
}
