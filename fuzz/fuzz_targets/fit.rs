//! Any text fits: within the limit, measured right.
#![no_main]

use chirpd::render::fit::{self, Limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for limit in [Limit::Tweet, Limit::Dm, Limit::Mastodon] {
        let f = fit::fit(text, limit);
        assert!(f.length <= limit.max());
        assert_eq!(f.length, limit.measure(&f.text));
    }
});
