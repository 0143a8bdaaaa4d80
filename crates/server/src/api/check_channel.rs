//! `POST /api/v1/channels/{name}/check`: runs the channel adapter's
//! `check` now (the one `clarion channels check` runs), bounded by a
//! timeout, and answers `{"channel","ok","message","class"}`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// A platform that does not answer must not hold the request (or the
/// button) for long; a check is a few small requests at most.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let adapter = state.service.registry().get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("channel `{name}` is not configured"),
        )
    })?;
    let answer = match tokio::time::timeout(CHECK_TIMEOUT, adapter.check()).await {
        Ok(Ok(check)) => match check.warning {
            None => json!({"channel": name, "ok": true, "message": check.detail, "class": null}),
            Some(warning) => json!({
                "channel": name, "ok": true,
                "message": format!("{}: {warning}", check.detail), "class": "warning",
            }),
        },
        // Adapters keep credentials out of their errors, so the message is safe to show.
        Ok(Err(e)) => json!({
            "channel": name, "ok": false, "message": e.to_string(), "class": e.class.as_str(),
        }),
        Err(_) => json!({
            "channel": name, "ok": false,
            "message": format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
            "class": "transient",
        }),
    };
    Ok(Json(answer))
}
