//! The one place pktgen calls the socket API directly: an IPv4 TCP socket
//! with IP options set (`setsockopt(IPPROTO_IP, IP_OPTIONS)`) and an
//! optional local address, connected before it becomes a [`TcpStream`].
//! `std::net` can neither set IP options nor bind before connecting.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// Sets `options` (an IPv4 option area, a multiple of 4 bytes, at most 40)
/// on `fd`: every packet the socket sends then carries them.
pub fn set_ip_options(fd: &impl AsRawFd, options: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(options.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "IP options too long"))?;
    // SAFETY: `options` is valid for `len` bytes for the duration of the
    // call; the kernel copies them.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_OPTIONS,
            options.as_ptr().cast(),
            len,
        )
    };
    check(
        rc,
        "setsockopt(IPPROTO_IP, IP_OPTIONS) failed (unknown IPv4 options need root or CAP_NET_RAW)",
    )
}

/// Opens an IPv4 TCP socket, sets `ip_options` (if not empty), binds it to
/// `bind` (if given, port chosen by the kernel), and connects it to
/// `target`, giving up after `timeout`.
pub fn connect_v4(
    target: SocketAddrV4,
    bind: Option<Ipv4Addr>,
    ip_options: &[u8],
    timeout: Duration,
) -> io::Result<TcpStream> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket(AF_INET, SOCK_STREAM)")?;
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !ip_options.is_empty() {
        set_ip_options(&fd, ip_options)?;
    }
    if let Some(ip) = bind {
        let sa = sockaddr(SocketAddrV4::new(ip, 0));
        // SAFETY: `sa` is a valid sockaddr_in of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        check(rc, &format!("bind({ip})"))?;
    }
    let stream = TcpStream::from(fd);
    // Linux bounds a blocking connect(2) by the send timeout.
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let sa = sockaddr(target);
    // SAFETY: `sa` is a valid sockaddr_in of the size passed.
    let rc = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    check(rc, &format!("connect({target})"))?;
    Ok(stream)
}
