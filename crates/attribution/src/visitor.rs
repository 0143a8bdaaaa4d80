//! Pseudonymous visitor keys.
//!
//! Clicks are grouped per visitor without keeping an IP address: the key is
//! an HMAC of the IP and user agent under a salt that changes every UTC day,
//! so keys from different days cannot be joined and the raw IP is never
//! stored.

use std::net::IpAddr;

use hmac::Mac;

use crate::signature::hmac_sha256;

const DAY_MS: i64 = 86_400_000;

/// Days since the Unix epoch (UTC) of an instant in milliseconds: the `day`
/// that [`visitor_key`] takes.
pub fn utc_day(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS)
}

/// A 16-byte (32 hex characters) key for one visitor on one day.
///
/// The day's salt is `HMAC(secret, "visitor-salt:<day>")` and the key is
/// `HMAC(salt, ip 0x00 user_agent)`, truncated. The IP is put in its
/// canonical form first, so an IPv4 address seen as `::ffff:a.b.c.d` is the
/// same visitor; text that is not an IP is used as given.
pub fn visitor_key(secret: &[u8], day: i64, ip: &str, user_agent: &str) -> String {
    let mut salt_mac = hmac_sha256(secret);
    salt_mac.update(format!("visitor-salt:{day}").as_bytes());
    let salt = salt_mac.finalize().into_bytes();

    let ip = ip.trim();
    let ip = match ip.parse::<IpAddr>() {
        Ok(address) => address.to_canonical().to_string(),
        Err(_) => ip.to_owned(),
    };
    let mut key_mac = hmac_sha256(&salt);
    key_mac.update(ip.as_bytes());
    key_mac.update(&[0]);
    key_mac.update(user_agent.as_bytes());
    let digest = key_mac.finalize().into_bytes();
    digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const UA: &str = "Mozilla/5.0";

    #[test]
    fn matches_an_independent_computation() {
        // SALT=$(printf '%s' 'visitor-salt:19737' | openssl dgst -sha256 -hmac 's3cret' -binary | xxd -p -c 64)
        // printf '203.0.113.7\0Mozilla/5.0' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$SALT -binary | xxd -p -c 64 | cut -c1-32
        assert_eq!(
            visitor_key(SECRET, 19_737, "203.0.113.7", UA),
            "f4c5e2761307f33aab737f9fd63c303b"
        );
    }

    #[test]
    fn same_inputs_give_the_same_key() {
        let key = visitor_key(SECRET, 19_737, "203.0.113.7", UA);
        assert_eq!(key.len(), 32);
        assert_eq!(key, visitor_key(SECRET, 19_737, "203.0.113.7", UA));
        assert!(!key.contains("203"));
    }

    #[test]
    fn keys_rotate_daily_and_differ_per_ip_agent_and_secret() {
        let key = visitor_key(SECRET, 19_737, "203.0.113.7", UA);
        assert_ne!(key, visitor_key(SECRET, 19_738, "203.0.113.7", UA));
        assert_ne!(key, visitor_key(SECRET, 19_737, "203.0.113.8", UA));
        assert_ne!(
            key,
            visitor_key(SECRET, 19_737, "203.0.113.7", "Mozilla/5.1")
        );
        assert_ne!(key, visitor_key(b"other", 19_737, "203.0.113.7", UA));
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_visitor() {
        assert_eq!(
            visitor_key(SECRET, 1, "::ffff:203.0.113.7", UA),
            visitor_key(SECRET, 1, "203.0.113.7", UA)
        );
        assert_eq!(
            visitor_key(SECRET, 1, "2001:DB8::1", UA),
            visitor_key(SECRET, 1, "2001:db8:0:0::1", UA)
        );
    }

    #[test]
    fn days_are_utc_days_since_the_epoch() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(DAY_MS - 1), 0);
        assert_eq!(utc_day(DAY_MS), 1);
        assert_eq!(utc_day(-1), -1);
        // 2024-01-15T00:00:00Z is 19737 days after 1970-01-01.
        assert_eq!(utc_day(1_705_276_800_000), 19_737);
    }
}
