//! The Environment Abstraction Layer: initialised once per process.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use super::error::{DpdkError, Result};
use super::lcore::LcoreId;

static EAL_INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that EAL is up. Dropping it calls `rte_eal_cleanup`, so it must
/// outlive every port, mempool and mbuf (declare it first, drop it last).
pub struct Eal {
    // Not Send: cleanup must run on the thread that initialised EAL.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL from command-line style arguments (`args[0]` is the
    /// program name). DPDK parses and validates them; a bad argument fails
    /// here with DPDK's reason.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_INITIALISED.swap(true, Ordering::SeqCst) {
            // DPDK cannot be initialised twice in one process.
            return Err(DpdkError::new("rte_eal_init", "", libc::EALREADY));
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_ref()).map_err(|_| {
                    DpdkError::new("rte_eal_init", "argument with NUL byte", libc::EINVAL)
                })
            })
            .collect::<Result<_>>()?;
        // EAL may permute argv, so give it its own array of pointers; the
        // CStrings stay alive (and are leaked) because EAL keeps pointers to
        // some arguments (e.g. --file-prefix) for the life of the process.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        std::mem::forget(owned);
        argv.push(std::ptr::null_mut());
        let argc = (argv.len() - 1) as c_int;
        let argv_ptr = argv.as_mut_ptr();
        std::mem::forget(argv);
        // On any bad argument EAL prints its full usage text (~100 lines) to
        // stdout, burying the one line that matters (its stderr log and our
        // error). Park stdout for the duration of the call.
        let quiet = StdoutSilencer::new();
        // SAFETY: argv is a valid, NULL-terminated array of C strings that
        // lives for the rest of the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv_ptr) };
        drop(quiet);
        if rc < 0 {
            return Err(DpdkError::from_errno("rte_eal_init", ""));
        }
        Ok(Eal {
            _not_send: std::marker::PhantomData,
        })
    }

    /// The lcore running this (main) thread.
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Worker lcores EAL created (`-l`/`--lcores` minus the main one), in order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised; iteration starts at u32::MAX (-1).
        let mut id = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while id < sys::RTE_MAX_LCORE {
            out.push(LcoreId(id));
            // SAFETY: as above.
            id = unsafe { sys::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }

    /// Number of Ethernet ports EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        super::tsc_hz()
    }

    /// Blocks until every worker lcore has returned from its function.
    pub fn wait_all_workers(&self) {
        // SAFETY: EAL is initialised; we are on the main lcore.
        unsafe { sys::rte_eal_mp_wait_lcore() };
    }
}

/// Points fd 1 at /dev/null until dropped. Best effort: on any failure it
/// leaves stdout alone.
struct StdoutSilencer {
    saved: Option<c_int>,
}

impl StdoutSilencer {
    fn new() -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: plain fd syscalls on fds we own; /dev/null is opened and
        // closed here, the saved copy of fd 1 is restored in Drop.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null < 0 {
                return StdoutSilencer { saved: None };
            }
            let saved = libc::dup(1);
            if saved < 0 || libc::dup2(null, 1) < 0 {
                libc::close(null);
                if saved >= 0 {
                    libc::close(saved);
                }
                return StdoutSilencer { saved: None };
            }
            libc::close(null);
            StdoutSilencer { saved: Some(saved) }
        }
    }
}

impl Drop for StdoutSilencer {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // SAFETY: restores the fd saved in `new`.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL is initialised; the returned path is a static buffer.
        let runtime_dir = unsafe { std::ffi::CStr::from_ptr(sys::rte_eal_get_runtime_dir()) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: all lcores have been joined by the owner before this point
        // (the runtime waits on them), and EAL is initialised.
        unsafe {
            sys::rte_eal_mp_wait_lcore();
            sys::rte_eal_cleanup();
        }
        // EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>)
        // behind even with --no-huge; this primary process owns it and no
        // secondary process can attach once we are gone.
        if runtime_dir.contains("dpdk") {
            let _ = std::fs::remove_dir_all(&runtime_dir);
        }
    }
}
