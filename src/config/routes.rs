//! Routes: a `[[routes]]` entry validated into a `Route`, its template and `when` condition compiled
//! into the config's template set, its sources and destinations checked against the file.

use std::path::Path;

use crate::config::ConfigError;
use crate::config::file::Locator;
use crate::config::raw::{RawConfig, RawRoute};
use crate::render::{Origin, Templates};
use crate::route::{EventPattern, Route};

pub(super) fn route(
    i: usize,
    r: &RawRoute,
    raw: &RawConfig,
    loc: &Locator,
    base: &Path,
    templates: &mut Templates,
) -> Result<Route, Vec<ConfigError>> {
    let key = |field: &str| format!("routes[{i}].{field}");
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(ConfigError {
            location: loc.at(&key(field)),
            message,
        })
    };
    let sources = r.source.to_vec();
    if sources.is_empty() {
        err("source", "a route needs at least one source".to_string());
    }
    for source in &sources {
        if !raw.sources.contains_key(source) {
            err(
                "source",
                format!("no source {source:?} is defined under [sources]"),
            );
        }
    }
    let mut events = Vec::new();
    if r.events.is_empty() {
        err(
            "events",
            "a route needs at least one event pattern (\"*\" for all)".to_string(),
        );
    }
    for e in &r.events {
        match EventPattern::parse(e) {
            Ok(p) => events.push(p),
            Err(m) => err("events", m),
        }
    }
    if r.to.is_empty() {
        err("to", "a route needs at least one destination".to_string());
    }
    for d in &r.to {
        if !raw.destinations.contains_key(d) {
            err(
                "to",
                format!("no destination {d:?} is defined under [destinations]"),
            );
        }
    }
    let origin = |field: &str| loc.origin(&key(field));
    let template_name = format!("routes[{i}]");
    match (&r.template, &r.template_file) {
        (Some(t), None) => {
            let mut o = origin("template");
            // A multi-line string that opens with `"""` and a newline starts on the next line.
            if t.contains('\n') {
                o.first_line += 1;
            }
            if let Err(e) = templates.add(&template_name, t.clone(), o) {
                errors.push(ConfigError {
                    location: e.location,
                    message: e.message,
                });
            }
        }
        (None, Some(file)) if !stays_inside(file) => err(
            "template_file",
            format!("{file:?} climbs out of its directory: give a path without .."),
        ),
        (None, Some(file)) => {
            let p = base.join(file);
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    let o = Origin {
                        file: p.display().to_string(),
                        first_line: 1,
                    };
                    if let Err(e) = templates.add(&template_name, t, o) {
                        errors.push(ConfigError {
                            location: e.location,
                            message: e.message,
                        });
                    }
                }
                Err(e) => err("template_file", format!("cannot read {}: {e}", p.display())),
            }
        }
        (Some(_), Some(_)) => err(
            "template",
            "give template or template_file, not both".to_string(),
        ),
        (None, None) => err(
            "template",
            "a route needs a template or a template_file".to_string(),
        ),
    }
    let when = r.when.as_ref().map(|expr| {
        let name = format!("routes[{i}].when");
        if let Err(e) = templates.add_condition(&name, expr, origin("when")) {
            errors.push(ConfigError {
                location: e.location,
                message: e.message,
            });
        }
        name
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Route {
        index: i,
        sources,
        events,
        when,
        to: r.to.clone(),
        template: template_name,
        review: r.review,
    })
}

/// Whether a template path names its file without climbing: no `..` anywhere. A relative path then stays
/// inside the config's directory, and an absolute one (packaged templates, say) says plainly where it
/// reads. A route's template is read with the service's rights, and its errors quote its lines.
fn stays_inside(file: &str) -> bool {
    !Path::new(file)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
}

#[cfg(test)]
mod tests {
    use super::stays_inside;

    #[test]
    fn template_paths_cannot_leave_the_config_directory() {
        assert!(stays_inside("templates/task.j2"));
        assert!(stays_inside("./task.j2"));
        assert!(!stays_inside("../secrets/x"));
        assert!(!stays_inside("templates/../../etc/shadow"));
        assert!(stays_inside(
            "/usr/share/doc/chirpd/examples/templates/task.j2"
        ));
        assert!(!stays_inside("/etc/chirpd/../shadow"));
    }
}
