//! Secrets come from the environment or a file, never from the config file
//! itself, and never print.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ConfigError;

/// Where to read a secret: `{ env = "NAME" }` or `{ file = "/run/secrets/x" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl SecretRef {
    pub fn env(name: impl Into<String>) -> Self {
        Self {
            env: Some(name.into()),
            file: None,
        }
    }

    /// Reads the secret. `what` names it in errors (never the value).
    pub fn resolve(&self, what: &str) -> Result<Secret, ConfigError> {
        match (&self.env, &self.file) {
            (Some(name), None) => match std::env::var(name) {
                Ok(value) if !value.trim().is_empty() => Ok(Secret(value.trim().to_owned())),
                _ => Err(ConfigError::new(format!(
                    "{what}: environment variable {name} is not set"
                ))),
            },
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|value| Secret(value.trim().to_owned()))
                .map_err(|e| {
                    ConfigError::new(format!("{what}: cannot read {}: {e}", path.display()))
                }),
            _ => Err(ConfigError::new(format!(
                "{what}: give exactly one of `env` or `file`"
            ))),
        }
    }
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it (a header, a URL).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "Secret(***) ***");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_missing_env_secret_names_the_variable_not_a_value() {
        let err = SecretRef::env("CLARION_TEST_SURELY_UNSET_VAR")
            .resolve("channel `x` token")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel `x` token: environment variable CLARION_TEST_SURELY_UNSET_VAR is not set"
        );
    }

    #[test]
    fn file_secrets_are_trimmed() {
        let path = std::env::temp_dir().join(format!("clarion-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = SecretRef {
            env: None,
            file: Some(path.clone()),
        }
        .resolve("token")
        .unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }
}
