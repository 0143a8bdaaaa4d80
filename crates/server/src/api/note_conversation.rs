//! `POST /api/v1/inbox/{id}/note {"text", "author"?}`: an internal note.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
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
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Body = parse_json(&body)?;
    let author = body.author.unwrap_or_else(|| "api".into());
    let note = state.inbox.note(id, &author, &body.text).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": note.id}))))
}
