//! `POST /api/v1/inbox/{id}/status {"status": "resolved"|"open"|"pending"|"snoozed", "until"?}`:
//! resolve, reopen, or snooze until a time (`until` is required for snoozed).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use clarion_store::ConversationStatus;
use serde::Deserialize;
use serde_json::Value;

use super::{parse_json, parse_time};
use crate::{ApiError, AppState, inbox_view};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    status: String,
    #[serde(default)]
    until: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Body = parse_json(&body)?;
    let status = ConversationStatus::parse(&body.status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status `{}`: expected open, pending, resolved or snoozed",
            body.status
        ))
    })?;
    let conversation = match (status, body.until) {
        (ConversationStatus::Snoozed, Some(until)) => {
            let until = parse_time("until", &until, state.timezone)?;
            state.inbox.snooze(id, until.timestamp_millis()).await?
        }
        (ConversationStatus::Snoozed, None) => {
            return Err(ApiError::bad_request("until: required to snooze"));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request("until: only with status snoozed"));
        }
        (status, None) => state.inbox.set_status(id, status, None).await?,
    };
    Ok(Json(inbox_view::conversation(&conversation)))
}
