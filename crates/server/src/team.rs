//! Who is calling: the [`Actor`] of every API and page request, the
//! sign-in throttle, and the session cookie's attributes.
//!
//! A request is authenticated by, in order: an `Authorization: Bearer`
//! token (the shared `CLARION_API_TOKEN`, an owner; or a user's own token),
//! or the `clarion_session` cookie. A cookie-authenticated write must carry
//! the session's CSRF token (`X-CSRF-Token` header or a `csrf` form field):
//! a cross-site form can send the cookie but cannot read the token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use clarion_core::{Action, Role};

use crate::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "clarion_session";
/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME_MS: i64 = 14 * 86_400_000;
/// How long an emailed sign-in link works.
pub const LOGIN_LINK_LIFETIME_MS: i64 = 15 * 60_000;

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The shared `CLARION_API_TOKEN`: an owner with no user row.
    SharedToken,
    /// A user's own API token.
    UserToken,
    /// A browser session; writes must echo this CSRF token.
    Session { csrf: String },
}

/// The caller of a request, put in the request's extensions by the auth layer.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i32>,
    /// The email of a user, or `api-token` for the shared token.
    pub name: String,
    pub role: Role,
    pub credential: Credential,
}

impl Actor {
    pub fn shared_token() -> Self {
        Self {
            user_id: None,
            name: "api-token".into(),
            role: Role::Owner,
            credential: Credential::SharedToken,
        }
    }

    pub fn user(user: &clarion_store::user::Model, credential: Credential) -> Self {
        Self {
            user_id: Some(user.id),
            name: user.email.clone(),
            role: user.role(),
            credential,
        }
    }

    /// 403 naming the role needed, unless this actor may do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.role.may(action) {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "{} is {} and may not {action}: that needs {} or above",
                self.name,
                self.role,
                Role::least_for(action)
            ),
        ))
    }

    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf } => Some(csrf),
            _ => None,
        }
    }
}

/// Failed sign-ins allowed per account in a window.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// Failed sign-ins allowed from one address in a window: more than per
/// account, because a whole office can share one address.
pub const MAX_FAILED_LOGINS_PER_ADDRESS: u32 = 20;
/// The window failed sign-ins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Slows password guessing: after [`MAX_FAILED_LOGINS`] failures for an
/// account, or [`MAX_FAILED_LOGINS_PER_ADDRESS`] from an address, in
/// [`LOGIN_WINDOW`], sign-ins for it are
/// refused until the window ends. Kept in memory: a restart forgets it,
/// which costs a guesser a restart per five guesses.
#[derive(Debug, Clone, Default)]
pub struct LoginThrottle {
    failures: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

impl LoginThrottle {
    fn keys(email: &str, ip: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("account:{}", email.trim().to_lowercase())];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// How long until this account and address may try again, if blocked.
    pub fn blocked_for(&self, email: &str, ip: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let map = self.failures.lock().ok()?;
        Self::keys(email, ip)
            .iter()
            .filter_map(|k| map.get(k).map(|v| (k, v)))
            .filter(|(k, (n, since))| {
                let max = if k.starts_with("ip:") {
                    MAX_FAILED_LOGINS_PER_ADDRESS
                } else {
                    MAX_FAILED_LOGINS
                };
                *n >= max && now - *since < LOGIN_WINDOW
            })
            .map(|(_, (_, since))| LOGIN_WINDOW - (now - *since))
            .max()
    }

    pub fn failed(&self, email: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        if let Ok(mut map) = self.failures.lock() {
            // Forget old windows so the map cannot grow without bound.
            map.retain(|_, (_, since)| now - *since < LOGIN_WINDOW);
            for k in Self::keys(email, ip) {
                let e = map.entry(k).or_insert((0, now));
                e.0 += 1;
            }
        }
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub fn succeeded(&self, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("account:{}", email.trim().to_lowercase()));
        }
    }
}

/// Team settings every handler can reach.
#[derive(Debug, Clone, Default)]
pub struct TeamState {
    pub throttle: LoginThrottle,
    /// The channel editors hear about posts waiting for approval on
    /// (`[alerts] channel`); None: the approvals page is the only notice.
    pub notify_channel: Option<String>,
    /// Where people open Clarion (`[attribution] base_url` or the bound
    /// address): the prefix of links in notices and emails.
    pub public_url: String,
    /// The channel sign-in links are emailed through (an `email` channel).
    pub login_email_channel: Option<String>,
}

/// `Secure` is set whenever the browser will keep it: over HTTPS (directly
/// or behind a proxy that says so), or on a loopback host, which browsers
/// treat as secure. A plain-HTTP LAN address gets no `Secure` (the browser
/// would drop the cookie and nobody could sign in).
pub fn session_cookie(value: &str, headers: &HeaderMap, max_age_secs: i64) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = matches!(host_name, "localhost" | "127.0.0.1" | "[::1]")
        || host_name.ends_with(".localhost");
    let secure = if https || loopback { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    )
}

/// The session cookie's value in a request.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_an_account_after_five_failures_from_anywhere() {
        let t = LoginThrottle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..4 {
            t.failed("ana@example.com", Some(a));
        }
        assert_eq!(t.blocked_for("ana@example.com", Some(a)), None);
        t.failed("ANA@example.com", Some(b));
        assert!(t.blocked_for("ana@example.com", Some(b)).is_some());
        // The address `a` made 4 failures: another account from it may try.
        assert_eq!(t.blocked_for("bo@example.com", Some(a)), None);
        for i in 0..16 {
            t.failed(&format!("u{i}@example.com"), Some(a));
        }
        assert!(
            t.blocked_for("cy@example.com", Some(a)).is_some(),
            "address blocked after 20 failures"
        );
        assert_eq!(t.blocked_for("cy@example.com", Some(b)), None);
        t.succeeded("ana@example.com");
        assert_eq!(t.blocked_for("ana@example.com", None), None);
    }

    #[test]
    fn cookie_is_secure_on_https_and_loopback_only() {
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        let c = session_cookie("v", &h, 60);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"),
            "{c}"
        );
        h.insert("host", "192.168.1.5:8080".parse().unwrap());
        assert!(!session_cookie("v", &h, 60).contains("Secure"));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(session_cookie("v", &h, 60).contains("Secure"));
    }

    #[test]
    fn cookie_value_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; clarion_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie_value(&h, "nope"), None);
    }

    #[test]
    fn a_viewer_is_told_which_role_a_write_needs() {
        let actor = Actor {
            user_id: Some(1),
            name: "vi@example.com".into(),
            role: Role::Viewer,
            credential: Credential::UserToken,
        };
        let err = actor.require(Action::Publish).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN);
        assert!(err.message.contains("needs editor"), "{}", err.message);
        assert!(actor.require(Action::Read).is_ok());
    }
}
