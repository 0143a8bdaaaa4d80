//! `/login` (password), `/login/link/{token}` (a one-time link an owner
//! made with `clarion users link`), `/logout`.
//!
//! Failed sign-ins are throttled per account and per address
//! ([`crate::team::LoginThrottle`]); the answer never says whether the
//! account exists.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::team::{SESSION_COOKIE, SESSION_LIFETIME_MS, cookie_value, session_cookie};

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Only a path on this site: never an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/calendar".to_owned(),
    }
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>, email: &str) -> Response {
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Clarion" }
                link rel="stylesheet" href="/assets/clarion.css";
            }
            body {
                main #main .login {
                    h1 { "Sign in to Clarion" }
                    @if let Some(e) = error {
                        p #login-error .error role="alert" { (e) }
                    }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label for="email" { "Email" }
                        input #email type="email" name="email" autocomplete="username" required value=(email);
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password" required;
                        p { button type="submit" { "Sign in" } }
                    }
                    p.muted {
                        "No password? An owner can make you a one-time sign-in link with "
                        code { "clarion users link you@example.com" } "."
                    }
                }
            }
        }
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::response::Html(markup.into_string()),
    )
        .into_response()
}

pub async fn page(Query(q): Query<NextQuery>) -> Response {
    login_page(StatusCode::OK, &safe_next(q.next.as_deref()), None, "")
}

pub async fn submit(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let next = safe_next(form.next.as_deref());
    let throttle = &state.team.throttle;
    if let Some(wait) = throttle.blocked_for(&form.email, ip) {
        let minutes = wait.as_secs().div_ceil(60);
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed sign-ins. Try again in {minutes} minutes."
            )),
            &form.email,
        );
        if let Ok(v) = wait.as_secs().to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let store = state.service.store();
    let user = match store.user_by_email(&form.email).await {
        Ok(u) => u,
        Err(e) => return crate::pages::error_page(&e.into()),
    };
    // Verify against something even for an unknown account, so the time
    // taken does not say which accounts exist.
    let ok = match &user {
        Some(u) => u
            .password_hash
            .as_deref()
            .is_some_and(|h| clarion_store::team::verify_password(&form.password, h)),
        None => {
            clarion_store::team::verify_password(&form.password, dummy_hash());
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        throttle.failed(&form.email, ip);
        tracing::info!(email = %form.email, "failed sign-in");
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong email or password."),
            &form.email,
        );
    };
    throttle.succeeded(&user.email);
    start_session(&state, &headers, &user, &next).await
}

/// A hash to verify against when the account does not exist.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        clarion_store::team::hash_password("not a real password, only for timing")
            .unwrap_or_default()
    })
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &clarion_store::user::Model,
    next: &str,
) -> Response {
    let store = state.service.store();
    match store.create_session(user.id, SESSION_LIFETIME_MS).await {
        Ok((cookie, _)) => {
            let _ = store
                .audit(clarion_store::team::AuditRecord {
                    actor: user.email.clone(),
                    action: "user.sign_in".into(),
                    subject: format!("user {}", user.email),
                    detail: String::new(),
                })
                .await;
            let mut r = Redirect::to(next).into_response();
            if let Ok(v) = session_cookie(&cookie, headers, SESSION_LIFETIME_MS / 1000).parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => crate::pages::error_page(&e.into()),
    }
}

/// `GET /login/link/{token}`: a one-time link signs in once, before it expires.
pub async fn use_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    match state.service.store().use_login_link(&token).await {
        Ok(Some(user)) => start_session(&state, &headers, &user, "/calendar").await,
        Ok(None) => login_page(
            StatusCode::UNAUTHORIZED,
            "/calendar",
            Some("That sign-in link has expired or was already used. Ask for a new one."),
            "",
        ),
        Err(e) => crate::pages::error_page(&e.into()),
    }
}

/// `POST /login/link`: links are made by an owner (`clarion users link`);
/// this answers how to get one.
pub async fn send_link() -> Response {
    login_page(
        StatusCode::OK,
        "/calendar",
        Some("Ask an owner to run `clarion users link you@example.com` and send you the link."),
        "",
    )
}

/// `POST /logout`: ends this session (the CSRF field is checked by the
/// session layer) and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(e) = state.service.store().end_session(cookie).await
    {
        return crate::pages::error_page(&e.into());
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = session_cookie("", &headers, 0).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(super::safe_next(Some("/inbox?x=1")), "/inbox?x=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "inbox"] {
            assert_eq!(super::safe_next(Some(bad)), "/calendar", "{bad}");
        }
    }
}
