//! Secret values: where they come from and how they are kept out of logs.
//!
//! A secret in the config file is a literal, `env:NAME`, `file:/path` or `cred:NAME` (a systemd
//! credential under `$CREDENTIALS_DIRECTORY`). Resolution happens once, during validation. The resolved
//! value lives in a `Secret`, whose `Debug` prints `[redacted]` and which zeroizes on drop.
//! This module must not log or format a secret's value, and its errors name only the reference.

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

/// A resolved secret value. Only the code that signs or verifies calls `expose`.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(SecretString::from(value))
    }

    /// The secret's bytes, for HMAC keys and signatures only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret reference could not be resolved. The messages name the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("cred:{0} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)")]
    NoCredentialsDirectory(String),
    #[error("secret reference {0} resolves to an empty value")]
    Empty(String),
    #[error("cred:{0}: a credential name is a plain file name (letters, digits, '.', '-', '_')")]
    BadCredentialName(String),
    #[error(
        "cred:{0}: its file is missing (the unit's LoadCredential= found nothing; put the secret in /etc/chirpd/creds/{0})"
    )]
    MissingCredential(String),
}

/// The default value systemd/chirpd.service gives each credential (SetCredential=) for when its file is
/// missing.
pub const MISSING_CREDENTIAL: &str = "chirpd-credential-missing";

/// The placeholder the example config and README use; a source keeping it would accept anyone who read
/// the README.
pub const PLACEHOLDER: &str = "replace-me-with-a-long-random-string";

/// The shortest shared secret a source accepts: 16 bytes is 128 bits of key when random, and anything
/// shorter is guessable by a patient sender.
pub const MIN_SOURCE_SECRET: usize = 16;

/// Why a source's shared secret is refused, naming no value.
pub fn weak_source_secret(secret: &Secret) -> Option<String> {
    let value = secret.expose();
    if value.starts_with("replace-me") {
        return Some(
            "is the example's placeholder: generate a secret, e.g. `openssl rand -hex 32`"
                .to_string(),
        );
    }
    if value.len() < MIN_SOURCE_SECRET {
        return Some(format!(
            "is {} bytes; a shared secret needs at least {MIN_SOURCE_SECRET} (e.g. `openssl rand -hex 32`)",
            value.len()
        ));
    }
    None
}

/// How validation obtains secrets: resolved for real (the daemon, `check`, `auth`), or stood in for by
/// a fixed value that reads nothing (`preview`, `queue`, `handshake`: commands an admin runs from a shell,
/// where `$CREDENTIALS_DIRECTORY` and the service's environment do not exist, and which verify nothing).
pub struct Resolver<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub inspect_only: bool,
}

/// What an inspecting command holds in place of every secret: long enough for every check, and valid
/// base64 for the Standard Webhooks key.
const STAND_IN: &str = "aW5zcGVjdGlvbi1vbmx5LXN0YW5kLWluLXNlY3JldA==";

impl Resolver<'_> {
    pub fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
        if self.inspect_only {
            return Ok(Secret::new(STAND_IN.to_string()));
        }
        resolve(reference, self.env)
    }
}

/// Resolves a secret reference. `lookup_env` is passed in so that tests need not touch the process
/// environment.
pub fn resolve(
    reference: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, SecretError> {
    let value = if let Some(name) = reference.strip_prefix("env:") {
        lookup_env(name).ok_or_else(|| SecretError::MissingEnv(name.to_string()))?
    } else if let Some(path) = reference.strip_prefix("file:") {
        read_trimmed(Path::new(path))?
    } else if let Some(name) = reference.strip_prefix("cred:") {
        // systemd credential names are file names in $CREDENTIALS_DIRECTORY; a path could read any file
        // the service can.
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !plain {
            return Err(SecretError::BadCredentialName(name.to_string()));
        }
        let dir = lookup_env("CREDENTIALS_DIRECTORY")
            .ok_or_else(|| SecretError::NoCredentialsDirectory(name.to_string()))?;
        let value = read_trimmed(&Path::new(&dir).join(name))?;
        if value == MISSING_CREDENTIAL {
            return Err(SecretError::MissingCredential(name.to_string()));
        }
        value
    } else {
        reference.to_string()
    };
    if value.is_empty() {
        return Err(SecretError::Empty(describe(reference)));
    }
    Ok(Secret::new(value))
}

/// A printable name for a reference: the reference itself unless it is a literal secret.
pub fn describe(reference: &str) -> String {
    if ["env:", "file:", "cred:"]
        .iter()
        .any(|p| reference.starts_with(p))
    {
        reference.to_string()
    } else {
        "(literal)".to_string()
    }
}

fn read_trimmed(path: &Path) -> Result<String, SecretError> {
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| SecretError::File {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = resolve("hunter2", &no_env).unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn env_file_and_cred_references_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        let dir_s = dir.path().display().to_string();
        let env = move |k: &str| match k {
            "A" => Some("from-env".to_string()),
            "CREDENTIALS_DIRECTORY" => Some(dir_s.clone()),
            _ => None,
        };
        assert_eq!(resolve("env:A", &env).unwrap().expose(), "from-env");
        let file_ref = format!("file:{}", dir.path().join("tok").display());
        assert_eq!(resolve(&file_ref, &env).unwrap().expose(), "from-file");
        assert_eq!(resolve("cred:tok", &env).unwrap().expose(), "from-file");
    }

    #[test]
    fn errors_name_the_reference_not_the_value() {
        let err = resolve("env:NOPE", &no_env).unwrap_err().to_string();
        assert_eq!(err, "environment variable NOPE is not set");
        let err = resolve("cred:x", &no_env).unwrap_err().to_string();
        assert!(err.contains("CREDENTIALS_DIRECTORY"), "{err}");
        assert!(matches!(resolve("", &no_env), Err(SecretError::Empty(_))));
    }

    #[test]
    fn the_units_missing_credential_default_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("github_secret"), MISSING_CREDENTIAL).unwrap();
        let d = dir.path().display().to_string();
        let lookup = |n: &str| (n == "CREDENTIALS_DIRECTORY").then(|| d.clone());
        let e = resolve("cred:github_secret", &lookup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/chirpd/creds/github_secret"), "{e}");
        let e = resolve("cred:../github_secret", &lookup)
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain file name"), "{e}");
    }
}
