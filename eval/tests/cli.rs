//! `intellieval` as an operator meets it: a report over a directory with no
//! runs in it is one line naming the missing file, and exit status 1.

use std::process::Command;

#[test]
fn a_directory_without_runs_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_intellieval"))
        .args(["report", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = dir.path().join("runs/index.json");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("intellieval: cannot read ")
            && stderr.contains(&expected.display().to_string()),
        "{stderr}"
    );
    assert!(!dir.path().join("summary.json").exists());
}
