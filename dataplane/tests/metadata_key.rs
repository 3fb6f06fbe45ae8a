//! The overlay's metadata key, as `docs/wire-format.md` §7.4 describes it:
//! a control-key file in the §3.1 format, and the MAC key derived from it.
//! The worked example is read from the document itself, so the page and
//! the code cannot drift apart silently.

use std::os::unix::fs::PermissionsExt;

use dataplane::pipeline::tensor::derive_metadata_key;
use tensor::metadata::MetadataKey;

/// The value after `label` in the §7.4 worked example.
fn example_value(doc: &str, label: &str) -> String {
    let section = doc
        .split("### 7.4 What the MAC covers")
        .nth(1)
        .and_then(|s| s.split("### 7.5").next())
        .expect("wire-format.md has §7.4");
    section
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("§7.4 has no worked example line {label:?}"))
}

#[test]
fn the_documented_key_file_derives_the_documented_mac_key() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/wire-format.md"),
    )
    .expect("read docs/wire-format.md");
    let file_hex = example_value(&doc, "key file");
    let key_id: u8 = example_value(&doc, "key_id").parse().expect("a u8");
    let mac_hex = example_value(&doc, "MAC key");
    assert_eq!(file_hex.len(), 64, "{file_hex}");
    assert_eq!(mac_hex.len(), 32, "{mac_hex}");

    // Written the way the document says a key file looks, and loaded the
    // way `[tensor] key_file` is.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.key");
    std::fs::write(&path, format!("{file_hex}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let control_key = control::Key::from_file(&path).expect("the documented format loads");
    let derived = derive_metadata_key(&control_key, key_id);

    let expected = MetadataKey::from_hex(key_id, &mac_hex).expect("32 hex digits");
    assert_eq!(derived.id(), key_id);
    for message in [&b""[..], b"intellinode", &[0xA5; 100]] {
        assert_eq!(derived.cmac(message), expected.cmac(message));
    }

    // An AES key written as 32 hex digits is not a key file.
    std::fs::write(&path, format!("{mac_hex}\n")).expect("write");
    let e = control::Key::from_file(&path).expect_err("32 hex digits are refused");
    assert!(e.to_string().contains("64 hex characters"), "{e}");
}
