use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// Requires `Authorization: Bearer <token>` on every API route.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    check_token(&state, request, next, None).await
}

/// `?token=` in the query, for the calendar feed: calendar apps subscribe
/// to a URL and cannot send headers.
#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Like [`require_token`], but a `?token=<token>` query parameter is
/// accepted too (compared the same way, in constant time).
pub async fn require_token_or_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let query = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|q| q.0.token);
    check_token(&state, request, next, query).await
}

async fn check_token(
    state: &AppState,
    request: Request,
    next: Next,
    query_token: Option<String>,
) -> Response {
    let Some(expected) = &state.api_token else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is disabled: set CLARION_API_TOKEN (or [server] api_token) and restart",
        )
        .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned)
        .or(query_token);
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) => {
            next.run(request).await
        }
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid bearer token").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        )
        .into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme name
/// is case-insensitive (RFC 9110 §11.1), so `bearer x` works too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Compares in constant time. Both sides are hashed first, so neither the
/// token's contents nor its length show in the timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.as_slice().ct_eq(b.as_slice()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares_whole_tokens() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_refused() {
        assert_eq!(super::bearer_token("Bearer t0k"), Some("t0k"));
        assert_eq!(super::bearer_token("bearer t0k"), Some("t0k"));
        assert_eq!(super::bearer_token("BEARER  t0k"), Some("t0k"));
        assert_eq!(super::bearer_token("Basic dTpw"), None);
        assert_eq!(super::bearer_token("Bearer"), None);
        // Different lengths compare through equal-length digests.
        assert!(!super::constant_time_eq(b"", b"t"));
        assert!(super::constant_time_eq(b"", b""));
    }
}
