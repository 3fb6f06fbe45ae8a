//! Checks on EAL arguments that DPDK itself would only report as a generic
//! probe failure buried in its log ("Cannot probe devices").
//!
//! Catching an unreadable pcap here turns it into one line that names the
//! file and the reason.

use std::fs::File;
use std::io::Read;

use crate::config::io_reason;

/// The pcap magic numbers libpcap accepts: classic (µs and ns, both byte
/// orders) and pcapng's section header block.
const PCAP_MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// Every `--vdev` devargs string in `eal_args`.
pub fn vdev_args(eal_args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut it = eal_args.iter();
    while let Some(a) = it.next() {
        if a == "--vdev" {
            if let Some(v) = it.next() {
                out.push(v.as_str());
            }
        } else if let Some(v) = a.strip_prefix("--vdev=") {
            out.push(v);
        }
    }
    out
}

/// Verifies every `rx_pcap=` file is a readable capture and every `tx_pcap=`
/// file can be created.
pub fn check_vdevs(eal_args: &[String]) -> Result<(), String> {
    for vdev in vdev_args(eal_args) {
        let device = vdev.split(',').next().unwrap_or(vdev);
        for kv in vdev.split(',').skip(1) {
            if let Some(path) = kv.strip_prefix("rx_pcap=") {
                check_readable_pcap(path)
                    .map_err(|why| format!("pcap {path} (--vdev {device}): {why}"))?;
            } else if let Some(path) = kv.strip_prefix("tx_pcap=") {
                File::create(path).map_err(|e| {
                    format!(
                        "pcap {path} (--vdev {device}): cannot create: {}",
                        io_reason(&e)
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn check_readable_pcap(path: &str) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic)
        .map_err(|_| "cannot read: file is shorter than a pcap header".to_owned())?;
    if !PCAP_MAGICS.contains(&magic) {
        return Err(format!(
            "not a pcap or pcapng file (starts with {:02x}{:02x}{:02x}{:02x})",
            magic[0], magic[1], magic[2], magic[3]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_both_vdev_spellings() {
        let a = args(&[
            "-l",
            "0,1",
            "--vdev",
            "net_null0",
            "--vdev=net_pcap0,rx_pcap=a.pcap",
        ]);
        assert_eq!(vdev_args(&a), vec!["net_null0", "net_pcap0,rx_pcap=a.pcap"]);
    }

    #[test]
    fn missing_and_bogus_pcaps_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pcap");
        let e = check_vdevs(&args(&[
            "--vdev",
            &format!("net_pcap0,rx_pcap={}", missing.display()),
        ]))
        .unwrap_err();
        assert!(e.contains("nope.pcap") && e.contains("No such file"), "{e}");

        let bogus = dir.path().join("bogus.pcap");
        std::fs::File::create(&bogus)
            .unwrap()
            .write_all(b"hello world")
            .unwrap();
        let e = check_vdevs(&args(&[
            "--vdev",
            &format!("net_pcap0,rx_pcap={}", bogus.display()),
        ]))
        .unwrap_err();
        assert!(e.contains("not a pcap"), "{e}");

        let good = dir.path().join("good.pcap");
        std::fs::File::create(&good)
            .unwrap()
            .write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0])
            .unwrap();
        check_vdevs(&args(&[
            "--vdev",
            &format!(
                "net_pcap0,rx_pcap={},tx_pcap={}/out.pcap",
                good.display(),
                dir.path().display()
            ),
        ]))
        .unwrap();

        let e = check_vdevs(&args(&[
            "--vdev",
            "net_pcap0,tx_pcap=/nonexistent-dir/out.pcap",
        ]))
        .unwrap_err();
        assert!(e.contains("cannot create"), "{e}");
    }
}
