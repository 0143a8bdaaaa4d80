//! `/assets/{name}`: the dashboard's CSS and scripts, compiled into the
//! binary (nothing to install or serve separately).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const ASSETS: [(&str, &str, &str); 7] = [
    (
        "clarion.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/clarion.css"),
    ),
    (
        "clarion.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/clarion.js"),
    ),
    (
        "calendar.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/calendar.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/compose.js"),
    ),
    (
        "inbox.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/inbox.js"),
    ),
    (
        "queue.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/queue.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/admin.js"),
    ),
];

pub async fn handler(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                // Assets change only with the binary.
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
