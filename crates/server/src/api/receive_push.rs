//! `POST /hooks/{channel}`: a platform pushing events to a listening channel
//! in webhook mode (Telegram's `setWebhook`). Not behind the API token: the
//! channel's listener checks the platform's own secret or signature (in
//! constant time) before anything is read, and stores nothing otherwise.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use clarion_core::PushError;
use clarion_engage::runtime::PushRefused;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub async fn handler(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(listening) = &state.listening else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no listeners run in this process",
        ));
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    match listening.accept_push(&channel, &headers, &body).await {
        Ok(stored) => Ok(Json(json!({"stored": stored}))),
        Err(PushRefused::UnknownChannel) | Err(PushRefused::Listener(PushError::NotEnabled)) => {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("channel `{channel}` takes no pushes (listen = true and a webhook secret)"),
            ))
        }
        Err(PushRefused::Listener(PushError::Unauthorized)) => {
            tracing::warn!(channel, "refused a push with a wrong or missing secret");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the request is not signed by the platform",
            ))
        }
        Err(PushRefused::Listener(PushError::Malformed(reason))) => {
            Err(ApiError::bad_request(format!("malformed body: {reason}")))
        }
        Err(PushRefused::Listener(PushError::Unavailable(reason))) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason))
        }
        Err(PushRefused::Store(e)) => Err(crate::error::internal(&e)),
    }
}
