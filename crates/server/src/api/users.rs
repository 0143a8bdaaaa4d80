//! `/api/v1/users`: owners list, add, change and remove users (the same
//! store calls as `clarion users`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clarion_core::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_json;
use crate::{ApiError, AppState, format_time};

pub fn user_json(u: &clarion_store::user::Model) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "password": u.password_hash.is_some(),
        "created_at": format_time(u.created_at_ms),
    })
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let users = state.service.store().users().await?;
    Ok(Json(
        json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    #[serde(default)]
    name: String,
    role: String,
    /// None: the user signs in with an emailed link.
    #[serde(default)]
    password: Option<String>,
}

fn role(value: &str) -> Result<Role, ApiError> {
    value
        .parse()
        .map_err(|e: clarion_core::team::UnknownRole| ApiError::bad_request(format!("role: {e}")))
}

pub async fn add(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: NewUser = parse_json(&body)?;
    let role = role(&request.role)?;
    let user = state
        .service
        .store()
        .add_user(
            &request.email,
            &request.name,
            role,
            request.password.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    role: String,
}

async fn email_of(state: &AppState, id: i32) -> Result<String, ApiError> {
    state
        .service
        .store()
        .user_by_id(id)
        .await?
        .map(|u| u.email)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no user {id}")))
}

/// `PATCH /api/v1/users/{id} {"role"}`.
pub async fn change(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Change = parse_json(&body)?;
    let role = role(&request.role)?;
    let email = email_of(&state, id).await?;
    let user = state.service.store().set_role(&email, role).await?;
    Ok(Json(user_json(&user)))
}

/// `DELETE /api/v1/users/{id}`.
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, ApiError> {
    let email = email_of(&state, id).await?;
    let user = state.service.store().remove_user(&email).await?;
    Ok(Json(
        json!({"id": user.id, "email": user.email, "removed": true}),
    ))
}
