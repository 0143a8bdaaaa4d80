//! Authentication and role checks for the API and the pages (see
//! [`crate::team`] for the rules).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use clarion_core::Action;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::team::{Actor, Credential, SESSION_COOKIE, cookie_value};
use crate::{ApiError, AppState};

/// Form bodies read for their `csrf` field, at most (page forms are small).
const MAX_FORM_BYTES: usize = 1 << 20;

/// Requires a bearer token or a session on every API route.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match authenticate(&state, request, None).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// `?token=` in the query, for the calendar feed: calendar apps subscribe
/// to a URL and cannot send headers.
#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Like [`require_token`], but a `?token=<token>` query parameter is
/// accepted too (compared the same way).
pub async fn require_token_or_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let query = axum::extract::Query::<TokenQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|q| q.0.token);
    match authenticate(&state, request, query).await {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Pages: like the API, but someone not signed in is sent to `/login`
/// (and back here after).
pub async fn require_session(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let signed_in = request.headers().contains_key(header::AUTHORIZATION)
        || cookie_value(request.headers(), SESSION_COOKIE).is_some();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    match authenticate(&state, request, None).await {
        Ok(request) => next.run(request).await,
        Err(e) if e.status == StatusCode::UNAUTHORIZED || !signed_in => {
            let next = crate::pages::encode_component(&path);
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Err(e) => crate::pages::error_page(&e).into_response(),
    }
}

/// Finds the [`Actor`] of a request and puts it in the extensions.
async fn authenticate(
    state: &AppState,
    request: Request,
    query_token: Option<String>,
) -> Result<Request, ApiError> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned)
        .or(query_token);
    if let Some(token) = bearer {
        let actor = token_actor(state, &token).await?;
        return Ok(with_actor(request, actor));
    }
    if let Some(cookie) = cookie_value(request.headers(), SESSION_COOKIE).map(str::to_owned) {
        let Some((session, user)) = state.service.store().session_user(&cookie).await? else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "your session has ended: sign in again",
            ));
        };
        let actor = Actor::user(
            &user,
            Credential::Session {
                csrf: session.csrf.clone(),
            },
        );
        let request = check_csrf(request, &session.csrf).await?;
        return Ok(with_actor(request, actor));
    }
    if state.api_token.is_none() && state.service.store().count_users().await? == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the API is disabled: set CLARION_API_TOKEN (or [server] api_token), \
             or add a user with `clarion users add`, and restart",
        ));
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "missing `Authorization: Bearer <token>` header (or sign in)",
    ))
}

/// The shared token is an owner; any other token must be a user's.
async fn token_actor(state: &AppState, token: &str) -> Result<Actor, ApiError> {
    if let Some(expected) = &state.api_token
        && constant_time_eq(token.as_bytes(), expected.expose().as_bytes())
    {
        return Ok(Actor::shared_token());
    }
    match state.service.store().api_token_user(token).await? {
        Some(user) => Ok(Actor::user(&user, Credential::UserToken)),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid bearer token",
        )),
    }
}

fn with_actor(mut request: Request, actor: Actor) -> Request {
    request.extensions_mut().insert(actor);
    request
}

/// A session's write must echo its CSRF token: the `X-CSRF-Token` header
/// (scripts) or a `csrf` field (HTML forms). Reads pass.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, ApiError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(request);
    }
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or invalid CSRF token: reload the page and try again",
        )
    };
    if let Some(given) = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::bad_request("the form is larger than 1 MiB"))?;
    let given = form_field(&bytes, "csrf").ok_or_else(refused)?;
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// One field of an `application/x-www-form-urlencoded` body, decoded.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    url_decoded_pairs(body)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub(crate) fn url_decoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default()
}

/// Route layers: the actor must be allowed `action`.
pub async fn need_draft(request: Request, next: Next) -> Response {
    need(Action::Draft, request, next).await
}

pub async fn need_publish(request: Request, next: Next) -> Response {
    need(Action::Publish, request, next).await
}

pub async fn need_owner(request: Request, next: Next) -> Response {
    need(Action::ManageUsers, request, next).await
}

async fn need(action: Action, request: Request, next: Next) -> Response {
    let allowed = match request.extensions().get::<Actor>() {
        Some(actor) => actor.require(action),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "not signed in")),
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
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
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

    #[test]
    fn form_fields_are_decoded() {
        let body = b"next=%2Fcalendar%3Fm%3D1&csrf=ab-c_d&x=a+b";
        assert_eq!(super::form_field(body, "csrf").as_deref(), Some("ab-c_d"));
        assert_eq!(
            super::form_field(body, "next").as_deref(),
            Some("/calendar?m=1")
        );
        assert_eq!(super::form_field(body, "x").as_deref(), Some("a b"));
        assert_eq!(super::form_field(body, "none"), None);
    }
}
