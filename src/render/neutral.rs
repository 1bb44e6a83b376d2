//! Outsiders' text stays text. Every value a template interpolates comes from a payload that people
//! outside the team may have written (an issue title, a comment), so before it reaches a post it is
//! defused: a zero-width space after `@`/`＠`, `#`/`＃` and `$`/`＄` keeps them from starting a mention,
//! hashtag or cashtag, and one after `://` and after each `.` that precedes a letter keeps X and Mastodon
//! from turning a domain into a link. The text reads the same; only its live entities are gone. X forbids
//! unsolicited automated mentions, a link can be phishing, and a post with a link costs 13 times more.
//!
//! Each defused value is also wrapped in two private-use marks, so that `fit` can shorten interpolated
//! values before it touches the template's own words; `fit` removes the marks. Values marked safe (the
//! `safe` filter, an admin's explicit opt-out, and `event.url` when its host is one the source's product
//! serves) are written as they are, unmarked, and are never cut. Pure: no I/O.

/// Placed after a sign or a dot to break the entity it would start. It weighs one on X and shows nothing.
pub const BREAK: char = '\u{200B}';
/// Opens an interpolated value in rendered text, for `fit`.
pub const OPEN: char = '\u{E000}';
/// Closes an interpolated value.
pub const CLOSE: char = '\u{E001}';

/// Inserts `BREAK` wherever an entity (mention, hashtag, cashtag, link) could start.
pub fn defuse(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // The marks of `fit` cannot be smuggled in from a payload.
        if c == OPEN || c == CLOSE {
            continue;
        }
        out.push(c);
        let next = chars.peek().copied();
        let breaks = match c {
            '@' | '＠' | '#' | '＃' | '$' | '＄' => {
                next.is_some_and(|n| n.is_alphanumeric() || n == '_')
            }
            '.' | '。' | '．' | '｡' => next.is_some_and(char::is_alphabetic),
            ':' => {
                next == Some('/') && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&'/')
                }
            }
            _ => false,
        };
        if breaks {
            out.push(BREAK);
        }
    }
    out
}

/// Whether `url`'s host is `host` or one of its subdomains, for `event.url`.
pub fn host_is(url: &str, hosts: &[String]) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if !matches!(parsed.scheme(), "https" | "http") {
        return false;
    }
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    hosts.iter().any(|h| {
        let h = h.trim_start_matches("*.").to_ascii_lowercase();
        host == h || host.ends_with(&format!(".{h}"))
    })
}

/// Removes the marks `OPEN` and `CLOSE`.
pub fn unmark(text: &str) -> String {
    text.chars().filter(|c| *c != OPEN && *c != CLOSE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entities(text: &str) -> Vec<String> {
        let e = crate::render::fit::extractor();
        let mut found = e.extract_urls(text);
        found.extend(e.extract_mentioned_screennames(text));
        found.extend(e.extract_hashtags(text));
        found.extend(e.extract_cashtags(text));
        found.extend(e.extract_federated_mentions(text));
        found
    }

    #[test]
    fn an_attackers_title_has_no_live_entity_once_defused() {
        let title = "Great deal: buy $TSLA now at https://evil.example/x and tell @nasa #win ＠elonmusk evil.com @a@b.social";
        assert!(!entities(title).is_empty(), "the raw title is full of them");
        let safe = defuse(title);
        assert_eq!(entities(&safe), Vec::<String>::new(), "{safe:?}");
        // It reads the same.
        assert_eq!(safe.replace(BREAK, ""), title);
    }

    #[test]
    fn ordinary_text_is_untouched_and_defusing_twice_changes_nothing() {
        for t in [
            "Fix the 2.0 build: 3 tests fail",
            "v1.2.3 released",
            "a@ b # c $ 5",
        ] {
            assert_eq!(defuse(t), t);
        }
        let once = defuse("mail bob@example.com about #12");
        assert_eq!(defuse(&once), once);
    }

    #[test]
    fn marks_from_a_payload_are_dropped() {
        assert_eq!(defuse("a\u{E000}b\u{E001}c"), "abc");
    }

    #[test]
    fn event_urls_are_links_only_on_the_products_hosts() {
        let github = vec!["github.com".to_string()];
        assert!(host_is("https://github.com/acme/widgets/issues/1", &github));
        assert!(host_is("https://gist.github.com/x", &github));
        assert!(!host_is("https://github.com.evil.example/x", &github));
        assert!(!host_is("https://evilgithub.com/x", &github));
        assert!(!host_is("javascript:alert(1)", &github));
    }

    proptest::proptest! {
        #[test]
        fn no_payload_text_survives_as_an_entity(text in "[a-zA-Z0-9@#$:/._ ＠＃ -]{0,80}") {
            let safe = defuse(&text);
            proptest::prop_assert_eq!(entities(&safe), Vec::<String>::new(), "{:?} -> {:?}", text, safe);
        }
    }
}
