//! `POST /api/v1/inbox/{id}/reply {"text", "author"?, "to"?}`: queues a
//! threaded reply on the conversation's platform (202: it is on its way;
//! `GET /api/v1/inbox/{id}` shows its status).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clarion_engage::ReplyVia;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_json;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    text: String,
    #[serde(default)]
    author: Option<String>,
    /// An item id of the conversation to answer instead of the newest.
    #[serde(default)]
    to: Option<i32>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Body = parse_json(&body)?;
    let author = body.author.unwrap_or_else(|| "api".into());
    let queued = state
        .inbox
        .reply(id, &body.text, &author, ReplyVia::Api, None, body.to)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "reply_id": queued.reply.id,
            "post_id": queued.post_id,
            "target_id": queued.target_id,
        })),
    ))
}
