//! The audit log's one writer: every successful API write (and so every
//! page action, which go through the API) is recorded with who made it.
//! One layer instead of a call per handler, so a new action cannot forget.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clarion_store::team::AuditRecord;
use tracing::warn;

use crate::team::Actor;
use crate::{ApiError, AppState};

/// Request bodies quoted in an entry, at most (characters).
const MAX_DETAIL: usize = 500;
/// Bodies read for the entry, at most; larger writes are recorded without one.
const MAX_READ: usize = 16 << 20;

/// What an API route does, for the log: `(action, subject kind)`.
fn describe(method: &Method, route: &str) -> Option<(&'static str, &'static str)> {
    let post = method == Method::POST;
    // Nested routes are matched with or without the prefix, depending on
    // how the router was assembled.
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    Some(match route {
        "/posts" if post => ("post.create", "post"),
        "/posts/bulk" => ("post.create_bulk", "posts"),
        "/posts:import" => ("post.import", "posts"),
        "/posts/{id}" if method == Method::PATCH => ("post.edit", "post"),
        "/posts/{id}/retry" => ("post.retry", "post"),
        "/posts/{id}/settle" => ("post.settle", "post"),
        "/posts/{id}/schedule" => ("post.reschedule", "post"),
        "/posts/{id}/cancel" => ("post.cancel", "post"),
        "/posts/{id}/submit" => ("post.submit", "post"),
        "/posts/{id}/approve" => ("post.approve", "post"),
        "/posts/{id}/reject" => ("post.reject", "post"),
        "/inbox/{id}/reply" => ("inbox.reply", "conversation"),
        "/inbox/{id}/note" => ("inbox.note", "conversation"),
        "/inbox/{id}/status" => ("inbox.status", "conversation"),
        "/inbox/{id}/assign" => ("inbox.assign", "conversation"),
        "/inbox/{id}/labels" => ("inbox.label", "conversation"),
        "/links" if post => ("link.create", "link"),
        "/orders" => ("order.create", "order"),
        "/media" => ("media.upload", "media"),
        "/tokens" if post => ("token.create", "token"),
        "/tokens/{id}" => ("token.revoke", "token"),
        "/users" if post => ("user.add", "user"),
        "/users/{id}" => ("user.change", "user"),
        _ => return None,
    })
}

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some((action, kind)) = describe(request.method(), &route) else {
        return next.run(request).await;
    };
    let actor = request
        .extensions()
        .get::<Actor>()
        .map(|a| a.name.clone())
        .unwrap_or_else(|| "unknown".into());
    let path_id = request
        .uri()
        .path()
        .rsplit('/')
        .find_map(|s| s.parse::<i64>().ok());
    // Media is multipart and large; everything else is JSON or a form.
    let (request, body) = if kind == "media" {
        (request, None)
    } else {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, MAX_READ).await {
            Ok(bytes) => (
                Request::from_parts(parts, Body::from(bytes.clone())),
                Some(bytes),
            ),
            Err(_) => return ApiError::bad_request("the body is too large").into_response(),
        }
    };
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, resp_body) = response.into_parts();
    let resp_bytes = axum::body::to_bytes(resp_body, MAX_READ)
        .await
        .unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_slice(&resp_bytes).unwrap_or_default();
    let id = path_id
        .map(|i| i.to_string())
        .or_else(|| answer.get("id").map(|v| v.to_string()))
        .or_else(|| {
            answer
                .get("code")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .or_else(|| answer.get("created").map(|v| format!("{v} created")))
        .unwrap_or_default();
    // A contributor's create is a submission (the service answered with
    // the post waiting for approval).
    let action = if action == "post.create" && answer["approval"] == "pending_approval" {
        "post.submit"
    } else {
        action
    };
    let entry = AuditRecord {
        actor,
        action: action.into(),
        subject: format!("{kind} {id}").trim().to_owned(),
        detail: body.as_deref().map(detail).unwrap_or_default(),
    };
    if let Err(e) = state.service.store().audit(entry).await {
        // The write happened; a lost log line must not turn it into an error.
        warn!(error = %e, action, "could not write the audit log");
    }
    Response::from_parts(parts, Body::from(resp_bytes))
}

/// The request as the log quotes it: JSON without any `password`, cut short.
fn detail(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut v) => {
            if let Some(map) = v.as_object_mut() {
                map.remove("password");
            }
            v.to_string()
        }
        Err(_) => {
            let pairs = super::auth::url_decoded_pairs(body);
            pairs
                .into_iter()
                .filter(|(k, _)| k != "csrf" && k != "password")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        }
    };
    clarion_core::truncate_graphemes(&text, MAX_DETAIL)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_and_csrf_tokens_never_reach_the_log() {
        let d = super::detail(br#"{"email":"a@b.co","password":"hunter2hunter2"}"#);
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("a@b.co"));
        let d = super::detail(b"comment=ok&csrf=secret&password=p");
        assert_eq!(d, "comment=ok");
    }

    #[test]
    fn every_write_route_has_an_action() {
        use axum::http::Method;
        assert_eq!(
            super::describe(&Method::POST, "/posts/{id}/approve"),
            Some(("post.approve", "post"))
        );
        assert_eq!(super::describe(&Method::GET, "/posts"), None);
    }
}
