//! `GET /r/{code}`: a tracked link. Answers 302 to the registered
//! destination (UTM-tagged, with a `clarion_cid` click id) and hands the
//! click to the batched recorder, so recording never delays the answer.
//! Not behind the API token: these are public links. An unknown code is 404;
//! the destination never comes from the request (no open redirect).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, REFERER, USER_AGENT};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use clarion_analytics::Visit;

pub async fn handler(
    State(analytics): State<clarion_analytics::Analytics>,
    Path(code): Path<String>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let text = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    // Behind a proxy the client is the first X-Forwarded-For address.
    let forwarded = text("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let ip = forwarded.map(str::to_owned).or(peer).unwrap_or_default();
    let visit = Visit {
        code: &code,
        user_agent: text(USER_AGENT.as_str()).unwrap_or(""),
        referrer: text(REFERER.as_str()),
        ip: &ip,
    };
    match analytics.redirector.follow(visit).await {
        Ok(Some(location)) => match HeaderValue::from_str(&location) {
            Ok(location) => (
                StatusCode::FOUND,
                [
                    (LOCATION, location),
                    // Each visit is its own click: no caching.
                    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(None) => (StatusCode::NOT_FOUND, "no such link\n").into_response(),
        Err(e) => crate::error::internal(&e).into_response(),
    }
}
