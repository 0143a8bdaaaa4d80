use std::fmt;

/// Where one post x channel target is in its life.
///
/// ```text
/// draft -> scheduled -> publishing -> published
///   |          |   ^        |------> failed
///   |          |   |________|------> outcome_unknown
///   +----------+--> cancelled        (publishing -> scheduled = retry)
/// ```
///
/// A person may move on what the scheduler leaves for them:
/// `failed`/`outcome_unknown -> scheduled` (`post retry`), and
/// `failed`/`outcome_unknown -> published` or `outcome_unknown -> failed`
/// (`post settle`, recording what they checked on the platform).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetStatus {
    Draft,
    Scheduled,
    Publishing,
    Published,
    Failed,
    OutcomeUnknown,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error(
        "unknown target status `{0}` (one of: draft, scheduled, publishing, published, \
         failed, outcome_unknown, cancelled)"
    )]
    Unknown(String),
    #[error("a target cannot go from {from} to {to}")]
    Transition {
        from: TargetStatus,
        to: TargetStatus,
    },
}

impl TargetStatus {
    pub const ALL: [TargetStatus; 7] = [
        TargetStatus::Draft,
        TargetStatus::Scheduled,
        TargetStatus::Publishing,
        TargetStatus::Published,
        TargetStatus::Failed,
        TargetStatus::OutcomeUnknown,
        TargetStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Draft => "draft",
            TargetStatus::Scheduled => "scheduled",
            TargetStatus::Publishing => "publishing",
            TargetStatus::Published => "published",
            TargetStatus::Failed => "failed",
            TargetStatus::OutcomeUnknown => "outcome_unknown",
            TargetStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StatusError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| StatusError::Unknown(s.to_owned()))
    }

    /// Final states: the scheduler never moves them again (a person may
    /// retry or settle a [`Self::awaits_person`] one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TargetStatus::Published
                | TargetStatus::Failed
                | TargetStatus::OutcomeUnknown
                | TargetStatus::Cancelled
        )
    }

    /// Left for a person: `post retry` or `post settle` may move it on.
    pub fn awaits_person(self) -> bool {
        matches!(self, TargetStatus::Failed | TargetStatus::OutcomeUnknown)
    }

    /// Content may still be edited (and re-rendered) in these states.
    pub fn is_editable(self) -> bool {
        matches!(self, TargetStatus::Draft | TargetStatus::Scheduled)
    }

    pub fn can_become(self, to: TargetStatus) -> bool {
        use TargetStatus::*;
        matches!(
            (self, to),
            (Draft, Scheduled)
                | (Draft, Cancelled)
                | (Scheduled, Draft)
                | (Scheduled, Publishing)
                | (Scheduled, Failed)
                | (Scheduled, Cancelled)
                | (Publishing, Published)
                | (Publishing, Failed)
                | (Publishing, OutcomeUnknown)
                | (Publishing, Scheduled)
                // A person's retry (`post retry`).
                | (Failed, Scheduled)
                | (OutcomeUnknown, Scheduled)
                // A person's check on the platform (`post settle`).
                | (Failed, Published)
                | (OutcomeUnknown, Published)
                | (OutcomeUnknown, Failed)
        )
    }

    pub fn transition(self, to: TargetStatus) -> Result<TargetStatus, StatusError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(StatusError::Transition { from: self, to })
        }
    }
}

impl fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in TargetStatus::ALL {
            assert_eq!(TargetStatus::parse(status.as_str()), Ok(status));
        }
        assert!(matches!(
            TargetStatus::parse("sent"),
            Err(StatusError::Unknown(s)) if s == "sent"
        ));
    }

    #[test]
    fn an_unknown_status_lists_the_valid_ones() {
        let message = TargetStatus::parse("bogus").unwrap_err().to_string();
        assert!(
            message.starts_with("unknown target status `bogus`"),
            "{message}"
        );
        for status in TargetStatus::ALL {
            assert!(message.contains(status.as_str()), "{message}");
        }
    }

    #[test]
    fn final_states_are_left_only_by_a_persons_retry_or_settle() {
        use TargetStatus::*;
        let persons = [
            (Failed, Scheduled),
            (OutcomeUnknown, Scheduled),
            (Failed, Published),
            (OutcomeUnknown, Published),
            (OutcomeUnknown, Failed),
        ];
        for from in TargetStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in TargetStatus::ALL {
                assert_eq!(
                    from.transition(to).is_ok(),
                    persons.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        for status in TargetStatus::ALL {
            let left_for_a_person = persons.iter().any(|(from, _)| *from == status);
            assert_eq!(status.awaits_person(), left_for_a_person, "{status}");
        }
        // Published and cancelled are final for everyone.
        for to in TargetStatus::ALL {
            assert!(Published.transition(to).is_err(), "published -> {to}");
            assert!(Cancelled.transition(to).is_err(), "cancelled -> {to}");
        }
    }

    #[test]
    fn a_published_target_is_reached_through_publishing_or_a_persons_check() {
        for from in TargetStatus::ALL {
            let allowed = from.can_become(TargetStatus::Published);
            let expected = from == TargetStatus::Publishing || from.awaits_person();
            assert_eq!(allowed, expected, "{from}");
        }
    }
}
