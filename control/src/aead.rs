//! XChaCha20-Poly1305 over a datagram: header as associated data, the
//! plaintext encrypted in place, the tag appended.
//!
//! XChaCha's 192-bit nonce is large enough to be drawn at random for every
//! datagram without a realistic chance of repeating, so neither side keeps
//! nonce state that a restart could lose.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::header::{Header, HEADER_LEN, NONCE_LEN, TAG_LEN};
use crate::key::Key;
use crate::reject::Reject;
use crate::seal_error::SealError;

fn cipher(key: &Key) -> XChaCha20Poly1305 {
    // The cipher wipes its own copy on drop; wipe the staging copy too so
    // key bytes do not linger on the stack.
    let mut staged = chacha20poly1305::Key::default();
    staged.copy_from_slice(key.bytes());
    let c = XChaCha20Poly1305::new(&staged);
    staged.as_mut_slice().zeroize();
    c
}

/// A fresh random nonce.
pub(crate) fn random_nonce<R: RngCore + CryptoRng>(rng: &mut R) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}

/// Builds `header | ciphertext | tag`.
pub(crate) fn seal(key: &Key, header: &Header, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header.emit());
    out.extend_from_slice(plaintext);
    let (aad, body) = out.split_at_mut(HEADER_LEN);
    let tag = cipher(key)
        .encrypt_in_place_detached(&XNonce::from(header.nonce), aad, body)
        .map_err(|_| SealError::Crypto)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Verifies and decrypts a datagram whose header already parsed; returns
/// the plaintext. Any failure is `auth_failed`: the AEAD does not say why,
/// and an attacker learns nothing from the answer either.
pub(crate) fn open(key: &Key, header: &Header, datagram: &[u8]) -> Result<Vec<u8>, Reject> {
    let (aad, rest) = datagram
        .split_at_checked(HEADER_LEN)
        .ok_or(Reject::AuthFailed)?;
    let ct_len = rest.len().checked_sub(TAG_LEN).ok_or(Reject::AuthFailed)?;
    let (ct, tag) = rest.split_at_checked(ct_len).ok_or(Reject::AuthFailed)?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Reject::AuthFailed)?;
    let mut buf = ct.to_vec();
    cipher(key)
        .decrypt_in_place_detached(&XNonce::from(header.nonce), aad, &mut buf, &Tag::from(tag))
        .map_err(|_| Reject::AuthFailed)?;
    Ok(buf)
}
