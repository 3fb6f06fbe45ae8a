//! Finds DPDK with pkg-config, generates bindings with bindgen and compiles the
//! C shim for DPDK's static inline functions.
//!
//! A missing DPDK is the most common first-run failure, so it is reported as a
//! single line that says what to install instead of a panic backtrace.

use std::env;
use std::path::PathBuf;
use std::process::exit;

const MIN_DPDK: &str = "22.11";

fn fail(msg: &str) -> ! {
    // cargo shows build-script stderr under "--- stderr"; keep it to one line.
    eprintln!("error: {msg}");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .cargo_metadata(true)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_owned();
            fail(&format!(
                "DPDK >= {MIN_DPDK} not found by pkg-config (libdpdk.pc): {first}. \
                 Install it with `make deps` (Debian/Ubuntu: apt-get install libdpdk-dev clang libclang-dev pkg-config libpcap-dev)"
            ));
        }
    };

    // DPDK's .pc carries `-include rte_config.h` and `-march=...`; both the shim
    // and bindgen must see exactly the flags applications are built with, or
    // struct layouts (rte_mbuf!) could differ.
    let cflags = match pkg_config::get_variable("libdpdk", "cflags") {
        Ok(v) if !v.is_empty() => v,
        _ => String::new(),
    };
    let mut clang_args: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    for (k, v) in &dpdk.defines {
        clang_args.push(match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        });
    }
    let extra = other_cflags();
    clang_args.extend(extra.iter().cloned());
    let _ = cflags;

    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3).warnings(false);
    for p in &dpdk.include_paths {
        build.include(p);
    }
    for f in &extra {
        build.flag(f);
    }
    build.compile("intellinode_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&clang_args)
        .allowlist_function("shim_.*")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_dev_.*")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_stats_reset")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_in_use_count")
        .allowlist_function("rte_mempool_lookup")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_next_lcore")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_type("rte_eth_rx_mq_mode")
        .allowlist_type("rte_eth_tx_mq_mode")
        .allowlist_type("rte_lcore_state_t")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("RTE_MBUF_DEFAULT_DATAROOM")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN")
        .allowlist_var("RTE_ETH_MQ_RX_RSS_FLAG")
        .allowlist_var("RTE_MBUF_F_RX_IP_CKSUM_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .prepend_enum_name(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen could not process the DPDK headers: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR not set")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}

/// Flags from `pkg-config --cflags libdpdk` that are not -I/-D (which the
/// pkg-config crate already parsed), e.g. `-include rte_config.h -march=corei7`.
fn other_cflags() -> Vec<String> {
    let out =
        std::process::Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
            .args(["--cflags", "libdpdk"])
            .output();
    let Ok(out) = out else { return Vec::new() };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" {
            if let Some(h) = words.next() {
                flags.push("-include".to_owned());
                flags.push(h.to_owned());
            }
        } else if w.starts_with("-march") || w.starts_with("-mcpu") || w.starts_with("-mtune") {
            flags.push(w.to_owned());
        }
    }
    flags
}
