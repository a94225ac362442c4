//! The one place where the compute device is chosen.
//!
//! `cpu` (burn's `flex` backend, with our kernels from [`crate::kernels`]) is always built.
//! GPU backends are cargo features that CI does not build: `cuda` (NVIDIA; burn's build of it
//! downloads LLVM, so it needs the internet), `wgpu` (whichever graphics API the platform has)
//! and `vulkan` (wgpu pinned to Vulkan). Build with e.g.
//! `cargo build --release --features cuda` and pass `--device cuda`.

use burn::prelude::Device;
use nasforge_core::{Error, Result};

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn `flex` on the CPU.
    Cpu,
    /// burn's CUDA backend, first GPU (cargo feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda,
    /// burn's wgpu backend on the platform's default graphics API (cargo feature `wgpu`).
    #[cfg(feature = "wgpu")]
    Wgpu,
    /// burn's wgpu backend pinned to Vulkan (cargo feature `vulkan`).
    #[cfg(feature = "vulkan")]
    Vulkan,
}

/// Every device name and the cargo feature that builds it.
const DEVICES: [(&str, &str); 4] = [
    ("cpu", ""),
    ("cuda", "cuda"),
    ("wgpu", "wgpu"),
    ("vulkan", "vulkan"),
];

impl DeviceKind {
    /// Parses a `--device` value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(DeviceKind::Cuda),
            #[cfg(feature = "wgpu")]
            "wgpu" => Ok(DeviceKind::Wgpu),
            #[cfg(feature = "vulkan")]
            "vulkan" => Ok(DeviceKind::Vulkan),
            other => Err(Error::invalid(
                match DEVICES.iter().find(|(n, _)| *n == other) {
                    Some((_, feature)) => format!(
                        "device `{other}` is not built into this binary; rebuild with \
                     `cargo build --release --features {feature}` (devices in this build: {})",
                        Self::available().join(", ")
                    ),
                    None => format!(
                        "unknown device `{other}`; devices in this build: {} (others: cuda, wgpu, \
                     vulkan, each a cargo feature)",
                        Self::available().join(", ")
                    ),
                },
            )),
        }
    }

    /// The device names this binary was built with.
    pub fn available() -> Vec<&'static str> {
        DEVICES
            .iter()
            .filter(|(name, _)| Self::parse_built(name))
            .map(|(name, _)| *name)
            .collect()
    }

    fn parse_built(name: &str) -> bool {
        match name {
            "cpu" => true,
            "cuda" => cfg!(feature = "cuda"),
            "wgpu" => cfg!(feature = "wgpu"),
            "vulkan" => cfg!(feature = "vulkan"),
            _ => false,
        }
    }

    /// The inference device.
    pub fn device(self) -> Device {
        match self {
            DeviceKind::Cpu => Device::flex(),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => Device::cuda(0),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Device::wgpu(Default::default()),
            #[cfg(feature = "vulkan")]
            DeviceKind::Vulkan => Device::vulkan(Default::default()),
        }
    }

    /// The training device (with automatic differentiation).
    pub fn training_device(self) -> Device {
        self.device().autodiff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_not_built_names_the_feature_that_builds_it() {
        assert_eq!(DeviceKind::parse("cpu").unwrap(), DeviceKind::Cpu);
        if !cfg!(feature = "cuda") {
            let e = DeviceKind::parse("cuda").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
        let e = DeviceKind::parse("tpu").unwrap_err().to_string();
        assert!(
            e.contains("unknown device `tpu`") && e.contains("cpu"),
            "{e}"
        );
    }
}
