//! `POST /api/v1/media`: upload a file into the media folder (`media_dir`)
//! as `multipart/form-data` with one `file` field. Answers 201 with the
//! path to give in a post's `media` (relative to the media folder).

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Largest upload accepted (50 MiB: Matrix's default upload limit, above
/// every image limit of the platforms Clarion posts to).
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

pub async fn handler(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "send the file as multipart/form-data with a `file` field (curl -F file=@launch.png): {e}"
        ))
    })?;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let Some(name) = field.file_name().map(str::to_owned) else {
            return Err(ApiError::bad_request(
                "the `file` field has no file name (Content-Disposition filename=...)",
            ));
        };
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let dir = state.service.media_dir().clone();
        let stored = tokio::task::spawn_blocking(move || {
            let path = dir.store_upload(&name, &bytes)?;
            let media =
                clarion_content::MediaDir::request(std::path::Path::new(&path), String::new())?;
            let media = dir.resolve(&media)?;
            Ok::<_, String>((path, media))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload task failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the upload failed")
        })?;
        let (path, media) = stored.map_err(ApiError::bad_request)?;
        return Ok((
            StatusCode::CREATED,
            Json(json!({ "path": path, "mime": media.mime, "bytes": media.bytes })),
        ));
    }
    Err(ApiError::bad_request(
        "no `file` field: send the file as multipart/form-data (curl -F file=@launch.png)",
    ))
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than {} MiB",
                MAX_UPLOAD_BYTES / (1024 * 1024)
            ),
        );
    }
    ApiError::bad_request(format!("unreadable multipart body: {}", e.body_text()))
}
