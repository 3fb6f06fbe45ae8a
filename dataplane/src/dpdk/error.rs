//! DPDK failures as values: which call failed, on what, and DPDK's own words.

use std::ffi::CStr;
use std::fmt;

use dpdk_sys as sys;

/// A failed DPDK call. Displays as one line, e.g.
/// `rte_eth_dev_start(port1): Operation not supported`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    /// The DPDK function that failed.
    pub call: &'static str,
    /// What it was called on (`port0`, `lcore2`, a pool name), may be empty.
    pub subject: String,
    /// The positive errno-style code (`rte_errno` or the negated return value).
    pub code: i32,
}

impl DpdkError {
    pub(crate) fn new(call: &'static str, subject: impl Into<String>, code: i32) -> Self {
        DpdkError {
            call,
            subject: subject.into(),
            code: code.abs(),
        }
    }

    /// For calls that report failure through `rte_errno`.
    pub(crate) fn from_errno(call: &'static str, subject: impl Into<String>) -> Self {
        // SAFETY: reads a thread-local integer.
        let code = unsafe { sys::shim_errno() };
        DpdkError::new(call, subject, code)
    }

    /// DPDK's description of the code (covers both libc errno values and
    /// DPDK's own `E_RTE_*` codes).
    pub fn reason(&self) -> String {
        // SAFETY: rte_strerror always returns a valid NUL-terminated string
        // (a static one, or a thread-local buffer we copy out immediately).
        unsafe { CStr::from_ptr(sys::rte_strerror(self.code)) }
            .to_string_lossy()
            .into_owned()
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subject.is_empty() {
            write!(f, "{}: {}", self.call, self.reason())
        } else {
            write!(f, "{}({}): {}", self.call, self.subject, self.reason())
        }
    }
}

impl std::error::Error for DpdkError {}

pub type Result<T> = std::result::Result<T, DpdkError>;
