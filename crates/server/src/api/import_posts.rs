//! `POST /api/v1/posts:import[?dry_run=true]`: the file `clarion post import`
//! reads, as the request body — CSV (`Content-Type: text/csv`) or JSON Lines
//! (`application/x-ndjson`). All or none, and safe to send again: a row
//! imported before is skipped (see [`crate::import`]).
//!
//! 201 `{"created", "already_imported", "ids", "duplicates"}` (200 when
//! nothing was new); with `dry_run` 200 `{"dry_run": true, "would_create",
//! "already_imported", "duplicates"}` and nothing stored. 422 names every
//! refused row as `line N: column: message` and stores nothing; 400 is a
//! body that cannot be read at all (no header, an unknown column, not
//! UTF-8); 415 another content type; 413 more than 10,000 rows or 32 MiB.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::create_posts_bulk::{MAX_BULK_BYTES, MAX_BULK_POSTS};
use crate::import::{self, CheckError, Duplicate, Format};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Check and count, store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// The content types taken, for the 415.
const ACCEPTED: &str = "text/csv (a header row, then a post per row) or application/x-ndjson (JSON Lines: one post per line, as POST /api/v1/posts takes)";

pub async fn handler(
    State(state): State<AppState>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let format = format_of(&headers)?;
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!(
                "request body: {}; an import takes at most {MAX_BULK_BYTES} bytes and {MAX_BULK_POSTS} posts",
                e.body_text()
            ),
        )
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8 text: {e}")))?;
    let rows = import::read_rows(text, format, state.timezone).map_err(ApiError::bad_request)?;
    if rows.is_empty() {
        return Err(ApiError::bad_request("no posts in the body"));
    }
    if rows.len() > MAX_BULK_POSTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} posts in one request; at most {MAX_BULK_POSTS}: split the file",
                rows.len()
            ),
        ));
    }

    let checked = match import::check(&state.service, rows, format, |_| {}).await {
        Ok(checked) => checked,
        Err(CheckError::Service(e)) => return Err(e.into()),
        Err(e @ CheckError::Internal(_)) => return Err(crate::error::internal(&e)),
        Err(CheckError::Refused(refused)) => {
            // Every refused row by line and column; nothing was stored.
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: refused.to_string(),
                details: refused.problems.iter().map(ToString::to_string).collect(),
            });
        }
    };
    let duplicates = duplicates_json(&checked.duplicates);
    if query.dry_run {
        return Ok((
            StatusCode::OK,
            Json(json!({
                "dry_run": true,
                "would_create": checked.valid.len(),
                "already_imported": checked.already_imported.len(),
                "duplicates": duplicates,
            })),
        ));
    }
    let imported = import::store(&state.service, checked).await?;
    let ids: Vec<i32> = imported.created.iter().map(|d| d.post.id).collect();
    let status = if ids.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({
            "created": ids.len(),
            "already_imported": imported.already_imported,
            "ids": ids,
            "duplicates": duplicates,
        })),
    ))
}

/// CSV or JSON Lines, from `Content-Type` (parameters such as `charset` aside).
fn format_of(headers: &HeaderMap) -> Result<Format, ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = given
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson" | "application/jsonl" => Ok(Format::Jsonl),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type `{given}` is not an import: send {ACCEPTED}; a JSON array of posts goes to POST /api/v1/posts/bulk"
            ),
        )),
    }
}

fn duplicates_json(duplicates: &[Duplicate]) -> Vec<Value> {
    duplicates
        .iter()
        .map(|d| json!({ "line": d.line, "same_as": d.same_as }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_content_type_says_the_format() {
        assert_eq!(format_of(&with_type("text/csv")).unwrap(), Format::Csv);
        assert_eq!(
            format_of(&with_type("Text/CSV; charset=utf-8")).unwrap(),
            Format::Csv
        );
        assert_eq!(
            format_of(&with_type("application/x-ndjson")).unwrap(),
            Format::Jsonl
        );
        let error = format_of(&with_type("application/json")).unwrap_err();
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(error.message.contains("text/csv"), "{}", error.message);
        assert_eq!(
            format_of(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
