//! The web dashboard: server-rendered HTML (maud) with a little of our own
//! JavaScript. One file per page, like the API's one file per action.
//!
//! Pages only read; every change a page makes is a `fetch` to the JSON API
//! under `/api/v1` (same session cookie, `X-CSRF-Token` header), so the
//! page, the API and the CLI share one write path and one audit log.

pub mod account;
pub mod approvals;
mod assets;
pub mod audit;
pub mod calendar;
pub mod campaigns;
pub mod compose;
pub mod inbox;
pub mod login;
pub mod queue;
pub mod users;

use axum::Router;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::team::Actor;
use crate::{ApiError, AppState};

/// Pages that need a signed-in user (the caller adds the session layer).
pub fn signed_in_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/calendar") }))
        .route("/calendar", get(calendar::page))
        .route("/compose", get(compose::page))
        .route("/queue", get(queue::page))
        .route("/inbox", get(inbox::page))
        .route("/inbox/events", get(inbox::events))
        .route("/inbox/{id}", get(inbox::conversation_page))
        .route("/campaigns", get(campaigns::page))
        .route("/campaigns/{name}", get(campaigns::report_page))
        .route("/approvals", get(approvals::page))
        .route("/audit", get(audit::page))
        .route("/account", get(account::page))
        .route("/users", get(users::page))
        .route("/logout", post(login::logout))
}

/// Pages anyone may open: sign-in and the static assets.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::page).post(login::submit))
        .route("/login/link", post(login::send_link))
        .route("/login/link/{token}", get(login::use_link))
        .route("/assets/{name}", get(assets::handler))
}

/// The main navigation: path, label.
const NAV: [(&str, &str); 9] = [
    ("/calendar", "Calendar"),
    ("/compose", "Compose"),
    ("/queue", "Queue & channels"),
    ("/inbox", "Inbox"),
    ("/campaigns", "Campaigns"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit log"),
    ("/users", "Users"),
    ("/account", "Account"),
];

/// A whole page: header with navigation (the current page marked for
/// screen readers too), the content, and the scripts it names.
pub fn layout(
    title: &str,
    actor: &Actor,
    current: &str,
    scripts: &[&str],
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = actor.csrf() {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · Clarion" }
                link rel="stylesheet" href="/assets/clarion.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Clarion" }
                    nav aria-label="Main" {
                        ul {
                            @for (path, label) in NAV {
                                li {
                                    @if path == current {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span { (actor.name) " · " (actor.role) }
                        @if actor.csrf().is_some() {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(actor.csrf().unwrap_or_default());
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    div #flash role="status" aria-live="polite" {}
                    (body)
                }
                script src="/assets/clarion.js" {}
                @for s in scripts {
                    script src=(format!("/assets/{s}")) {}
                }
            }
        }
    };
    html_response(markup)
}

pub fn html_response(markup: Markup) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(markup.into_string()),
    )
        .into_response()
}

/// An error as a small page (a page request that failed).
pub fn error_page(e: &ApiError) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Error · Clarion" } link rel="stylesheet" href="/assets/clarion.css"; }
            body { main #main { h1 { "Something is wrong" } p.error role="alert" { (e.message) } p { a href="/" { "Back to Clarion" } } } }
        }
    };
    (e.status, Html(markup.into_string())).into_response()
}

/// Page handlers return this: a page, or the error as a page.
pub type PageResult = Result<Response, PageError>;

#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

/// A 403 page unless the actor may do `action`.
pub fn require(actor: &Actor, action: clarion_core::Action) -> Result<(), PageError> {
    actor.require(action).map_err(PageError)
}

/// Percent-encodes a URL component (a `next=` path, a campaign name).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Raw SVG made by our own chart code (already escaped there).
pub fn svg(svg: &str) -> PreEscaped<String> {
    PreEscaped(svg.to_owned())
}

/// A time in the configured zone, as people read it ("Mon 2 Mar 09:00").
pub fn local_time(ms: i64, zone: clarion_core::time::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&zone).format("%a %-d %b %H:%M").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(
            super::encode_component("/inbox?x=1 2"),
            "%2Finbox%3Fx%3D1%202"
        );
        assert_eq!(
            super::encode_component("spring-launch_2"),
            "spring-launch_2"
        );
    }
}
