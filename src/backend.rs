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
