use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clarion_scheduler::ServiceError;
use clarion_store::StoreError;
use serde_json::json;

/// An API failure: a status and a message that names what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(errors) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "the post is not valid for its channels".into(),
                details: errors.iter().map(ToString::to_string).collect(),
            },
            ServiceError::InvalidItems(errors) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: "posts are not valid; nothing was stored".into(),
                details: errors.iter().map(ToString::to_string).collect(),
            },
            ServiceError::BadRequest(message) => Self::bad_request(message),
            ServiceError::Store(e) => e.into(),
            ServiceError::Scheduler(e) => internal(&e),
        }
    }
}

impl From<clarion_engage::InboxError> for ApiError {
    fn from(e: clarion_engage::InboxError) -> Self {
        match e {
            clarion_engage::InboxError::BadRequest(message) => Self::bad_request(message),
            clarion_engage::InboxError::Store(e) => e.into(),
            clarion_engage::InboxError::Reply(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PostNotFound(_) | StoreError::ConversationNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, e.to_string())
            }
            StoreError::Conflict { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            StoreError::Team(message) => Self::bad_request(message),
            other => internal(&other),
        }
    }
}

/// Details go to the log, not to the client.
pub(crate) fn internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API request failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log",
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if !self.details.is_empty() {
            body["details"] = json!(self.details);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<clarion_analytics::AnalyticsError> for ApiError {
    fn from(e: clarion_analytics::AnalyticsError) -> Self {
        match e {
            clarion_analytics::AnalyticsError::BadRequest(message) => Self::bad_request(message),
            clarion_analytics::AnalyticsError::NotFound(what) => {
                Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            clarion_analytics::AnalyticsError::Store(e) => e.into(),
        }
    }
}
