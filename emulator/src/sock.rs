//! The emulator's socket calls beyond `std::net`, through `nix`: an IPv4 TCP
//! socket with IP options set (`setsockopt(IPPROTO_IP, IP_OPTIONS)`) and an
//! optional local address, connected before it becomes a [`TcpStream`]
//! (`std::net` can neither set IP options nor bind before connecting), and
//! the one raw `setsockopt` for the options `nix` has no wrapper for.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

/// `e` as an [`io::Error`] that names the call that failed.
pub(crate) fn failed(e: Errno, what: &str) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `setsockopt(fd, level, name, value)` with `value` as the option's bytes,
/// for the options `nix` does not wrap (IP_OPTIONS, PACKET_ADD_MEMBERSHIP,
/// PACKET_IGNORE_OUTGOING).
pub(crate) fn set_option_bytes(
    fd: impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> Result<(), Errno> {
    let len = libc::socklen_t::try_from(value.len()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `value` is valid for `len` bytes for the duration of the
    // call and the kernel copies them; `fd` is an open descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            len,
        )
    };
    Errno::result(rc).map(drop)
}

/// Sets `options` (an IPv4 option area, a multiple of 4 bytes, at most 40)
/// on `fd`: every packet the socket sends then carries them.
pub fn set_ip_options(fd: impl AsFd, options: &[u8]) -> io::Result<()> {
    set_option_bytes(fd, libc::IPPROTO_IP, libc::IP_OPTIONS, options).map_err(|e| {
        failed(
            e,
            "setsockopt(IPPROTO_IP, IP_OPTIONS) failed (unknown IPv4 options need root or CAP_NET_RAW)",
        )
    })
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
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| failed(e, "socket(AF_INET, SOCK_STREAM)"))?;
    if !ip_options.is_empty() {
        set_ip_options(&fd, ip_options)?;
    }
    if let Some(ip) = bind {
        let local = SockaddrIn::from(SocketAddrV4::new(ip, 0));
        socket::bind(fd.as_raw_fd(), &local).map_err(|e| failed(e, &format!("bind({ip})")))?;
    }
    let stream = TcpStream::from(fd);
    // Linux bounds a blocking connect(2) by the send timeout.
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    socket::connect(stream.as_raw_fd(), &SockaddrIn::from(target))
        .map_err(|e| failed(e, &format!("connect({target})")))?;
    Ok(stream)
}
