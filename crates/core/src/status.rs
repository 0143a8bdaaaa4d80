use std::fmt;

/// Where one post x channel target is in its life.
///
/// ```text
/// draft -> scheduled -> publishing -> published
///   |          |   ^        |------> failed
///   |          |   |________|------> outcome_unknown
///   +----------+--> cancelled        (publishing -> scheduled = retry)
/// ```
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
    #[error("unknown target status `{0}`")]
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

    /// Final states never change again; the scheduler ignores them.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TargetStatus::Published
                | TargetStatus::Failed
                | TargetStatus::OutcomeUnknown
                | TargetStatus::Cancelled
        )
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
    fn final_states_cannot_be_left() {
        for from in TargetStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in TargetStatus::ALL {
                assert!(
                    from.transition(to).is_err(),
                    "{from} -> {to} must be refused"
                );
            }
        }
    }

    #[test]
    fn a_published_target_is_only_reached_through_publishing() {
        for from in TargetStatus::ALL {
            let allowed = from.can_become(TargetStatus::Published);
            assert_eq!(allowed, from == TargetStatus::Publishing, "{from}");
        }
    }
}
