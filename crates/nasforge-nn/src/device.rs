//! The one place where the compute device is chosen.

use burn::prelude::Device;
use nasforge_core::{Error, Result};

/// Where tensors live. Only `cpu` (burn's `flex` backend) is built by default; GPU backends are
/// cargo features that CI does not build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn `flex` on the CPU.
    Cpu,
}

impl DeviceKind {
    /// Parses a `--device` value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            other => Err(Error::invalid(format!(
                "device `{other}` is not available in this build; the only device is `cpu`"
            ))),
        }
    }

    /// The inference device.
    pub fn device(self) -> Device {
        match self {
            DeviceKind::Cpu => Device::flex(),
        }
    }

    /// The training device (with automatic differentiation).
    pub fn training_device(self) -> Device {
        self.device().autodiff()
    }
}
