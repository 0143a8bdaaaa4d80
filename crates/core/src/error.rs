use std::time::Duration;

/// How a failed publish should be treated. Adapters map every platform error
/// shape onto one of these; the scheduler acts on the class alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The platform asked us to slow down; retry after `retry_after`.
    RateLimited,
    /// Nothing was posted and a later try may work (5xx, connection refused).
    Transient,
    /// Credentials were rejected or expired and could not be refreshed.
    AuthExpired,
    /// The platform refused the content or request; retrying cannot help.
    Permanent,
    /// The request may or may not have reached the platform (timeout, reset mid-request).
    OutcomeUnknown,
    /// Part of the work is done and recorded (a newsletter batch); call again
    /// at once to continue. Only returned after progress, so it cannot loop,
    /// and it does not count against `max_attempts`.
    Unfinished,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Transient => "transient",
            ErrorClass::AuthExpired => "auth_expired",
            ErrorClass::Permanent => "permanent",
            ErrorClass::OutcomeUnknown => "outcome_unknown",
            ErrorClass::Unfinished => "unfinished",
        }
    }
}

/// A classified publish failure. `message` is the platform's own words and
/// must never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", class.as_str())]
pub struct PublishError {
    pub class: ErrorClass,
    pub message: String,
    /// Wait the platform asked for (`Retry-After`, `retry_after`, ...).
    pub retry_after: Option<Duration>,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
}

impl PublishError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            status: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// Content that a channel cannot take, found before anything is queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub message: String,
}

impl ValidationError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
