//! `POST /api/v1/posts:preview`: the body of `POST /api/v1/posts`, rendered
//! and checked for each channel exactly as creating would, stored nowhere.
//!
//! Answers 200 with `{"channels": [{channel, text, parts, length,
//! message_lengths, limit, unit, ok, error}], "errors": [{field, message}],
//! "ok"}`: problems with the request itself (an unknown channel, a bad `at`,
//! a missing variable, even malformed JSON) are field errors, not a 4xx, so
//! the composer shows them beside its fields while the author types.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use super::create_post::{FieldError, PostRequest, json_field_error};
use crate::{ApiError, AppState};

/// How many fields `into_input_in` can refuse (`at`, `media[i]`): each
/// refused one is reported and dropped, then the rest is tried again.
const MAX_DROPPED_FIELDS: usize = 2;

pub async fn handler(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let mut request: PostRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return Ok(Json(answer(Value::Array(vec![]), &[json_field_error(&e)]))),
    };
    let mut errors: Vec<FieldError> = Vec::new();
    let input = loop {
        match request.clone().into_input_in(state.timezone) {
            Ok(input) => break input,
            Err(e) if errors.len() < MAX_DROPPED_FIELDS => {
                // Preview the rest without the field at fault.
                if e.field == "at" {
                    request.at = None;
                } else {
                    request.media.clear();
                }
                errors.push(e);
            }
            Err(e) => {
                errors.push(e);
                return Ok(Json(answer(Value::Array(vec![]), &errors)));
            }
        }
    };
    // Rendering is pure and quick; no need to leave the async runtime.
    let preview = state.service.preview(input);
    let mut value = serde_json::to_value(&preview).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("preview as JSON: {e}"),
        )
    })?;
    let channels = value
        .get_mut("channels")
        .map(Value::take)
        .unwrap_or_default();
    for e in preview.errors {
        errors.push(FieldError {
            field: e.field,
            message: e.message,
        });
    }
    Ok(Json(answer(channels, &errors)))
}

fn answer(channels: Value, errors: &[FieldError]) -> Value {
    let ok = errors.is_empty()
        && channels
            .as_array()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["ok"] == true));
    json!({
        "channels": channels,
        "errors": errors
            .iter()
            .map(|e| json!({"field": e.field, "message": e.message}))
            .collect::<Vec<_>>(),
        "ok": ok,
    })
}
