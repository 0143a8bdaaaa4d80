//! Order webhook signatures.
//!
//! Shopify and WooCommerce sign the same way: the header carries
//! `base64(HMAC-SHA256(secret, raw body bytes))`. The body must be the bytes
//! as received: parsing and re-serialising JSON changes them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Shopify's signature header.
pub const SHOPIFY_SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
/// WooCommerce's signature header.
pub const WOOCOMMERCE_SIGNATURE_HEADER: &str = "X-WC-Webhook-Signature";

/// Why a webhook was refused; the variants let the caller tell a
/// misconfigured sender (missing, garbled) from a forged or altered body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("signature header is missing or empty")]
    Missing,
    #[error("signature header is not base64")]
    NotBase64,
    #[error("signature is {0} bytes long; an HMAC-SHA256 is 32")]
    WrongLength(usize),
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks a Shopify (`X-Shopify-Hmac-Sha256`) or WooCommerce
/// (`X-WC-Webhook-Signature`) signature. Pass `""` when the header is absent.
/// The comparison is constant-time (`Mac::verify_slice`), so timing does not
/// reveal how much of a forged tag was right.
pub fn verify_hmac_sha256_base64(
    secret: &[u8],
    body: &[u8],
    header_value: &str,
) -> Result<(), SignatureError> {
    let value = header_value.trim();
    if value.is_empty() {
        return Err(SignatureError::Missing);
    }
    let tag = STANDARD
        .decode(value)
        .map_err(|_| SignatureError::NotBase64)?;
    if tag.len() != 32 {
        return Err(SignatureError::WrongLength(tag.len()));
    }
    let mut mac = hmac_sha256(secret);
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// HMAC-SHA256 keyed by `key`; shared with the visitor keys.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC hashes long keys and pads short ones: no length is refused.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOPIFY_BODY: &[u8] = br#"{"id":820982911946154508,"total_price":"10.00"}"#;
    // printf '%s' '{"id":820982911946154508,"total_price":"10.00"}' | openssl dgst -sha256 -hmac 'hush' -binary | base64
    const SHOPIFY_TAG: &str = "lt6sH+E486jKLGeQu/eskL8OHG4WxzGRfJl6uh/BLuA=";

    const WOO_BODY: &[u8] = br#"{"id":727,"total":"29.99","currency":"EUR"}"#;
    // printf '%s' '{"id":727,"total":"29.99","currency":"EUR"}' | openssl dgst -sha256 -hmac 'wc-secret-42' -binary | base64
    const WOO_TAG: &str = "I2nBARSIRfQvtWBFEyKBB9Q76cOHMX7CJ8qxzfQL+Dc=";

    #[test]
    fn accepts_known_good_signatures() {
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, SHOPIFY_TAG),
            Ok(())
        );
        assert_eq!(
            verify_hmac_sha256_base64(b"wc-secret-42", WOO_BODY, WOO_TAG),
            Ok(())
        );
        // Headers may arrive with surrounding whitespace.
        let padded = format!(" {SHOPIFY_TAG}\r\n");
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, &padded),
            Ok(())
        );
    }

    #[test]
    fn refuses_a_one_byte_change_in_the_body() {
        // The same body with the id's last digit 8 -> 9. Its own signature,
        // for the record:
        // printf '%s' '{"id":820982911946154509,"total_price":"10.00"}' | openssl dgst -sha256 -hmac 'hush' -binary | base64
        // = IT/vdRvzJR5E3B/gvj5qg57uwOto2OQ8r+h8uMaV/+g=
        let altered = br#"{"id":820982911946154509,"total_price":"10.00"}"#;
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", altered, SHOPIFY_TAG),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_base64(
                b"hush",
                altered,
                "IT/vdRvzJR5E3B/gvj5qg57uwOto2OQ8r+h8uMaV/+g="
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_forged_signatures_and_wrong_secrets() {
        // A well-formed tag that is not this body's.
        let forged = STANDARD.encode([7_u8; 32]);
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, &forged),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hmac_sha256_base64(b"hush!", SHOPIFY_BODY, SHOPIFY_TAG),
            Err(SignatureError::Mismatch)
        );
        // Woo's tag on Shopify's body.
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, WOO_TAG),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_garbled_headers_are_told_apart() {
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, ""),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, "  "),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, "not base64!"),
            Err(SignatureError::NotBase64)
        );
        // The right tag written in hex (as some other senders do) is refused:
        // it decodes as base64 to 48 bytes.
        assert_eq!(
            verify_hmac_sha256_base64(
                b"hush",
                SHOPIFY_BODY,
                "96deac1fe138f3a8ca2c6790bbf7ac90bf0e1c6e16c731917c997aba1fc12ee0"
            ),
            Err(SignatureError::WrongLength(48))
        );
        assert_eq!(
            verify_hmac_sha256_base64(b"hush", SHOPIFY_BODY, "c2hvcnQ="),
            Err(SignatureError::WrongLength(5))
        );
    }
}
