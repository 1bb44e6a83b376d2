//! `chirpd check` and `chirpd preview`: validate a config against the bundled samples, and show what a
//! payload would become. Both run the daemon's own `plan`, and neither touches the network or the store.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

use crate::normalize::Provider;
use crate::plan;

use super::{load, load_for_inspection};

/// A payload bundled into the binary for `check`: the provider, the event name its headers would carry,
/// the file name and the body.
struct Sample {
    provider: Provider,
    event: Option<&'static str>,
    name: &'static str,
    body: &'static str,
}

macro_rules! sample {
    ($provider:expr, $event:expr, $dir:literal, $file:literal) => {
        Sample {
            provider: $provider,
            event: $event,
            name: concat!($dir, "/", $file),
            body: include_str!(concat!("../../samples/", $dir, "/", $file)),
        }
    };
}

/// Real payloads of every provider, as the products sent them (see samples/README.md).
fn samples() -> Vec<Sample> {
    use Provider::*;
    vec![
        sample!(Github, Some("issues"), "github", "issues.opened.json"),
        sample!(Github, Some("issues"), "github", "issues.labeled.json"),
        sample!(
            Github,
            Some("issue_comment"),
            "github",
            "issue_comment.created.json"
        ),
        sample!(
            Github,
            Some("pull_request"),
            "github",
            "pull_request.opened.json"
        ),
        sample!(
            Github,
            Some("pull_request"),
            "github",
            "pull_request.closed.json"
        ),
        sample!(Github, Some("push"), "github", "push.json"),
        sample!(Github, Some("release"), "github", "release.published.json"),
        sample!(Gitlab, Some("Issue Hook"), "gitlab", "issue-open.json"),
        sample!(
            Gitlab,
            Some("Merge Request Hook"),
            "gitlab",
            "merge_request-merge.json"
        ),
        sample!(Gitlab, Some("Note Hook"), "gitlab", "note-issue.json"),
        sample!(Gitlab, Some("Push Hook"), "gitlab", "push.json"),
        sample!(
            Gitlab,
            Some("Release Hook"),
            "gitlab",
            "release-create.json"
        ),
        sample!(Gitea, Some("issues"), "gitea", "issues-opened.json"),
        sample!(
            Gitea,
            Some("pull_request"),
            "gitea",
            "pull_request-opened.json"
        ),
        sample!(Gitea, Some("push"), "gitea", "push.json"),
        sample!(Gitea, Some("release"), "gitea", "release-published.json"),
        sample!(
            Bitbucket,
            Some("pullrequest:created"),
            "bitbucket",
            "pullrequest-created.json"
        ),
        sample!(
            Bitbucket,
            Some("pullrequest:fulfilled"),
            "bitbucket",
            "pullrequest-fulfilled.json"
        ),
        sample!(Bitbucket, Some("repo:push"), "bitbucket", "repo-push.json"),
        sample!(Jira, None, "jira", "jira-issue_created.json"),
        sample!(Jira, None, "jira", "jira-issue_updated-resolved.json"),
        sample!(Jira, None, "jira", "comment_created.json"),
        sample!(Linear, Some("Issue"), "linear", "Issue-create.json"),
        sample!(Linear, Some("Comment"), "linear", "Comment-create.json"),
        sample!(Trello, None, "trello", "createCard.json"),
        sample!(Trello, None, "trello", "commentCard.json"),
        sample!(Asana, None, "asana", "events-task-changed-completed.json"),
        sample!(Basecamp, None, "basecamp", "todo_created.json"),
        sample!(Basecamp, None, "basecamp", "comment_created.json"),
    ]
}

/// The families a provider's samples stand for: Forgejo and Gogs speak Gitea's payloads.
fn sample_provider(p: &Provider) -> Provider {
    match p {
        Provider::Forgejo | Provider::Gogs => Provider::Gitea,
        other => other.clone(),
    }
}

pub(super) fn check(flag: Option<&Path>) -> anyhow::Result<()> {
    let config = load(flag)?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    let mut rendered = 0;
    let samples = samples();
    // Every route is rendered against the samples of its source's provider; and, because templates are
    // meant to read well whatever the tracker, against every other provider's samples that its event
    // patterns match, as if they had arrived on its source.
    for route in &config.pipeline.routes {
        let own: Vec<Provider> = route
            .sources
            .iter()
            .filter_map(|s| config.sources.get(s))
            .map(|s| sample_provider(&s.provider))
            .collect();
        let Some(source_id) = route.sources.first() else {
            continue;
        };
        let single = plan::Pipeline {
            routes: vec![route.clone()],
            templates: config.pipeline.templates.clone(),
            targets: config.pipeline.targets.clone(),
            link_hosts: config.pipeline.link_hosts.clone(),
        };
        for sample in &samples {
            let payload: serde_json::Value = serde_json::from_str(sample.body)
                .with_context(|| format!("bundled sample {} is not JSON", sample.name))?;
            if !own.contains(&sample.provider) {
                let event = crate::normalize::normalize(&sample.provider, sample.event, &payload);
                let by_kind = route.events.iter().any(|p| {
                    !matches!(p, crate::route::EventPattern::Native { .. }) && p.matches(&event)
                });
                if !by_kind {
                    continue;
                }
            }
            let planned = plan::plan(&single, source_id, &sample.provider, sample.event, &payload);
            for (index, e) in &planned.errors {
                failures += 1;
                writeln!(out, "error: {e} (route {index}, sample {})", sample.name)?;
            }
            rendered += planned.posts.len();
        }
    }
    writeln!(
        out,
        "{}: {} sources, {} destinations, {} routes; {rendered} posts rendered from bundled samples",
        config
            .path
            .as_ref()
            .map_or("(defaults)".to_string(), |p| p.display().to_string()),
        config.sources.len(),
        config.destinations.len(),
        config.pipeline.routes.len(),
    )?;
    if failures > 0 {
        bail!("{failures} template error(s)");
    }
    Ok(())
}

/// The event name a provider's headers would carry, guessed from a sample file's name
/// (`issues.opened.json` → `issues` for GitHub, `pull_request-opened.json` → `pull_request` for Gitea,
/// `repo-push.json` → `repo:push` for Bitbucket).
fn event_from_file_name(provider: &Provider, file: &Path) -> Option<String> {
    let stem = file.file_name()?.to_str()?.strip_suffix(".json")?;
    match provider {
        Provider::Github => stem.split('.').next().map(str::to_string),
        Provider::Gitea | Provider::Forgejo | Provider::Gogs => {
            stem.split('-').next().map(str::to_string)
        }
        Provider::Bitbucket => stem
            .split_once('-')
            .map(|(a, b)| format!("{a}:{}", b.split('-').next().unwrap_or(b))),
        _ => None,
    }
}

pub(super) fn preview(
    flag: Option<&Path>,
    source_id: &str,
    event: Option<&str>,
    as_json: bool,
    payload_path: &Path,
) -> anyhow::Result<()> {
    let config = load_for_inspection(flag)?;
    let source = config
        .sources
        .get(source_id)
        .with_context(|| format!("no source {source_id:?} in the config"))?;
    let text = std::fs::read_to_string(payload_path)
        .with_context(|| format!("cannot read {}", payload_path.display()))?;
    let payload: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", payload_path.display()))?;
    let event = match event {
        Some(e) => Some(e.to_string()),
        None => event_from_file_name(&source.provider, payload_path),
    };
    if event.as_deref() == Some("ping") {
        eprintln!("ping is a handshake: answered, never posted");
        return Ok(());
    }
    let planned = plan::plan(
        &config.pipeline,
        source_id,
        &source.provider,
        event.as_deref(),
        &payload,
    );
    let mut out = std::io::stdout().lock();
    for p in &planned.posts {
        let kind = config
            .destinations
            .get(&p.destination)
            .map_or("tweet", |d| d.kind.name());
        if as_json {
            let line = json!({
                "route": p.route,
                "destination": p.destination,
                "kind": kind,
                "text": p.text,
                "weighted_length": p.length,
            });
            writeln!(out, "{line}")?;
        } else {
            let shortened = if p.shortened { ", shortened" } else { "" };
            writeln!(
                out,
                "route {} → {} ({kind}, {}/{}{shortened})\n{}\n",
                p.route,
                p.destination,
                p.length,
                p.limit.max(),
                p.text
            )?;
        }
    }
    if planned.posts.is_empty() && planned.errors.is_empty() {
        eprintln!(
            "no route posts this event (kind {}, native {}:{})",
            planned.event.kind.map_or("none", |k| k.as_str()),
            planned.event.provider,
            planned.event.native
        );
    }
    if !planned.errors.is_empty() {
        for (route, e) in &planned.errors {
            eprintln!("error: route {route}: {e}");
        }
        bail!("{} template error(s)", planned.errors.len());
    }
    Ok(())
}
