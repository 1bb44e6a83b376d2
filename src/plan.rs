//! Planning: the pure composition normalize → route → render → fit for one delivery.
//!
//! The daemon's fanout, `chirpd preview` and `chirpd check` all call `plan`, so what a preview shows is
//! exactly what the daemon would post. This module must not do I/O or read the clock.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::normalize::{self, Event, EventKind, Provider};
use crate::render::fit::{self, Limit};
use crate::render::{RenderError, Templates, context, neutral};
use crate::route::Route;

/// Routes and templates of one config, and what planning needs of each destination.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub routes: Vec<Route>,
    pub templates: Templates,
    pub targets: BTreeMap<String, Target>,
    /// Per source id: the hosts whose links stay links in `event.url` (the product's own, and the
    /// admin's `link_hosts`).
    pub link_hosts: BTreeMap<String, Vec<String>>,
}

/// What planning needs to know of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The outbox item kind: tweet, dm or mastodon.
    pub kind: &'static str,
    pub limit: Limit,
    /// DM recipients: one item each. Empty for posts.
    pub recipients: Vec<String>,
    /// `url_policy = "never"`: links are removed before the fit.
    pub strip_urls: bool,
    /// Wait this long before posting, merging later updates of the same subject into the post.
    pub settle: Option<std::time::Duration>,
    /// Every item waits in review for a person's decision.
    pub review: bool,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            kind: "tweet",
            limit: Limit::Tweet,
            recipients: Vec::new(),
            strip_urls: false,
            settle: None,
            review: false,
        }
    }
}

/// One post the delivery should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub route: usize,
    pub destination: String,
    /// The DM recipient, or empty for a post.
    pub recipient: String,
    pub kind: &'static str,
    pub limit: Limit,
    pub text: String,
    pub length: usize,
    pub shortened: bool,
    /// It waits in review (its route or its destination says so).
    pub review: bool,
}

/// The outcome of planning one delivery.
#[derive(Debug, Clone)]
pub struct Plan {
    pub event: Event,
    pub posts: Vec<Planned>,
    /// Routes whose condition or template failed, with the error; the other routes still post.
    pub errors: Vec<(usize, RenderError)>,
}

/// A reviewer's text for `destination`, fitted to its rule as planning fits a rendered text (links
/// removed first where the destination never posts them); none for a destination the config lacks, or a
/// text that is empty once fitted.
pub fn refit(pipeline: &Pipeline, destination: &str, text: &str) -> Option<(String, usize)> {
    let target = pipeline.targets.get(destination)?;
    let text = if target.strip_urls {
        fit::strip_urls(text)
    } else {
        text.trim().to_string()
    };
    let fitted = fit::fit(&text, target.limit);
    (!fitted.text.is_empty()).then_some((fitted.text, fitted.length))
}

/// Plans the posts for one verified payload from `source`.
pub fn plan(
    pipeline: &Pipeline,
    source: &str,
    provider: &Provider,
    event_name: Option<&str>,
    payload: &Value,
) -> Plan {
    plan_as(pipeline, source, provider, event_name, payload, None)
}

/// Like `plan`, but templates see `render_kind` as `event.kind` while routes still match the real event:
/// settling renders a merged post ("opened", with the labels an update added a moment later).
pub fn plan_as(
    pipeline: &Pipeline,
    source: &str,
    provider: &Provider,
    event_name: Option<&str>,
    payload: &Value,
    render_kind: Option<EventKind>,
) -> Plan {
    let event = normalize::normalize(provider, event_name, payload);
    let url_is_link = match (&event.url, pipeline.link_hosts.get(source)) {
        (Some(url), Some(hosts)) => neutral::host_is(url, hosts),
        _ => false,
    };
    let ctx = match render_kind {
        Some(kind) => {
            let mut shown = event.clone();
            shown.kind = Some(kind);
            context(&shown, payload, url_is_link)
        }
        None => context(&event, payload, url_is_link),
    };
    let mut posts = Vec::new();
    let mut errors = Vec::new();
    for route in pipeline.routes.iter().filter(|r| r.matches(source, &event)) {
        if let Some(when) = &route.when {
            match pipeline.templates.test(when, &ctx) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    errors.push((route.index, e));
                    continue;
                }
            }
        }
        let text = match pipeline.templates.render(&route.template, &ctx) {
            Ok(text) => text,
            Err(e) => {
                errors.push((route.index, e));
                continue;
            }
        };
        // A template that renders to nothing means "nothing to say about this event".
        if text.is_empty() {
            continue;
        }
        for destination in &route.to {
            let target = pipeline
                .targets
                .get(destination)
                .cloned()
                .unwrap_or_default();
            let text = if target.strip_urls {
                fit::strip_urls(&text)
            } else {
                text.clone()
            };
            if text.is_empty() {
                continue;
            }
            let fitted = fit::fit(&text, target.limit);
            let recipients = if target.recipients.is_empty() {
                vec![String::new()]
            } else {
                target.recipients.clone()
            };
            for recipient in recipients {
                posts.push(Planned {
                    route: route.index,
                    destination: destination.clone(),
                    recipient,
                    kind: target.kind,
                    limit: target.limit,
                    text: fitted.text.clone(),
                    length: fitted.length,
                    shortened: fitted.shortened,
                    review: route.review || target.review,
                });
            }
        }
    }
    Plan {
        event,
        posts,
        errors,
    }
}
