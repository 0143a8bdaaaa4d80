//! `POST /api/v1/posts/bulk {"posts": [...]}`: create many posts at once,
//! all or none. Each item is what `POST /api/v1/posts` takes.
//!
//! Every post is parsed, rendered and validated before anything is stored;
//! if any is refused, nothing is stored and the answer (422) names each bad
//! one by index and field (`posts[17].channels: ...`). Otherwise all are
//! stored in one transaction and the answer (201) lists the new ids in order.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use clarion_scheduler::ItemError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::create_post::{FieldError, PostRequest, json_field_error};
use crate::{ApiError, AppState};

/// Posts one request may carry.
pub const MAX_BULK_POSTS: usize = 10_000;
/// Bytes one request may carry (10,000 posts of about 3 KB).
pub const MAX_BULK_BYTES: usize = 32 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    posts: Vec<PostRequest>,
}

/// The same shape, items left unparsed: used only to say which item is bad.
#[derive(Debug, Deserialize)]
struct LooseBulk {
    posts: Vec<Value>,
}

pub async fn handler(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            format!(
                "request body: {}; a bulk request takes at most {MAX_BULK_BYTES} bytes and {MAX_BULK_POSTS} posts",
                e.body_text()
            ),
        )
    })?;
    let requests = match serde_json::from_slice::<Bulk>(&body) {
        Ok(bulk) => bulk.posts,
        Err(e) => return Err(locate_json_error(&body, e)),
    };
    check_count(requests.len())?;

    // Field conversions first (`at`, media files), then the service's
    // rendering and validation of the rest; every problem is reported.
    let mut errors = Vec::new();
    let mut inputs = Vec::with_capacity(requests.len());
    let mut positions = Vec::with_capacity(requests.len());
    for (index, request) in requests.into_iter().enumerate() {
        match request.into_input_in(state.timezone) {
            Ok(input) => {
                inputs.push(input);
                positions.push(index);
            }
            Err(e) => errors.push(ItemError {
                index,
                field: e.field,
                message: e.message,
            }),
        }
    }
    // Rendering thousands of posts is CPU work: keep it off the I/O threads.
    let service = state.service.clone();
    let checked = tokio::task::spawn_blocking(move || service.check_many(inputs))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let valid = match checked {
        Ok(valid) if errors.is_empty() => valid,
        Ok(_) => return Err(refused(errors)),
        Err(found) => {
            errors.extend(found.into_iter().map(|mut e| {
                e.index = positions[e.index];
                e
            }));
            return Err(refused(errors));
        }
    };
    let details = state.service.store_valid(valid).await?;
    let ids: Vec<i32> = details.iter().map(|d| d.post.id).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "created": ids.len(), "ids": ids })),
    ))
}

fn check_count(count: usize) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::bad_request("posts: give at least one post"));
    }
    if count > MAX_BULK_POSTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "posts: {count} posts in one request; at most {MAX_BULK_POSTS}: split them into several requests"
            ),
        ));
    }
    Ok(())
}

/// 422 naming every refused post; nothing was stored.
fn refused(mut errors: Vec<ItemError>) -> ApiError {
    errors.sort_by_key(|e| e.index);
    let mut posts: Vec<usize> = errors.iter().map(|e| e.index).collect();
    posts.dedup();
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: format!(
            "{} of the posts are not valid; nothing was stored",
            posts.len()
        ),
        details: errors.iter().map(ToString::to_string).collect(),
    }
}

/// A body that is not `{"posts": [...]}` of valid posts: name the bad
/// items by index if the outer shape is right, else say what serde says.
fn locate_json_error(body: &Bytes, error: serde_json::Error) -> ApiError {
    let Ok(loose) = serde_json::from_slice::<LooseBulk>(body) else {
        return ApiError::bad_request(format!(
            "invalid JSON body: {error}; expected {{\"posts\": [{{\"body\": ..., \"channels\": [...]}}, ...]}}"
        ));
    };
    if let Err(e) = check_count(loose.posts.len()) {
        return e;
    }
    let errors: Vec<ItemError> = loose
        .posts
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            serde_json::from_value::<PostRequest>(item)
                .err()
                .map(|e| item_json_error(index, &e))
        })
        .collect();
    if errors.is_empty() {
        // The items parse one by one; the outer object must be at fault.
        return ApiError::bad_request(format!("invalid JSON body: {error}"));
    }
    let mut error = refused(errors);
    error.status = StatusCode::BAD_REQUEST;
    error
}

fn item_json_error(index: usize, error: &serde_json::Error) -> ItemError {
    let FieldError { field, message } = json_field_error(error);
    ItemError {
        index,
        field,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_item_and_field() {
        let body = Bytes::from_static(
            br#"{"posts": [{"body": "a", "channels": ["x"]}, {"body": "b"}, {"body": "c", "channels": [], "chanels": 1}]}"#,
        );
        let error = serde_json::from_slice::<Bulk>(&body).unwrap_err();
        let api = locate_json_error(&body, error);
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(api.details[0], "posts[1].channels: missing field");
        assert!(
            api.details[1].starts_with("posts[2].chanels: unknown field, expected one of"),
            "{:?}",
            api.details
        );
    }

    #[test]
    fn too_many_posts_is_413_and_none_is_400() {
        assert_eq!(
            check_count(MAX_BULK_POSTS + 1).unwrap_err().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(check_count(0).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(check_count(MAX_BULK_POSTS).is_ok());
    }
}
