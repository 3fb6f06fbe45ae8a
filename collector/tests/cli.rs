//! The collector's command line as an operator meets it: a bad config file
//! is one line naming the file, the key and what is wrong, and exit status 1,
//! before anything is scraped or pushed.

use std::process::Command;

fn run_with(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_value_is_one_line_naming_its_key() {
    let (code, stderr) = run_with("interval_ms = \"fast\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("collector: error: ") && stderr.contains("`interval_ms`"),
        "{stderr}"
    );
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn a_missing_file_is_one_line_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["--config", "/nonexistent/collector.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/collector.toml"), "{stderr}");
}
