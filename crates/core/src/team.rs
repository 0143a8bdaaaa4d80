//! Team roles and what each may do. Pure vocabulary: the server checks an
//! [`Action`] against the caller's [`Role`]; nothing here knows HTTP.

use std::fmt;
use std::str::FromStr;

/// A user's role, from most to least trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Everything, including users and other people's tokens.
    Owner,
    /// Schedules, reschedules, approves, answers the inbox.
    Editor,
    /// Writes drafts; what they submit waits for an editor's approval.
    Contributor,
    /// Reads everything, writes nothing.
    Viewer,
}

/// What a request wants to do, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See pages and read the API.
    Read,
    /// Create a draft or submit a post for approval; write inbox notes.
    Draft,
    /// Schedule, reschedule, retry, settle, cancel, approve or reject a
    /// post; answer, assign, label or resolve a conversation; record
    /// links and orders.
    Publish,
    /// Add, change and remove users; see the audit log of everyone.
    ManageUsers,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Editor, Role::Contributor, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
        }
    }

    pub fn may(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Draft => self <= Role::Contributor,
            Action::Publish => self <= Role::Editor,
            Action::ManageUsers => self == Role::Owner,
        }
    }

    /// The least role that may do `action`, for error messages.
    pub fn least_for(action: Action) -> Role {
        Role::ALL
            .iter()
            .rev()
            .copied()
            .find(|r| r.may(action))
            .unwrap_or(Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Draft => "write drafts",
            Action::Publish => "schedule and publish",
            Action::ManageUsers => "manage users",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (one of: owner, editor, contributor, viewer)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_issue_says_and_no_more() {
        use Action::*;
        let table = [
            (Role::Owner, [true, true, true, true]),
            (Role::Editor, [true, true, true, false]),
            (Role::Contributor, [true, true, false, false]),
            (Role::Viewer, [true, false, false, false]),
        ];
        for (role, expected) in table {
            let got = [Read, Draft, Publish, ManageUsers].map(|a| role.may(a));
            assert_eq!(got, expected, "{role}");
        }
        assert_eq!(Role::least_for(Publish), Role::Editor);
        assert_eq!(Role::least_for(Draft), Role::Contributor);
        assert_eq!(Role::least_for(ManageUsers), Role::Owner);
    }

    #[test]
    fn roles_parse_by_name_and_unknown_names_are_refused() {
        assert_eq!("Editor".parse::<Role>(), Ok(Role::Editor));
        let err = "admin".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("`admin`"), "{err}");
    }
}
