//! What happens after a failed attempt: the scheduler acts on the error
//! class alone, so every platform gets the same, tested policy.

use std::time::Duration;

use clarion_core::{ErrorClass, Idempotency, PublishError};
use clarion_store::Claim;
use rand::Rng;

use crate::SchedulerConfig;
use crate::worker::human_duration;

/// What the policy needs to know about a target's past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When the author wanted it out.
    pub scheduled_at_ms: i64,
    /// When its idempotency key was first used.
    pub first_sent_at_ms: i64,
}

impl From<&clarion_store::target::Model> for History {
    fn from(t: &clarion_store::target::Model) -> Self {
        let now = clarion_store::now_ms();
        Self {
            attempts: t.attempts,
            scheduled_at_ms: t.scheduled_at_ms.unwrap_or(now),
            first_sent_at_ms: t.first_sent_at_ms.unwrap_or(now),
        }
    }
}

/// Decides a failed attempt's next state.
///
/// A retry is planned only if it can still be safe and on time: inside the
/// grace period after the scheduled moment (later, a person decides), and,
/// after an unknown outcome, inside the window in which the platform still
/// deduplicates the key (later, a resend could post twice).
pub fn after_failure(
    config: &SchedulerConfig,
    error: &PublishError,
    idempotency: Idempotency,
    history: impl Into<History>,
    now_ms: i64,
) -> Claim {
    let history = history.into();
    let attempts = history.attempts;
    let exhausted = attempts >= config.max_attempts;
    let retry_at = |delay: Duration| now_ms + delay.as_millis() as i64;
    let grace_ms = config.grace_period().as_millis() as i64;
    let too_late = |at: i64| at - history.scheduled_at_ms > grace_ms;
    let late_note = |at: i64| {
        format!(
            "not retried: the next try would be {} after the scheduled time, beyond the {} grace period;              reschedule it if it should still go out. Last error: {error}",
            human_duration(at - history.scheduled_at_ms),
            human_duration(grace_ms)
        )
    };
    match error.class {
        // Progress was made and recorded: continue at once, whatever the count.
        ErrorClass::Unfinished => Claim::Retry {
            not_before_ms: now_ms,
            error: error.to_string(),
        },
        ErrorClass::RateLimited | ErrorClass::Transient if !exhausted => {
            let at = retry_at(retry_delay(config, error, attempts));
            if too_late(at) {
                Claim::Failed {
                    error: late_note(at),
                }
            } else {
                Claim::Retry {
                    not_before_ms: at,
                    error: error.to_string(),
                }
            }
        }
        ErrorClass::OutcomeUnknown => {
            let at = retry_at(retry_delay(config, error, attempts));
            let key_age = Duration::from_millis((at - history.first_sent_at_ms).max(0) as u64);
            match idempotency {
                Idempotency::Honoured { .. }
                    if !exhausted && idempotency.dedupes_after(key_age) && !too_late(at) =>
                {
                    Claim::Retry {
                        not_before_ms: at,
                        error: error.to_string(),
                    }
                }
                Idempotency::Honoured { window } if !idempotency.dedupes_after(key_age) => {
                    Claim::OutcomeUnknown {
                        error: format!(
                            "{error}; the platform deduplicates a resend only for {}, and the next try                              would come later, so Clarion will not post again on its own: check the                              channel, then reschedule if it is missing",
                            human_duration(window.as_millis().min(i64::MAX as u128) as i64)
                        ),
                    }
                }
                Idempotency::Honoured { .. } => Claim::OutcomeUnknown {
                    error: format!(
                        "{error}; gave up after {attempts} attempts or past the grace period:                          check the channel, then reschedule if it is missing"
                    ),
                },
                Idempotency::None => Claim::OutcomeUnknown {
                    error: format!(
                        "{error}; this platform cannot deduplicate a resend, so Clarion will not                          post again on its own: check the channel, then reschedule if it is missing"
                    ),
                },
            }
        }
        ErrorClass::AuthExpired => Claim::Failed {
            error: format!(
                "credentials rejected, reconnect the channel: {}",
                error.message
            ),
        },
        ErrorClass::Permanent => Claim::Failed {
            error: error.message.clone(),
        },
        ErrorClass::RateLimited | ErrorClass::Transient => Claim::Failed {
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

    const HOUR: Duration = Duration::from_secs(3600);

    fn err(class: ErrorClass) -> PublishError {
        PublishError::new(class, "HTTP 503: busy")
    }

    /// A target scheduled and first sent at time 0.
    fn fresh(attempts: i32) -> History {
        History {
            attempts,
            scheduled_at_ms: 0,
            first_sent_at_ms: 0,
        }
    }

    #[test]
    fn an_unknown_outcome_is_retried_only_inside_the_platforms_window() {
        let config = SchedulerConfig::default();
        let e = err(ErrorClass::OutcomeUnknown);
        let matrix = Idempotency::honoured_for(Duration::from_secs(30 * 60));
        // Two minutes after the key was first used: a resend is deduplicated.
        assert!(matches!(
            after_failure(&config, &e, matrix, fresh(1), 120_000),
            Claim::Retry { .. }
        ));
        // 40 minutes later Synapse has forgotten the txnId: never a blind resend.
        match after_failure(&config, &e, matrix, fresh(2), 40 * 60_000) {
            Claim::OutcomeUnknown { error } => assert!(error.contains("only for 30m"), "{error}"),
            other => panic!("expected outcome_unknown, got {other:?}"),
        }
        // A key the adapter can always look up is retried whenever the grace allows.
        let forever = Idempotency::honoured_for(Idempotency::FOREVER);
        assert!(matches!(
            after_failure(&config, &e, forever, fresh(2), 40 * 60_000),
            Claim::Retry { .. }
        ));
    }

    #[test]
    fn a_retry_past_the_grace_period_asks_a_person() {
        let config = SchedulerConfig::default(); // grace: 1 hour
        let late = HOUR.as_millis() as i64 + 1;
        match after_failure(
            &config,
            &err(ErrorClass::Transient),
            Idempotency::None,
            fresh(2),
            late,
        ) {
            Claim::Failed { error } => assert!(error.starts_with("not retried"), "{error}"),
            other => panic!("expected failed, got {other:?}"),
        }
        let forever = Idempotency::honoured_for(Idempotency::FOREVER);
        assert!(matches!(
            after_failure(
                &config,
                &err(ErrorClass::OutcomeUnknown),
                forever,
                fresh(2),
                late
            ),
            Claim::OutcomeUnknown { .. }
        ));
    }

    #[test]
    fn unfinished_work_continues_at_once_even_after_many_calls() {
        let config = SchedulerConfig {
            max_attempts: 3,
            ..Default::default()
        };
        let e = err(ErrorClass::Unfinished);
        assert_eq!(
            after_failure(&config, &e, Idempotency::None, fresh(9), 5_000),
            Claim::Retry {
                not_before_ms: 5_000,
                error: e.to_string()
            }
        );
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
        match after_failure(&config, &e, Idempotency::None, fresh(1), 1_000) {
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
        let next =
            |class, idem, attempts| after_failure(&config, &err(class), idem, fresh(attempts), 0);
        assert!(matches!(
            next(ErrorClass::Transient, Idempotency::None, 1),
            Claim::Retry { .. }
        ));
        assert!(matches!(
            next(ErrorClass::Transient, Idempotency::None, 3),
            Claim::Failed { .. }
        ));
        assert!(matches!(
            next(ErrorClass::Permanent, Idempotency::honoured_for(HOUR), 1),
            Claim::Failed { .. }
        ));
        assert!(matches!(
            next(
                ErrorClass::OutcomeUnknown,
                Idempotency::honoured_for(HOUR),
                1
            ),
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
