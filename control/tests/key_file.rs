//! Key files: format, one-line errors naming the file, the mode check.

use std::fs;
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use control::{Key, KeyProblem};

const HEX: &str = "8f3a9c0d1e2f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9";

fn hex() -> String {
    HEX.to_string()
}

fn write_key(dir: &tempfile::TempDir, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut f = fs::File::create(&path).expect("create");
    f.write_all(content).expect("write");
    #[cfg(unix)]
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    #[cfg(not(unix))]
    let _ = mode;
    path
}

#[test]
fn good_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in [
        ("plain", hex()),
        ("newline", format!("{}\n", hex())),
        ("crlf", format!("{}\r\n", hex())),
        ("upper", hex().to_uppercase()),
    ] {
        let path = write_key(&dir, name, content.as_bytes(), 0o600);
        let k = Key::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(k.to_hex(), hex());
    }
    // Read-only for the owner is fine too.
    let path = write_key(&dir, "ro", hex().as_bytes(), 0o400);
    assert!(Key::from_file(&path).is_ok());
}

#[test]
fn bad_key_files_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<u8>, KeyProblem)> = vec![
        (
            "short",
            b"abcd\n".to_vec(),
            KeyProblem::WrongLength { found: 4 },
        ),
        (
            "long",
            format!("{}00", hex()).into_bytes(),
            KeyProblem::WrongLength { found: 66 },
        ),
        (
            "two newlines",
            format!("{}\n\n", hex()).into_bytes(),
            KeyProblem::WrongLength { found: 65 },
        ),
        ("empty", Vec::new(), KeyProblem::WrongLength { found: 0 }),
        (
            "not hex",
            format!("x{}", &hex()[1..]).into_bytes(),
            KeyProblem::NotHex { position: 0 },
        ),
        (
            "space",
            format!(" {}", &hex()[1..]).into_bytes(),
            KeyProblem::NotHex { position: 0 },
        ),
    ];
    for (name, content, problem) in cases {
        let path = write_key(&dir, name, &content, 0o600);
        let e = Key::from_file(&path).expect_err(name);
        assert_eq!(e.problem, problem, "{name}");
        let line = e.to_string();
        assert!(
            line.starts_with(&format!("key file {}: ", path.display())),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(
            !line.contains(&hex()[..16]),
            "never echo key material: {line}"
        );
    }
    let missing = dir.path().join("nope.key");
    let e = Key::from_file(&missing).expect_err("missing");
    assert_eq!(e.problem, KeyProblem::Missing);
    assert_eq!(
        e.to_string(),
        format!("key file {}: does not exist", missing.display())
    );
    let e = Key::from_file(dir.path()).expect_err("directory");
    assert_eq!(e.problem, KeyProblem::NotAFile);
}

#[cfg(unix)]
#[test]
fn group_or_world_access_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in [0o640, 0o604, 0o644, 0o660, 0o610, 0o601] {
        let path = write_key(&dir, &format!("m{mode:o}"), hex().as_bytes(), mode);
        let e = Key::from_file(&path).expect_err("insecure");
        assert_eq!(e.problem, KeyProblem::Insecure { mode });
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
}

#[test]
fn generated_keys_round_trip_through_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Key::generate();
    let path = write_key(&dir, "gen", format!("{}\n", k.to_hex()).as_bytes(), 0o600);
    assert_eq!(Key::from_file(&path).expect("valid").to_hex(), k.to_hex());
}
