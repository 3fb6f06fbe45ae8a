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
    pub fn init<S: AsRef<str>>(args: &[S]) -> std::result::Result<Eal, EalInitError> {
        if EAL_INITIALISED.swap(true, Ordering::SeqCst) {
            // DPDK cannot be initialised twice in one process.
            return Err(DpdkError::new("rte_eal_init", "", libc::EALREADY).into());
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_ref()).map_err(|_| {
                    DpdkError::new("rte_eal_init", "argument with NUL byte", libc::EINVAL)
                })
            })
            .collect::<Result<_>>()
            .map_err(EalInitError::from)?;
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
        // stdout, and the complaint itself up to four times on stderr
        // (getopt once per parsing pass, then a FATAL line and its log
        // copy). Park stdout and hold stderr back for the duration of the
        // call, so a failure can end in one line of our own.
        let quiet = Redirect::to_null(1);
        let captured = Capture::stderr();
        // SAFETY: argv is a valid, NULL-terminated array of C strings that
        // lives for the rest of the process.
        let rc = unsafe { sys::rte_eal_init(argc, argv_ptr) };
        let error = (rc < 0).then(|| DpdkError::from_errno("rte_eal_init", ""));
        drop(quiet);
        let log = captured.map(Capture::finish).unwrap_or_default();
        if let Some(error) = error {
            let program = args.first().map_or("", |a| a.as_ref());
            return Err(EalInitError {
                error,
                detail: summarise_eal_log(&log, program),
            });
        }
        // Success: whatever EAL warned about is still the operator's to see.
        eprint!("{log}");
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

    /// The CPU an lcore runs on (the first of its set), if EAL knows it.
    pub fn lcore_cpu(&self, lcore: LcoreId) -> Option<usize> {
        let id = c_int::try_from(lcore.0).ok()?;
        // SAFETY: EAL is initialised; an unknown lcore returns -1.
        let cpu = unsafe { sys::rte_lcore_to_cpu_id(id) };
        usize::try_from(cpu).ok()
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

/// Why `rte_eal_init` failed: DPDK's error code and, when EAL said more,
/// what it said, folded into one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalInitError {
    pub error: DpdkError,
    /// EAL's own messages, deduplicated and joined with "; ".
    pub detail: Option<String>,
}

impl From<DpdkError> for EalInitError {
    fn from(error: DpdkError) -> Self {
        EalInitError {
            error,
            detail: None,
        }
    }
}

impl std::fmt::Display for EalInitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Some failures (a secondary process without a primary) leave
        // rte_errno at 0, whose text "Success" would only confuse.
        match (self.error.code, &self.detail) {
            (0, Some(d)) => f.write_str(d),
            (0, None) => f.write_str("unknown error"),
            (_, Some(d)) => write!(f, "{}: {d}", self.error.reason()),
            (_, None) => f.write_str(&self.error.reason()),
        }
    }
}

impl std::error::Error for EalInitError {}

/// Folds what EAL printed while failing into one line: getopt's complaint
/// comes once per parsing pass and EAL's FATAL alert is repeated through its
/// log, so identical messages count once, and the generic alert is used only
/// when nothing more specific was said.
pub(crate) fn summarise_eal_log(log: &str, program: &str) -> Option<String> {
    let prefix = format!("{program}: ");
    let mut alerts: Vec<&str> = Vec::new();
    let mut details: Vec<&str> = Vec::new();
    for line in log.lines().map(str::trim) {
        let line = line.strip_prefix(prefix.as_str()).unwrap_or(line);
        let line = line.strip_prefix("EAL: ").unwrap_or(line);
        let (list, text) = match line.strip_prefix("FATAL: ") {
            Some(alert) => (&mut alerts, alert.trim()),
            None => (&mut details, line),
        };
        if !text.is_empty() && !list.contains(&text) {
            list.push(text);
        }
    }
    details.retain(|d| !alerts.contains(d));
    let chosen = if details.is_empty() { alerts } else { details };
    // A runaway log must not turn the one line into a page.
    const MAX_MESSAGES: usize = 4;
    let joined = chosen
        .iter()
        .take(MAX_MESSAGES)
        .map(|m| m.trim_end_matches('.'))
        .collect::<Vec<_>>()
        .join("; ");
    (!joined.is_empty()).then_some(joined)
}

/// Points an fd at /dev/null until dropped. Best effort: on any failure it
/// leaves the fd alone.
struct Redirect {
    fd: c_int,
    saved: Option<c_int>,
}

impl Redirect {
    fn to_null(fd: c_int) -> Self {
        // SAFETY: opens /dev/null and closes it again; `onto` only dups.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null < 0 {
                return Redirect { fd, saved: None };
            }
            let r = Redirect::onto(fd, null);
            libc::close(null);
            r
        }
    }

    /// Makes `fd` a copy of `target` (which the caller keeps owning).
    fn onto(fd: c_int, target: c_int) -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: plain fd syscalls; the saved copy of `fd` is restored and
        // closed in Drop.
        unsafe {
            libc::fflush(std::ptr::null_mut());
            let saved = libc::dup(fd);
            if saved < 0 {
                return Redirect { fd, saved: None };
            }
            if libc::dup2(target, fd) < 0 {
                libc::close(saved);
                return Redirect { fd, saved: None };
            }
            Redirect {
                fd,
                saved: Some(saved),
            }
        }
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // SAFETY: restores the fd saved in `onto`.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::dup2(saved, self.fd);
                libc::close(saved);
            }
        }
    }
}

/// Collects everything written to stderr into an anonymous memory file
/// until [`Capture::finish`]. A file, not a pipe, so a long log can never
/// block the writer.
struct Capture {
    file: std::fs::File,
    redirect: Redirect,
}

impl Capture {
    /// `None` when the memory file cannot be made or stderr not redirected;
    /// stderr is then left alone.
    fn stderr() -> Option<Capture> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: memfd_create returns a new fd we own (or -1), which
        // File::from_raw_fd takes over.
        let file = unsafe {
            let fd = libc::memfd_create(c"intellinode-eal-log".as_ptr(), libc::MFD_CLOEXEC);
            if fd < 0 {
                return None;
            }
            std::fs::File::from_raw_fd(fd)
        };
        let redirect = Redirect::onto(2, file.as_raw_fd());
        redirect
            .saved
            .is_some()
            .then_some(Capture { file, redirect })
    }

    /// Puts stderr back and returns what was written to it.
    fn finish(self) -> String {
        use std::io::{Read, Seek};
        let Capture { mut file, redirect } = self;
        drop(redirect);
        let mut bytes = Vec::new();
        if file.rewind().is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
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

#[cfg(test)]
mod tests {
    use super::summarise_eal_log;

    #[test]
    fn a_bad_option_is_said_once() {
        let log = "intellinode: unrecognized option '--bogus'\n\
                   intellinode: unrecognized option '--bogus'\n\
                   EAL: FATAL: Invalid 'command line' arguments.\n\
                   EAL: Invalid 'command line' arguments.\n";
        assert_eq!(
            summarise_eal_log(log, "intellinode").as_deref(),
            Some("unrecognized option '--bogus'")
        );
    }

    #[test]
    fn specific_messages_win_over_the_alert_and_are_joined() {
        let log = "EAL: lcore 77 unavailable\n\
                   EAL: invalid core list, please check specified cores are part of 0-1\n\
                   EAL: FATAL: Invalid 'command line' arguments.\n\
                   EAL: Invalid 'command line' arguments.\n";
        assert_eq!(
            summarise_eal_log(log, "x").as_deref(),
            Some("lcore 77 unavailable; invalid core list, please check specified cores are part of 0-1")
        );
    }

    #[test]
    fn the_alert_alone_and_nothing() {
        let log = "EAL: FATAL: Cannot init config\nEAL: Cannot init config\n";
        assert_eq!(
            summarise_eal_log(log, "x").as_deref(),
            Some("Cannot init config")
        );
        assert_eq!(summarise_eal_log("\n", "x"), None);
    }
}
