//! Secrets come from the environment or a file, never from the config file
//! itself, and never print.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::ConfigError;

/// Where to read a secret: `{ env = "NAME" }` or `{ file = "/run/secrets/x" }`.
/// A value written inline (`api_token = "abc"`) is refused with a message
/// saying so, without repeating the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

/// What serde says a secret reference looks like.
const SECRET_REF_SHAPE: &str = "{ env = \"NAME\" } or { file = \"path\" }";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            env: Option<String>,
            file: Option<PathBuf>,
        }

        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretRef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SECRET_REF_SHAPE)
            }

            // The string is the secret itself: never echo it.
            fn visit_str<E: serde::de::Error>(self, _value: &str) -> Result<SecretRef, E> {
                Err(E::custom(format!(
                    "a secret is not written in the config: use {SECRET_REF_SHAPE}"
                )))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretRef, A::Error> {
                let fields =
                    Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretRef {
                    env: fields.env,
                    file: fields.file,
                })
            }
        }

        deserializer.deserialize_any(Visitor)
    }
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
    fn an_inline_secret_says_how_to_refer_to_one_without_repeating_it() {
        #[derive(Debug, Deserialize)]
        struct Server {
            #[allow(dead_code)]
            api_token: SecretRef,
        }
        // As the config is read: parsed to a table, then deserialized (so no
        // source snippet around the error).
        let table: toml::Table = "api_token = \"abc-s3cret\"".parse().unwrap();
        let err = toml::Value::Table(table)
            .try_into::<Server>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use { env = \"NAME\" } or { file = \"path\" }"),
            "{err}"
        );
        assert!(
            !err.contains("SecretRef") && !err.contains("abc-s3cret"),
            "{err}"
        );
        let err = serde_json::from_str::<SecretRef>("42")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected { env = \"NAME\" }"), "{err}");
        let err = serde_json::from_str::<SecretRef>(r#"{"envv": "X"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `envv`"), "{err}");
        let ok: Server = toml::from_str("api_token = { env = \"TOKEN\" }").unwrap();
        assert_eq!(ok.api_token, SecretRef::env("TOKEN"));
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
