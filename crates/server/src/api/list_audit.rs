//! `GET /api/v1/audit?limit=&format=csv`: the audit log, newest first
//! (JSON, or CSV for a spreadsheet).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::{ApiError, AppState, format_time};

/// Entries returned when no `limit` is given, and at most.
pub const DEFAULT_LIMIT: u64 = 500;
pub const MAX_LIMIT: u64 = 50_000;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub limit: Option<u64>,
    pub format: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let entries = state.service.store().audit_entries(limit).await?;
    if q.format.as_deref() == Some("csv") {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"clarion-audit.csv\"",
                ),
            ],
            audit_csv(&entries)?,
        )
            .into_response());
    }
    Ok(Json(json!({
        "entries": entries.iter().map(|e| json!({
            "id": e.id,
            "at": format_time(e.at_ms),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "detail": e.detail,
        })).collect::<Vec<_>>()
    }))
    .into_response())
}

pub fn audit_csv(entries: &[clarion_store::audit_entry::Model]) -> Result<String, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: &dyn std::fmt::Display| crate::error::internal(e);
    w.write_record(["at", "actor", "action", "subject", "detail"])
        .map_err(|e| fail(&e))?;
    for e in entries {
        w.write_record([
            format_time(e.at_ms).unwrap_or_default().as_str(),
            &e.actor,
            &e.action,
            &e.subject,
            &e.detail,
        ])
        .map_err(|e| fail(&e))?;
    }
    let bytes = w.into_inner().map_err(|e| fail(&e))?;
    String::from_utf8(bytes).map_err(|e| fail(&e))
}
