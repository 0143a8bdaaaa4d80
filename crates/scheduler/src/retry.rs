//! What happens after a failed attempt: the scheduler acts on the error
//! class alone, so every platform gets the same, tested policy.

use std::time::Duration;

use clarion_core::{ErrorClass, Idempotency, PublishError};
use clarion_store::Claim;
use rand::Rng;

use crate::SchedulerConfig;

/// Decides a failed attempt's next state. `attempts` counts this attempt.
pub fn after_failure(
    config: &SchedulerConfig,
    error: &PublishError,
    idempotency: Idempotency,
    attempts: i32,
    now_ms: i64,
) -> Claim {
    let exhausted = attempts >= config.max_attempts;
    let retry = |delay: Duration| Claim::Retry {
        not_before_ms: now_ms + delay.as_millis() as i64,
        error: error.to_string(),
    };
    match error.class {
        ErrorClass::RateLimited | ErrorClass::Transient if !exhausted => {
            retry(retry_delay(config, error, attempts))
        }
        ErrorClass::OutcomeUnknown if idempotency == Idempotency::Honoured && !exhausted => {
            retry(retry_delay(config, error, attempts))
        }
        ErrorClass::OutcomeUnknown if idempotency == Idempotency::None => Claim::OutcomeUnknown {
            error: format!(
                "{error}; this platform cannot deduplicate a resend, so Clarion will not \
                 post again on its own: check the channel, then reschedule if it is missing"
            ),
        },
        ErrorClass::AuthExpired => Claim::Failed {
            error: format!(
                "credentials rejected, reconnect the channel: {}",
                error.message
            ),
        },
        ErrorClass::Permanent => Claim::Failed {
            error: error.message.clone(),
        },
        _ => Claim::Failed {
            error: format!("gave up after {attempts} attempts: {error}"),
        },
    }
}

/// The platform's `Retry-After` when it gave one (plus a little jitter so a
/// crowd of retries does not land in the same millisecond), else
/// exponential back-off with jitter.
pub fn retry_delay(config: &SchedulerConfig, error: &PublishError, attempts: i32) -> Duration {
    let mut rng = rand::thread_rng();
    if let Some(wait) = error.retry_after {
        return wait + Duration::from_millis(rng.gen_range(0..=250));
    }
    let exponent = attempts.clamp(1, 20) as u32 - 1;
    let ceiling = Duration::from_millis(config.retry_base_ms.saturating_mul(1 << exponent))
        .min(Duration::from_secs(config.retry_max_secs));
    // "Equal jitter": at least half the back-off, never more than all of it.
    ceiling / 2 + ceiling.mul_f64(rng.gen_range(0.0..=0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(class: ErrorClass) -> PublishError {
        PublishError::new(class, "HTTP 503: busy")
    }

    #[test]
    fn retry_after_is_honoured_not_shortened() {
        let config = SchedulerConfig::default();
        let e = err(ErrorClass::RateLimited).with_retry_after(Some(Duration::from_secs(7)));
        let d = retry_delay(&config, &e, 1);
        assert!(
            d >= Duration::from_secs(7) && d <= Duration::from_millis(7250),
            "{d:?}"
        );
        match after_failure(&config, &e, Idempotency::None, 1, 1_000) {
            Claim::Retry { not_before_ms, .. } => assert!(not_before_ms >= 8_000),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = SchedulerConfig {
            retry_base_ms: 1_000,
            retry_max_secs: 5,
            ..Default::default()
        };
        let e = err(ErrorClass::Transient);
        for (attempt, ceiling_ms) in [(1, 1_000), (2, 2_000), (3, 4_000), (4, 5_000), (10, 5_000)] {
            let d = retry_delay(&config, &e, attempt).as_millis() as u64;
            assert!(
                d >= ceiling_ms / 2 && d <= ceiling_ms,
                "attempt {attempt}: {d}ms"
            );
        }
    }

    #[test]
    fn classes_lead_to_the_right_state() {
        let config = SchedulerConfig {
            max_attempts: 3,
            ..Default::default()
        };
        let next = |class, idem, attempts| after_failure(&config, &err(class), idem, attempts, 0);
        assert!(matches!(
            next(ErrorClass::Transient, Idempotency::None, 1),
            Claim::Retry { .. }
        ));
        assert!(matches!(
            next(ErrorClass::Transient, Idempotency::None, 3),
            Claim::Failed { .. }
        ));
        assert!(matches!(
            next(ErrorClass::Permanent, Idempotency::Honoured, 1),
            Claim::Failed { .. }
        ));
        assert!(matches!(
            next(ErrorClass::OutcomeUnknown, Idempotency::Honoured, 1),
            Claim::Retry { .. }
        ));
        assert!(matches!(
            next(ErrorClass::OutcomeUnknown, Idempotency::None, 1),
            Claim::OutcomeUnknown { .. }
        ));
        match next(ErrorClass::AuthExpired, Idempotency::None, 1) {
            Claim::Failed { error } => {
                assert!(error.starts_with("credentials rejected"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        match next(ErrorClass::Permanent, Idempotency::None, 1) {
            Claim::Failed { error } => assert_eq!(error, "HTTP 503: busy"),
            other => panic!("{other:?}"),
        }
    }
}
