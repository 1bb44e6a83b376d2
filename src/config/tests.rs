//! Loading and validation, through files written to a temporary directory.

use super::*;

struct TestEnv(Vec<(String, String)>);

impl Env for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn vars(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

fn env(pairs: &[(&str, &str)]) -> TestEnv {
    TestEnv(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn load_text(text: &str, e: &TestEnv) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, text).unwrap();
    load(Some(&path), e)
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9000"

[sources.acme-github]
provider = "github"
secret = "env:GH_SECRET"

[destinations.team]
kind = "x"
dry_run = true
limits = ["100/15m", "17/24h"]

[[routes]]
source = "acme-github"
events = ["task.created", "github:release.published"]
when = "'tweet' in event.labels"
to = ["team"]
template = "{{ event.project }}: {{ event.title }}"
"#;

#[test]
fn a_good_config_validates_into_typed_values() {
    let c = load_text(GOOD, &env(&[("GH_SECRET", "s3cret-long-enough")])).unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.max_body_bytes, 1024 * 1024);
    assert_eq!(c.sources["acme-github"].provider, Provider::Github);
    assert_eq!(c.destinations["team"].limits.len(), 2);
    assert_eq!(c.pipeline.routes.len(), 1);
    assert_eq!(c.pipeline.routes[0].events.len(), 2);
    // The secret never shows in Debug output.
    assert!(!format!("{c:?}").contains("s3cret-long-enough"));
}

#[test]
fn environment_overrides_use_double_underscores() {
    let e = env(&[
        ("GH_SECRET", "a-long-enough-secret"),
        ("CHIRPD_SERVER__LISTEN", "0.0.0.0:8788"),
        ("CHIRPD_CONFIG", "/ignored/because/not/a/key"),
        ("CHIRPD_SERVER__MAX_BODY_BYTES", "2048"),
    ]);
    let c = load_text(GOOD, &e).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8788");
    assert_eq!(c.server.max_body_bytes, 2048);
}

#[test]
fn the_defaults_alone_are_a_valid_config() {
    let c = load(None, &env(&[("STATE_DIRECTORY", "/var/lib/chirpd")])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
    assert_eq!(c.store_path, PathBuf::from("/var/lib/chirpd/chirpd.db"));
    assert!(c.pipeline.routes.is_empty());
}

#[test]
fn errors_carry_file_and_line() {
    let bad = GOOD
        .replace("env:GH_SECRET", "env:MISSING")
        .replace("\"task.created\"", "\"task.create\"")
        .replace("{{ event.title }}", "{{ event.title ");
    let errs = load_text(&bad, &env(&[])).unwrap_err().0;
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.ends_with("chirpd.toml:7: environment variable MISSING is not set")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.contains("chirpd.toml:16: unknown event kind")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|e| e.contains("chirpd.toml:19: syntax error")),
        "{text:?}"
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let errs = load_text(
        &GOOD.replace("listen =", "listn ="),
        &env(&[("GH_SECRET", "a-long-enough-secret")]),
    )
    .unwrap_err();
    assert!(
        errs.to_string()
            .contains("chirpd.toml:3: unknown field `listn`"),
        "{errs}"
    );
    let errs = load_text(
        &GOOD.replace("17/24h", "17/24"),
        &env(&[("GH_SECRET", "a-long-enough-secret")]),
    )
    .unwrap_err();
    assert!(errs.to_string().contains("chirpd.toml:12"), "{errs}");
    let errs = load_text(
        &GOOD.replace("to = [\"team\"]", "to = [\"nobody\"]"),
        &env(&[("GH_SECRET", "a-long-enough-secret")]),
    )
    .unwrap_err();
    assert!(
        errs.to_string()
            .contains("chirpd.toml:18: no destination \"nobody\""),
        "{errs}"
    );
}

#[test]
fn a_syntax_error_gives_its_line_without_echoing_the_line() {
    let bad = GOOD.replace(
        "secret = \"env:GH_SECRET\"",
        "secret = \"s3cret-value-of-the-team\" oops",
    );
    let errs = load_text(&bad, &env(&[])).unwrap_err().to_string();
    assert!(errs.contains("chirpd.toml:7:"), "{errs}");
    assert!(!errs.contains("s3cret-value"), "{errs}");
}

#[test]
fn a_bad_environment_override_is_blamed_on_the_environment() {
    let e = env(&[
        ("GH_SECRET", "a-long-enough-secret"),
        ("CHIRPD_SERVER__MAX_BODY_BYTES", "lots"),
    ]);
    let errs = load_text(GOOD, &e).unwrap_err().to_string();
    assert!(
        errs.starts_with("environment (CHIRPD_SERVER__MAX_BODY_BYTES): "),
        "{errs}"
    );
}

#[test]
fn short_and_placeholder_secrets_and_escaping_credential_names_are_refused() {
    let with = |value: &str| {
        load_text(GOOD, &env(&[("GH_SECRET", value)]))
            .unwrap_err()
            .to_string()
    };
    let short = with("short-secret");
    assert!(
        short.contains("chirpd.toml:7: env:GH_SECRET is 12 bytes"),
        "{short}"
    );
    assert!(
        !short.contains("short-secret"),
        "the value never shows: {short}"
    );
    let placeholder = with(secret::PLACEHOLDER);
    assert!(placeholder.contains("placeholder"), "{placeholder}");
    let cred = load_text(
        &GOOD.replace("env:GH_SECRET", "cred:../../etc/shadow"),
        &env(&[("CREDENTIALS_DIRECTORY", "/run/credentials/chirpd.service")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        cred.contains("a credential name is a plain file name"),
        "{cred}"
    );
}

#[test]
fn plain_http_to_a_remote_api_is_refused() {
    let text = GOOD.replace(
        "dry_run = true",
        "dry_run = true\napi_base = \"http://api.x.com\"",
    );
    let errs = load_text(&text, &env(&[("GH_SECRET", "a-long-enough-secret")]))
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("chirpd.toml:12: \"http://api.x.com\" is plain http"),
        "{errs}"
    );
}

#[test]
fn the_store_is_found_where_the_service_keeps_it() {
    let none = env(&[]);
    let packaged = Path::new(PACKAGED_CONFIG);
    assert_eq!(
        store_path("chirpd.db", Some(packaged), &none),
        PathBuf::from("/var/lib/chirpd/chirpd.db")
    );
    assert_eq!(
        store_path(
            "chirpd.db",
            Some(packaged),
            &env(&[("STATE_DIRECTORY", "/srv/a:/srv/b")])
        ),
        PathBuf::from("/srv/a/chirpd.db")
    );
    assert_eq!(
        store_path("/data/c.db", Some(packaged), &none),
        PathBuf::from("/data/c.db")
    );
    assert_eq!(
        store_path("chirpd.db", Some(Path::new("./chirpd.toml")), &none),
        PathBuf::from("chirpd.db")
    );
}

#[test]
fn inspection_reads_no_secret() {
    let text = GOOD.replace("env:GH_SECRET", "cred:github_secret");
    // No $CREDENTIALS_DIRECTORY: the service's credentials are not there from a shell.
    assert!(load_text(&text, &env(&[])).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, &text).unwrap();
    let c = load_for_inspection(Some(&path), &env(&[])).unwrap();
    assert_eq!(c.pipeline.routes.len(), 1);
}

#[test]
fn the_console_is_off_without_a_password_hash_and_a_bad_hash_is_named_by_its_line() {
    let off = load_text("[admin]\nlisten = \"127.0.0.1:9999\"\n", &env(&[])).unwrap();
    assert!(off.admin.is_none());
    let errors = load_text(
        "[admin]\nuser = \"alice\"\npassword_hash = \"hunter2\"\n",
        &env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains(":3: ") && errors.contains("is not an argon2 hash"),
        "{errors}"
    );
    // The hash itself is never quoted.
    assert!(!errors.contains("hunter2"), "{errors}");
    let hash = crate::console::hash_password("a long enough password").unwrap();
    let on = load_text(
        "[admin]\nuser = \"alice\"\npassword_hash = \"env:HASH\"\nsession_ttl = \"1h\"\n",
        &env(&[("HASH", &hash)]),
    )
    .unwrap();
    let admin = on.admin.unwrap();
    assert_eq!(
        (admin.user.as_str(), admin.session_ttl, admin.listen.port()),
        ("alice", Duration::from_secs(3600), 8790)
    );
}
