//! Planning: the pure composition normalize → route → render → fit for one delivery.
//!
//! The daemon's fanout, `chirpd preview` and `chirpd check` all call `plan`, so what a preview shows is
//! exactly what the daemon would post. This module must not do I/O or read the clock.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::normalize::{self, Event, Provider};
use crate::render::fit::{self, Limit};
use crate::render::{RenderError, Templates, context};
use crate::route::Route;

/// Routes and templates of one config, and each destination's length rule.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub routes: Vec<Route>,
    pub templates: Templates,
    pub limits: BTreeMap<String, Limit>,
}

/// One post the delivery should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub route: usize,
    pub destination: String,
    pub limit: Limit,
    pub text: String,
    pub length: usize,
    pub shortened: bool,
}

/// The outcome of planning one delivery.
#[derive(Debug, Clone)]
pub struct Plan {
    pub event: Event,
    pub posts: Vec<Planned>,
    /// Routes whose condition or template failed, with the error; the other routes still post.
    pub errors: Vec<(usize, RenderError)>,
}

/// Plans the posts for one verified payload from `source`.
pub fn plan(
    pipeline: &Pipeline,
    source: &str,
    provider: &Provider,
    event_name: Option<&str>,
    payload: &Value,
) -> Plan {
    let event = normalize::normalize(provider, event_name, payload);
    let ctx = context(&event, payload);
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
            let limit = pipeline
                .limits
                .get(destination)
                .copied()
                .unwrap_or(Limit::Tweet);
            let fitted = fit::fit(&text, limit);
            posts.push(Planned {
                route: route.index,
                destination: destination.clone(),
                limit,
                text: fitted.text,
                length: fitted.length,
                shortened: fitted.shortened,
            });
        }
    }
    Plan {
        event,
        posts,
        errors,
    }
}
