//! `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`: a signed-in
//! user's own API tokens. A token acts with its user's role; it is shown
//! once, when made, and stored only as a hash.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_json;
use crate::team::Actor;
use crate::{ApiError, AppState, format_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

fn user_of(actor: &Actor) -> Result<i32, ApiError> {
    actor.user_id.ok_or_else(|| {
        ApiError::bad_request(
            "the shared API token belongs to no user: sign in as a user to manage tokens",
        )
    })
}

pub async fn list(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Value>, ApiError> {
    let tokens = state.service.store().api_tokens(user_of(&actor)?).await?;
    Ok(Json(json!({
        "tokens": tokens.iter().map(|t| json!({
            "id": t.id,
            "name": t.name,
            "created_at": format_time(t.created_at_ms),
            "last_used_at": t.last_used_at_ms.and_then(format_time),
        })).collect::<Vec<_>>()
    })))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: NewToken = parse_json(&body)?;
    if request.name.trim().is_empty() {
        return Err(ApiError::bad_request("name: say what the token is for"));
    }
    let (token, row) = state
        .service
        .store()
        .create_api_token(user_of(&actor)?, &request.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": row.id, "name": row.name, "token": token, "role": actor.role.as_str()})),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    if !state
        .service
        .store()
        .revoke_api_token(user_of(&actor)?, id)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("you have no token {id}"),
        ));
    }
    Ok(Json(json!({"id": id, "revoked": true})))
}
