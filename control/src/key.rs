//! 256-bit pre-shared keys and the key file format.
//!
//! A key file holds exactly 64 hexadecimal characters (32 bytes), optionally
//! followed by one newline. Keys are read only from files, never from the
//! command line (which other users can read in `/proc`), and a file that
//! group or others may access is refused: the fix is `chmod 600`.

use core::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Hex characters in a key file.
pub const KEY_HEX_LEN: usize = 2 * KEY_LEN;
/// More than this is certainly not a key file; reading stops there.
const READ_LIMIT: u64 = 4096;

/// A 256-bit XChaCha20-Poly1305 key. Debug output never shows the bytes and
/// the memory is wiped on drop.
#[derive(Clone)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Key {
        Key::generate_with(&mut OsRng)
    }

    /// A fresh key from the given cryptographic RNG (tests seed one).
    pub fn generate_with<R: RngCore + CryptoRng>(rng: &mut R) -> Key {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Key(bytes)
    }

    /// Parses exactly 64 hex characters (either case, nothing else).
    pub fn from_hex(text: &str) -> Result<Key, KeyProblem> {
        let raw = text.as_bytes();
        if raw.len() != KEY_HEX_LEN {
            return Err(KeyProblem::WrongLength { found: raw.len() });
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, (out, pair)) in bytes.iter_mut().zip(raw.chunks_exact(2)).enumerate() {
            let [hi, lo] = pair else {
                return Err(KeyProblem::WrongLength { found: raw.len() });
            };
            let h = hex_value(*hi).ok_or(KeyProblem::NotHex { position: 2 * i })?;
            let l = hex_value(*lo).ok_or(KeyProblem::NotHex {
                position: 2 * i + 1,
            })?;
            *out = (h << 4) | l;
        }
        Ok(Key(bytes))
    }

    /// The 64 lowercase hex characters of the key, the key file's content.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(KEY_HEX_LEN);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Reads a key file. Every error is one line naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Key, KeyError> {
        let path = path.as_ref();
        let fail = |problem| KeyError {
            path: path.to_path_buf(),
            problem,
        };
        let file = std::fs::File::open(path).map_err(|e| {
            fail(if e.kind() == std::io::ErrorKind::NotFound {
                KeyProblem::Missing
            } else {
                KeyProblem::Unreadable(e.to_string())
            })
        })?;
        // Checked on the open file, not the path, so a swap between the
        // check and the read cannot slip a different file in.
        let meta = file
            .metadata()
            .map_err(|e| fail(KeyProblem::Unreadable(e.to_string())))?;
        if !meta.is_file() {
            return Err(fail(KeyProblem::NotAFile));
        }
        check_mode(&meta).map_err(fail)?;
        let mut raw = Vec::new();
        file.take(READ_LIMIT)
            .read_to_end(&mut raw)
            .map_err(|e| fail(KeyProblem::Unreadable(e.to_string())))?;
        let text = String::from_utf8_lossy(&raw);
        let trimmed = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        let key = Key::from_hex(trimmed).map_err(fail);
        raw.zeroize();
        key
    }

    /// The raw bytes, for the AEAD only.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key for another purpose derived from this one:
    /// HMAC-SHA256(key, context). Holders of the same control key agree on
    /// it without a second secret, and learning it reveals nothing of the
    /// control key (the data plane's metadata MAC uses this).
    pub fn derive(&self, context: &[u8]) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut out = [0u8; 32];
        // HMAC accepts keys of every length, so this cannot fail.
        if let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0) {
            mac.update(context);
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(unix)]
fn check_mode(meta: &std::fs::Metadata) -> Result<(), KeyProblem> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        Err(KeyProblem::Insecure { mode })
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn check_mode(_meta: &std::fs::Metadata) -> Result<(), KeyProblem> {
    Ok(())
}

/// What is wrong with a key or key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read (the OS error).
    Unreadable(String),
    /// A directory or device, not a regular file.
    NotAFile,
    /// Group or others have access (Unix permission bits).
    Insecure {
        /// The file's permission bits.
        mode: u32,
    },
    /// Not 64 characters (after one optional trailing newline).
    WrongLength {
        /// Characters found (reading stops at 4 KiB).
        found: usize,
    },
    /// A character that is not a hex digit.
    NotHex {
        /// Its 0-based position.
        position: usize,
    },
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::Missing => f.write_str("does not exist"),
            KeyProblem::Unreadable(e) => write!(f, "cannot be read: {e}"),
            KeyProblem::NotAFile => f.write_str("is not a regular file"),
            KeyProblem::Insecure { mode } => write!(
                f,
                "is accessible by group or others (mode {mode:04o}); run chmod 600 on it"
            ),
            KeyProblem::WrongLength { found } => write!(
                f,
                "holds {found} characters, expected {KEY_HEX_LEN} hex characters (32 bytes)"
            ),
            KeyProblem::NotHex { position } => {
                write!(f, "character {} is not a hex digit", position + 1)
            }
        }
    }
}

/// A key file that could not be used: the path and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key file.
    pub path: PathBuf,
    /// What was wrong with it.
    pub problem: KeyProblem,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key file {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn hex_round_trip_and_case() {
        let k = Key::from_hex(HEX).expect("valid");
        assert_eq!(k.bytes()[31], 0x1f);
        assert_eq!(k.to_hex(), HEX);
        let upper = Key::from_hex(&HEX.to_uppercase()).expect("valid");
        assert_eq!(upper.to_hex(), HEX);
    }

    #[test]
    fn hex_errors_locate_the_problem() {
        assert_eq!(
            Key::from_hex("abc").err(),
            Some(KeyProblem::WrongLength { found: 3 })
        );
        let mut bad = HEX.to_string();
        bad.replace_range(9..10, "g");
        assert_eq!(
            Key::from_hex(&bad).err(),
            Some(KeyProblem::NotHex { position: 9 })
        );
        // Multi-byte UTF-8 counts in bytes, and never panics on a boundary.
        let odd = format!("é{}", &HEX[2..]);
        assert!(Key::from_hex(&odd).is_err());
    }

    #[test]
    fn debug_hides_the_bytes() {
        let k = Key::from_hex(HEX).expect("valid");
        let shown = format!("{k:?}");
        assert_eq!(shown, "Key(<redacted>)");
        assert!(!shown.contains("0102"));
    }

    #[test]
    fn generate_gives_distinct_keys() {
        assert_ne!(Key::generate().to_hex(), Key::generate().to_hex());
    }
}
