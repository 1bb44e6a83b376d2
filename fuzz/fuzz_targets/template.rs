//! Any template source compiles or fails with a location, and renders or fails, within its fuel.
#![no_main]

use chirpd::normalize::Event;
use chirpd::render::{Origin, Templates, context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|src: &str| {
    let mut t = Templates::default();
    let origin = Origin { file: "fuzz".into(), first_line: 1 };
    if t.add("x", src.to_string(), origin).is_ok() {
        let e = Event::bare("github", "issues.opened".into());
        let _ = t.render("x", &context(&e, &serde_json::json!({"a": [1, 2, {"b": "c"}]}), false));
    }
});
