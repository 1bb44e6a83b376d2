//! Rendering: the admin's minijinja templates turn an `Event` into text; `fit` makes it obey X's rules.
//!
//! Templates are compiled once, when the config is validated, so a syntax error stops `chirpd check` and
//! reloads instead of a post. They run sandboxed: strict undefined (a typo such as `event.titel` fails
//! loudly), no HTML escaping (tweets are plain text), a fuel limit that bounds the work one render may do,
//! and no filesystem access. Errors carry the file and line of the template's origin.
//! This module must not do I/O, read the clock or see secrets: only `event` and `payload` are in scope.

pub mod digest;
pub mod fit;
pub mod neutral;

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::normalize::Event;

/// The instruction budget of one render. Generous for a tweet, small enough that a runaway loop in a
/// template stops in milliseconds.
pub const FUEL: u64 = 200_000;

/// Where a template's first line sits, so that errors can point at the admin's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub first_line: usize,
}

/// A template or `when` expression that failed to compile or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RenderError {
    /// `file:line` of the failing template line.
    pub location: String,
    pub message: String,
}

/// The compiled templates of one config.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
    origins: BTreeMap<String, Origin>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.origins.keys())
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(FUEL));
        // Every interpolated value is an outsider's text unless marked safe: defused and marked for `fit`
        // (see `neutral`). The template's literal text is not formatted, so it stays as written.
        env.set_formatter(|out, _state, value| {
            let written = if value.is_safe() {
                write!(out, "{value}")
            } else {
                let text = neutral::defuse(&value.to_string());
                write!(out, "{}{text}{}", neutral::OPEN, neutral::CLOSE)
            };
            written.map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write a value")
            })
        });
        Templates {
            env,
            origins: BTreeMap::new(),
        }
    }
}

impl Templates {
    /// Compiles a template under `name`.
    pub fn add(&mut self, name: &str, source: String, origin: Origin) -> Result<(), RenderError> {
        self.origins.insert(name.to_string(), origin);
        self.env
            .add_template_owned(name.to_string(), source)
            .map_err(|e| self.error(name, &e))
    }

    /// Compiles a `when` expression under `name`; `test` evaluates it.
    pub fn add_condition(
        &mut self,
        name: &str,
        expr: &str,
        origin: Origin,
    ) -> Result<(), RenderError> {
        if expr.contains("%}") || expr.contains("{%") {
            return Err(RenderError {
                location: format!("{}:{}", origin.file, origin.first_line),
                message: "a when expression is an expression, not a template".to_string(),
            });
        }
        self.add(name, format!("{{% if ({expr}) %}}1{{% endif %}}"), origin)
    }

    /// Renders `name` for an event; the result is trimmed of surrounding whitespace.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| self.error(name, &e))?;
        let out = tmpl.render(ctx).map_err(|e| self.error(name, &e))?;
        // A template whose values are all empty says nothing; the marks alone are not a post.
        if out
            .chars()
            .all(|c| c.is_whitespace() || c == neutral::OPEN || c == neutral::CLOSE)
        {
            return Ok(String::new());
        }
        Ok(out.trim().to_string())
    }

    /// Evaluates a condition added with `add_condition`.
    pub fn test(&self, name: &str, ctx: &Value) -> Result<bool, RenderError> {
        Ok(self.render(name, ctx)? == "1")
    }

    fn error(&self, name: &str, err: &minijinja::Error) -> RenderError {
        let origin = self.origins.get(name);
        let file = origin.map_or(name, |o| o.file.as_str());
        let first = origin.map_or(1, |o| o.first_line);
        let line = first + err.line().unwrap_or(1).saturating_sub(1);
        let message = match err.detail() {
            Some(detail) => format!("{}: {detail}", err.kind()),
            None => err.kind().to_string(),
        };
        RenderError {
            location: format!("{file}:{line}"),
            message,
        }
    }
}

/// The template context: the normalized `event` and the raw `payload`. `event.url` is marked safe (a
/// link in the post, never shortened) when `url_is_link`: its host is one the source's product serves.
pub fn context(event: &Event, payload: &serde_json::Value, url_is_link: bool) -> Value {
    let mut fields: BTreeMap<String, Value> = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k, Value::from(minijinja::value::Serde(v))))
            .collect(),
        _ => BTreeMap::new(),
    };
    if url_is_link && let Some(url) = &event.url {
        fields.insert("url".to_string(), Value::from_safe_string(url.clone()));
    }
    minijinja::context! {
        event => Value::from(fields),
        payload => Value::from(minijinja::value::Serde(payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::EventKind;

    fn origin(line: usize) -> Origin {
        Origin {
            file: "chirpd.toml".to_string(),
            first_line: line,
        }
    }

    fn event() -> Event {
        let mut e = Event::bare("github", "issues.opened".to_string());
        e.kind = Some(EventKind::TaskCreated);
        e.title = Some("Fix <b> & co".to_string());
        e
    }

    #[test]
    fn renders_without_escaping_and_with_none_fields() {
        let mut t = Templates::default();
        t.add(
            "r",
            "{{ event.title }} {{ event.url or 'no url' }} {{ payload.x }}".into(),
            origin(3),
        )
        .unwrap();
        let ctx = context(&event(), &serde_json::json!({"x": 1}), false);
        assert_eq!(
            neutral::unmark(&t.render("r", &ctx).unwrap()),
            "Fix <b> & co no url 1"
        );
    }

    #[test]
    fn typos_fail_with_file_and_line() {
        let mut t = Templates::default();
        t.add(
            "r",
            "line one\n{{ event.titel | upper }}".into(),
            origin(10),
        )
        .unwrap();
        let err = t
            .render("r", &context(&event(), &serde_json::json!({}), false))
            .unwrap_err();
        assert_eq!(err.location, "chirpd.toml:11");
        assert!(err.message.contains("undefined"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_point_at_their_line() {
        let mut t = Templates::default();
        let err = t
            .add("r", "ok\nok\n{% if %}".into(), origin(1))
            .unwrap_err();
        assert_eq!(err.location, "chirpd.toml:3");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let mut t = Templates::default();
        t.add(
            "r",
            "{% for i in range(100000) %}{% for j in range(100) %}x{% endfor %}{% endfor %}".into(),
            origin(1),
        )
        .unwrap();
        let err = t
            .render("r", &context(&event(), &serde_json::json!({}), false))
            .unwrap_err();
        assert!(err.message.contains("fuel"), "{}", err.message);
    }

    #[test]
    fn conditions_evaluate_against_the_event() {
        let mut t = Templates::default();
        t.add_condition(
            "w",
            "event.kind == 'task.created' and 'x' not in event.labels",
            origin(1),
        )
        .unwrap();
        assert!(
            t.test("w", &context(&event(), &serde_json::json!({}), false))
                .unwrap()
        );
        assert!(t.add_condition("w3", "1 %} x {% if 1", origin(4)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any template text, valid or not, compiles or fails with a location, and renders or fails,
        /// without panicking; the fuel limit bounds the work.
        #[test]
        fn arbitrary_templates_never_panic(src in "[{}%#a-z._()'\" |0-9=<>-]{0,80}") {
            let mut t = Templates::default();
            let origin = Origin { file: "t".into(), first_line: 1 };
            if t.add("x", src, origin).is_ok() {
                let e = crate::normalize::Event::bare("github", "issues.opened".into());
                let _ = t.render("x", &context(&e, &serde_json::json!({"a": [1, 2]}), false));
            } else {
                prop_assert!(t.render("x", &minijinja::Value::UNDEFINED).is_err());
            }
        }
    }
}

#[cfg(test)]
mod outsiders {
    use super::*;
    use crate::normalize::EventKind;
    use crate::render::fit::{Limit, fit};

    fn render(template: &str, event: &Event, url_is_link: bool) -> String {
        let mut t = Templates::default();
        let origin = Origin {
            file: "chirpd.toml".into(),
            first_line: 1,
        };
        t.add("r", template.to_string(), origin).unwrap();
        let out = t
            .render("r", &context(event, &serde_json::json!({}), url_is_link))
            .unwrap();
        fit(&out, Limit::Tweet).text
    }

    fn attack() -> Event {
        let mut e = Event::bare("github", "issues.opened".to_string());
        e.kind = Some(EventKind::TaskCreated);
        e.title = Some("Great deal: buy $TSLA now at https://evil.example/x and tell @nasa".into());
        e.url = Some("https://github.com/acme/widgets/issues/7".into());
        e
    }

    #[test]
    fn interpolated_values_lose_their_entities_and_the_templates_own_text_keeps_its_own() {
        let text = render(
            "Ask @acme_support: {{ event.title }} {{ event.url }}",
            &attack(),
            true,
        );
        let e = crate::render::fit::extractor();
        assert_eq!(e.extract_mentioned_screennames(&text), vec!["acme_support"]);
        assert!(e.extract_cashtags(&text).is_empty(), "{text}");
        assert_eq!(
            e.extract_urls(&text),
            vec!["https://github.com/acme/widgets/issues/7"],
            "only the event's own link on its product's host: {text}"
        );
    }

    #[test]
    fn an_event_url_off_the_products_hosts_is_text_and_safe_opts_out() {
        let e = crate::render::fit::extractor();
        let text = render("{{ event.url }}", &attack(), false);
        assert!(e.extract_urls(&text).is_empty(), "{text}");
        let text = render("{{ event.title | safe }}", &attack(), false);
        assert_eq!(e.extract_mentioned_screennames(&text), vec!["nasa"]);
    }

    #[test]
    fn a_long_post_loses_the_outsiders_words_first_never_the_templates_or_the_link() {
        let mut e = attack();
        e.title = Some("word ".repeat(100));
        let text = render(
            "acme/widgets: new task {{ event.title }} — triage it {{ event.url }}",
            &e,
            true,
        );
        assert!(crate::render::fit::weighted_length(&text) <= 280, "{text}");
        assert!(text.starts_with("acme/widgets: new task word"), "{text}");
        assert!(
            text.ends_with("… — triage it https://github.com/acme/widgets/issues/7"),
            "{text}"
        );
    }
}
