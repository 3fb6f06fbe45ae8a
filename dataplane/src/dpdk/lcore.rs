//! Worker lcores: EAL's pinned threads, and launching Rust closures on them.

use std::ffi::c_void;
use std::fmt;
use std::os::raw::c_int;

use dpdk_sys as sys;

use super::error::{DpdkError, Result};

/// An EAL logical core. Prints as `lcore1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LcoreId(pub u32);

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl LcoreId {
    /// The lcore the calling thread runs on.
    pub fn current() -> LcoreId {
        // SAFETY: reads a thread-local.
        LcoreId(unsafe { sys::shim_lcore_id() })
    }

    /// NUMA socket of this lcore, for allocating its memory locally.
    pub fn socket(self) -> u32 {
        // SAFETY: any lcore id is accepted.
        unsafe { sys::rte_lcore_to_socket_id(self.0) }
    }
}

unsafe extern "C" fn trampoline<F>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> i32 + Send + 'static,
{
    // SAFETY: `arg` is the Box<F> leaked by `launch` for exactly this call.
    let f = unsafe { Box::from_raw(arg as *mut F) };
    f()
}

/// Runs `f` on worker lcore `lcore` (EAL has already pinned that thread to
/// its CPU). The lcore must be idle; join with `Eal::wait_all_workers`.
pub fn launch<F>(lcore: LcoreId, f: F) -> Result<()>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let arg = Box::into_raw(Box::new(f)) as *mut c_void;
    // SAFETY: trampoline::<F> matches lcore_function_t and takes ownership of
    // `arg` only if the launch succeeds.
    let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline::<F>), arg, lcore.0) };
    if rc != 0 {
        // SAFETY: the launch failed, so the closure was never handed over.
        drop(unsafe { Box::from_raw(arg as *mut F) });
        return Err(DpdkError::new(
            "rte_eal_remote_launch",
            lcore.to_string(),
            rc,
        ));
    }
    Ok(())
}
