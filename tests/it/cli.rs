//! The `check` and `preview` commands, run as the real binary.

use std::process::Command;

use serde_json::Value;

/// The secret the example config's source reads from the environment.
const DEMO_SECRET: &str = "a-demo-secret-of-32-characters!!";

fn chirpd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chirpd"));
    c.env_remove("CHIRPD_CONFIG")
        .env("RUST_LOG", "warn")
        .env("ACME_GITHUB_SECRET", DEMO_SECRET);
    c
}

fn example() -> String {
    format!("{}/config/chirpd.example.toml", env!("CARGO_MANIFEST_DIR"))
}

fn github_fixtures() -> Vec<std::path::PathBuf> {
    let dir = format!("{}/samples/github", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn check_accepts_the_example_config_and_renders_the_samples() {
    let out = chirpd()
        .args(["check", "--config", &example()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "1 sources, 1 destinations, 7 routes; 29 posts rendered from bundled samples"
        ),
        "{stdout}"
    );
}

/// Writes a config with one GitHub source, one dry-run destination and one route; the secret is on line
/// 3 and the template on line 13.
fn one_route_config(
    dir: &tempfile::TempDir,
    secret: &str,
    events: &str,
    template: &str,
) -> std::path::PathBuf {
    let path = dir.path().join("chirpd.toml");
    let text = format!(
        "[sources.gh]\nprovider = \"github\"\nsecret = \"{secret}\"\n\n[destinations.team]\nkind = \"x\"\ndry_run = true\n\n\
         [[routes]]\nsource = \"gh\"\nevents = [\"{events}\"]\nto = [\"team\"]\ntemplate = \"{template}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_reports_every_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = one_route_config(
        &dir,
        "env:CHIRPD_TEST_UNSET_SECRET",
        "task.created",
        "{{ event.title }",
    );
    let out = chirpd()
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("CHIRPD_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:3: environment variable CHIRPD_TEST_UNSET_SECRET is not set"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:13: syntax error")),
        "{stderr}"
    );
}

#[test]
fn check_reports_template_errors_on_samples() {
    let dir = tempfile::tempdir().unwrap();
    let path = one_route_config(&dir, "a-long-enough-secret", "*", "{{ event.titel }}");
    let out = chirpd()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("error: {}:13: undefined value", path.display())),
        "{stdout}"
    );
}

#[test]
fn preview_prints_a_fitting_tweet_for_every_github_fixture() {
    let fixtures = github_fixtures();
    assert!(fixtures.len() >= 8);
    for file in fixtures {
        let out = chirpd()
            .args([
                "preview",
                "--config",
                &example(),
                "--source",
                "acme-github",
                "--json",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if name == "ping.json" {
            assert!(lines.is_empty(), "ping must post nothing: {stdout}");
            continue;
        }
        assert_eq!(lines.len(), 1, "{name}: {stdout}");
        let post: Value = serde_json::from_str(lines[0]).unwrap();
        let len = post["weighted_length"].as_u64().unwrap();
        assert!((1..=280).contains(&len), "{name}: {len}");
        assert_eq!(post["destination"], "team");
        assert_eq!(post["kind"], "tweet");
        assert!(post["route"].is_u64());
        assert_eq!(
            chirpd::render::fit::weighted_length(post["text"].as_str().unwrap()) as u64,
            len
        );
    }
}

#[test]
fn preview_shortens_long_texts_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("issues.opened.json");
    let mut v: Value =
        serde_json::from_slice(&crate::support::fixture("issues.opened.json")).unwrap();
    v["issue"]["title"] = Value::String("a very long title ".repeat(30));
    std::fs::write(&payload, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = chirpd()
        .args(["preview", "--config", &example(), "--source", "acme-github"])
        .arg(&payload)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("shortened"), "{stdout}");
    assert!(
        stdout.contains("Codertocat/Hello-World: Codertocat opened #1 a very long title"),
        "{stdout}"
    );
    assert!(
        stdout.contains("… [bug] https://github.com/Codertocat/Hello-World/issues/1"),
        "{stdout}"
    );
}

#[test]
fn run_with_a_broken_config_exits_78_so_systemd_stops_restarting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, "[server]\nlisten = \"not an address\"\n").unwrap();
    let out = chirpd()
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let unit = std::fs::read_to_string(format!(
        "{}/systemd/chirpd.service",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(unit.contains("RestartPreventExitStatus=78"));
}
