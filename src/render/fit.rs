//! The fit: makes rendered text obey a destination's length rule.
//!
//! For tweets the rule is twitter-text v3's weighted length (URLs count 23, CJK and emoji 2, after NFC),
//! counted by the `twitter-text` crate; this file is its only user. Text over the limit is shortened at a
//! word boundary with `…`, removing words from the end; URLs, @mentions and #hashtags are never cut (they
//! are dropped whole only when nothing else is left to remove). Interpolated values (marked by
//! `render::neutral`) are shortened before any of that. This module must not do I/O.
//!
//! The file passes 500 lines only through its tests, which carry twitter-text's v3 conformance cases.

use twitter_text::extractor::{Extractor, ParserBackend};
use twitter_text_config::Configuration;
use unicode_normalization::UnicodeNormalization;

use crate::render::neutral;

/// A destination's length rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// X posts: weighted length at most 280.
    Tweet,
    /// X direct messages: at most 10,000 characters.
    Dm,
    /// Mastodon statuses: at most 500 characters, each http(s) link counting 23.
    Mastodon,
}

impl Limit {
    pub fn max(self) -> usize {
        match self {
            Limit::Tweet => 280,
            Limit::Dm => 10_000,
            Limit::Mastodon => 500,
        }
    }

    /// The length of `text` as this rule counts it.
    pub fn measure(self, text: &str) -> usize {
        match self {
            Limit::Tweet => weighted_length(text),
            Limit::Dm => text.chars().count(),
            Limit::Mastodon => mastodon_length(text),
        }
    }
}

/// Text that obeys its limit, with its measured length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub text: String,
    pub length: usize,
    /// Whether words had to be removed.
    pub shortened: bool,
}

/// twitter-text v3's weighted length of `text`.
pub fn weighted_length(text: &str) -> usize {
    let parsed = with_parser(text, |backend| {
        twitter_text::parse_with_parser_backend(text, &Configuration::default(), true, backend)
    });
    usize::try_from(parsed.weighted_length).unwrap_or(0)
}

/// The links twitter-text finds in `text`.
fn urls(text: &str) -> Vec<String> {
    with_parser(text, |backend| {
        Extractor::with_parser_backend(backend).extract_urls(text)
    })
}

/// Runs `f` with twitter-text's fast parser (`Nom`, its default) when `text` is safe for it, else with
/// the Pest grammar and external TLD table (`External`), which passes the same v3 conformance cases (the
/// tests below) but is some eighty times slower. `Nom` slices the text two or three bytes before each `@`
/// for its "RT @" check and panics when that falls inside a character ("café@bob"): such texts go to
/// `External`, and a panic that still happens is caught and answered by `External`, so that payload text
/// never panics the planner.
fn with_parser<T>(text: &str, f: impl Fn(ParserBackend) -> T) -> T {
    if nom_is_safe(text)
        && let Ok(v) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ParserBackend::Nom)))
    {
        return v;
    }
    f(ParserBackend::External)
}

/// Whether the three bytes before every `@` and `＠` are whole characters.
fn nom_is_safe(text: &str) -> bool {
    text.match_indices(['@', '＠'])
        .all(|(i, _)| (1..=3).all(|back| i < back || text.is_char_boundary(i - back)))
}

/// An entity extractor on the parser that never panics, for checks outside the hot path (tests).
pub fn extractor() -> Extractor {
    Extractor::with_parser_backend(ParserBackend::External)
}

/// Mastodon's count: characters, with every http(s) link counting 23 whatever its length.
pub fn mastodon_length(text: &str) -> usize {
    let links = urls(text);
    let mut n = text.chars().count();
    for url in links
        .iter()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        n = n - url.chars().count() + 23;
    }
    n
}

/// Removes links from a text (for `url_policy`), keeping the words around them.
pub fn strip_urls(text: &str) -> String {
    let links = urls(text);
    let mut out = text.to_string();
    for url in &links {
        out = out.replacen(url.as_str(), "", 1);
    }
    out.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a text contains a link, which X bills at the higher price.
pub fn has_url(text: &str) -> bool {
    !urls(text).is_empty()
}

const ELLIPSIS: &str = "…";

/// Fits `text` to `limit`: NFC-normalizes it, then shortens it at word boundaries if it is too long.
pub fn fit(text: &str, limit: Limit) -> Fitted {
    let (text, values_shortened) = shorten_values(text, limit);
    let mut fitted = fit_unmarked(&text, limit);
    fitted.shortened |= values_shortened;
    fitted
}

/// Shortens the interpolated values of a rendered text (marked by `neutral::OPEN`/`CLOSE`), the longest
/// first, each at a word boundary with `…`, until the text fits or no value can give more; returns the
/// text without marks. The template's literal text and safe values (the event's own link) are not
/// touched here: outsiders' words go before the admin's.
fn shorten_values(text: &str, limit: Limit) -> (String, bool) {
    if !text.contains(neutral::OPEN) {
        return (text.to_string(), false);
    }
    // (is a value, text) in order.
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut current = String::new();
    let mut in_value = false;
    for c in text.chars() {
        match c {
            neutral::OPEN | neutral::CLOSE => {
                parts.push((in_value, std::mem::take(&mut current)));
                in_value = c == neutral::OPEN;
            }
            _ => current.push(c),
        }
    }
    parts.push((in_value, current));
    let join = |parts: &[(bool, String)]| -> String {
        parts.iter().map(|(_, t)| t.as_str()).collect::<String>()
    };
    let max = limit.max();
    let mut shortened = false;
    // Every character weighs at least one, so a value of more characters than the limit cannot fit
    // whole: cut it first, without counting, which keeps the costly counts below on short texts.
    for (value, t) in parts.iter_mut() {
        if *value && t.chars().count() > max {
            *t = cut_at_word(t, max);
            shortened = true;
        }
    }
    // Each round cuts the longest value by at least one character; the bound keeps the work small.
    for _ in 0..64 {
        let joined: String = join(&parts).nfc().collect();
        let length = limit.measure(joined.trim());
        if length <= max {
            break;
        }
        let over = length - max;
        let Some(i) = parts
            .iter()
            .enumerate()
            .filter(|(_, (value, t))| *value && t.chars().count() > 1)
            .max_by_key(|(_, (_, t))| t.chars().count())
            .map(|(i, _)| i)
        else {
            break;
        };
        let value = &parts[i].1;
        let keep = value.chars().count().saturating_sub(over + 1);
        parts[i].1 = cut_at_word(value, keep);
        shortened = true;
    }
    (join(&parts).trim().to_string(), shortened)
}

/// The first `keep` characters of `text`, ending at a word boundary when one is near, and `…`.
fn cut_at_word(text: &str, keep: usize) -> String {
    let prefix: String = text.chars().take(keep).collect();
    let at_word = match prefix.rfind(char::is_whitespace) {
        Some(i) if prefix[..i].chars().count() > keep / 2 => &prefix[..i],
        _ => prefix.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

/// Fits text without marks.
fn fit_unmarked(text: &str, limit: Limit) -> Fitted {
    let max = limit.max();
    // Counting is costly on long texts. No emoji sequence packs more than five code points into one unit
    // of weight, so a word of over ten times the limit in code points cannot fit whole: cut such words
    // before counting, which bounds the work whatever the input.
    let text: String = cap_long_words(&text.nfc().collect::<String>(), max * 10);
    let length = limit.measure(&text);
    if length <= max {
        return Fitted {
            text,
            length,
            shortened: false,
        };
    }
    // A word longer than the whole limit (not a link, which counts 23 whatever its length) can never be
    // kept whole: cut it to the limit first, so that the search below works on short texts.
    let text = cap_long_words(&text, max);
    let words = Words::split(&text);
    // Removing more words never makes the text longer, so the fewest removals that fit can be found by
    // bisection, which keeps the number of (costly) weighted counts logarithmic in the text's size.
    let prose: Vec<usize> = words.indices(false);
    let entities: Vec<usize> = words.indices(true);
    let mut removal_order: Vec<usize> = prose.iter().rev().copied().collect();
    removal_order.extend(entities.iter().rev());
    let fits = |k: usize| {
        let candidate = words.join_without(&removal_order[..k]);
        let n = limit.measure(&candidate);
        (n <= max && !candidate.is_empty()).then_some((candidate, n))
    };
    if let Some((candidate, n)) = least(removal_order.len(), fits) {
        return Fitted {
            text: candidate,
            length: n,
            shortened: true,
        };
    }
    // Not even one word fits (a single enormous word): cut by characters.
    let chars: Vec<char> = text.chars().collect();
    let cut = |n: usize| {
        let mut s: String = chars[..n].iter().collect();
        s.push_str(ELLIPSIS);
        let len = limit.measure(&s);
        (len <= max).then_some((s, len))
    };
    let mut lo = 0;
    let mut hi = chars.len();
    let mut best = (ELLIPSIS.to_string(), limit.measure(ELLIPSIS));
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match cut(mid) {
            Some(found) => {
                best = found;
                lo = mid + 1;
            }
            None if mid == 0 => break,
            None => hi = mid - 1,
        }
    }
    Fitted {
        text: best.0,
        length: best.1,
        shortened: true,
    }
}

/// Cuts every whitespace-separated word longer than `max` characters to `max` characters and `…`,
/// except links.
fn cap_long_words(text: &str, max: usize) -> String {
    if !text.split_whitespace().any(|w| w.chars().count() > max) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(max * 8));
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        let is_link = word.starts_with("http://") || word.starts_with("https://");
        if !is_link && word.chars().count() > max {
            out.extend(word.chars().take(max));
            out.push_str(ELLIPSIS);
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out
}

/// Finds the value of the least `k` in `1..=n` for which `f(k)` is `Some`, assuming monotonicity.
fn least<T>(n: usize, f: impl Fn(usize) -> Option<T>) -> Option<T> {
    let mut found = None;
    let (mut lo, mut hi) = (1, n);
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match f(mid) {
            Some(v) => {
                found = Some(v);
                hi = mid - 1;
            }
            None => lo = mid + 1,
        }
    }
    found
}

/// Text split into words, each with the whitespace before it, marked as entity or prose.
struct Words<'t> {
    /// (leading whitespace, word, is an entity that must not be cut).
    items: Vec<(&'t str, &'t str, bool)>,
}

impl<'t> Words<'t> {
    fn split(text: &'t str) -> Words<'t> {
        let urls = urls(text);
        let mut items = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let word_start = rest
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(rest.len());
            let (space, after) = rest.split_at(word_start);
            if after.is_empty() {
                break;
            }
            let word_end = after.find(char::is_whitespace).unwrap_or(after.len());
            let (word, tail) = after.split_at(word_end);
            let bare = word.trim_start_matches(['(', '[', '"', '\'', '“']);
            let is_tag =
                (bare.starts_with('@') || bare.starts_with('#')) && bare.chars().count() > 1;
            let is_entity = is_tag || urls.iter().any(|u| word.contains(u.as_str()));
            items.push((space, word, is_entity));
            rest = tail;
        }
        Words { items }
    }

    fn indices(&self, entities: bool) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| self.items[i].2 == entities)
            .collect()
    }

    /// Joins the words except `removed`, marking each removed run with `…` after the word before it.
    fn join_without(&self, removed: &[usize]) -> String {
        let mut out = String::new();
        let mut in_gap = false;
        for (i, (space, word, _)) in self.items.iter().enumerate() {
            if removed.contains(&i) {
                if !in_gap {
                    out.push_str(ELLIPSIS);
                    in_gap = true;
                }
                continue;
            }
            in_gap = false;
            if !out.is_empty() {
                out.push_str(if space.contains('\n') { "\n" } else { " " });
            }
            out.push_str(word);
        }
        let trimmed = out.trim();
        if trimmed == ELLIPSIS {
            String::new()
        } else {
            trimmed.to_string()
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_multibyte_character_before_an_at_sign_does_not_panic_the_count() {
        // twitter-text's default parser panics on these; an issue title is all it takes.
        for t in [
            "café@bob",
            "—@nasa",
            "日本@x",
            "RT café@bob",
            "é:@x",
            "ab＠c",
        ] {
            assert!(!nom_is_safe(t) || t == "ab＠c", "{t}");
            assert!(weighted_length(t) > 0, "{t}");
            assert!(fit(&t.repeat(100), Limit::Tweet).length <= 280, "{t}");
        }
    }

    use super::*;

    #[test]
    fn the_crate_default_is_the_v3_configuration() {
        let v3 = Configuration::configuration_from_json(twitter_text_config::V3_JSON);
        assert_eq!(Configuration::default(), v3);
    }

    /// The v3 cases of twitter-text's conformance/validate.yml (WeightedTweetsWithDiscountedEmojiCounterTest
    /// and UnicodeDirectionalMarkerCounterTest), as listed in docs/protocols.md §3.
    #[test]
    fn agrees_with_twitter_text_v3_conformance() {
        let cjk160 = "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，乌衣巷口夕阳斜。旧时王谢堂前燕，飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。遥知兄弟登高处，遍插茱萸少一人。";
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
        let cases: Vec<(String, usize, bool)> = vec![
            ("Hi http://test.co".into(), 26, true),
            ("http://test.co".into(), 23, true),
            (format!("H\u{1F431}\u{263A}{family}"), 7, true),
            ("\u{1F637}\u{1F47E}\u{1F621}\u{1F525}\u{1F4A9}".into(), 10, true),
            ("\u{1F64B}\u{1F3FD}\u{1F468}\u{200D}\u{1F3A4}".into(), 4, true),
            ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com".into(), 68, true),
            ("1\u{20E3}".into(), 2, true),
            ("Unicode 10.0 emoji: \u{1F92A}; \u{1F9D5}; \u{1F9D5}\u{1F3FE}; \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}".into(), 34, true),
            ("Unicode 9.0 emoji: \u{1F920}; \u{1F483}; \u{1F483}\u{1F3FE}".into(), 29, true),
            (cjk160.into(), 320, false),
            (format!("the{cjk160}"), 323, false),
            ("\u{1F637}".repeat(160), 320, false),
            (family.repeat(140), 280, true),
            ("https://www.twitter.com/aloha ".repeat(10), 240, true),
            (format!("285 chars-{}", "xxxxxxxxxx-".repeat(25)), 285, false),
            ("\u{C1}B".into(), 2, true),
            ("ABC\u{202A}\u{FFFF}ABC\u{FFFE}".into(), 12, false),
        ];
        for (text, weighted, valid) in cases {
            let parsed = twitter_text::parse(&text, &Configuration::default(), true);
            assert_eq!(
                parsed.weighted_length as usize, weighted,
                "weighted length of {text:?}"
            );
            assert_eq!(parsed.is_valid, valid, "validity of {text:?}");
            assert_eq!(weighted_length(&text), weighted);
            // The parser a risky text falls back to counts the same.
            for backend in [ParserBackend::Nom, ParserBackend::External] {
                let by = twitter_text::parse_with_parser_backend(
                    &text,
                    &Configuration::default(),
                    true,
                    backend,
                );
                assert_eq!(
                    by.weighted_length as usize, weighted,
                    "{backend:?}: {text:?}"
                );
            }
        }
    }

    #[test]
    fn short_text_is_untouched() {
        let f = fit("Hello, world! 👋", Limit::Tweet);
        assert_eq!(f.text, "Hello, world! 👋");
        assert_eq!(f.length, 16);
        assert!(!f.shortened);
    }

    #[test]
    fn long_text_is_cut_at_a_word_and_keeps_its_url() {
        let title = "word ".repeat(80);
        let text = format!(
            "acme/widgets: alice opened {title}https://github.com/acme/widgets/issues/12345"
        );
        let f = fit(&text, Limit::Tweet);
        assert!(f.length <= 280, "{}", f.length);
        assert!(f.length >= 270, "cut more than needed: {}", f.length);
        assert!(
            f.text
                .ends_with("word… https://github.com/acme/widgets/issues/12345"),
            "{}",
            f.text
        );
        assert!(f.text.starts_with("acme/widgets: alice opened word"));
        assert!(f.shortened);
        assert_eq!(f.length, weighted_length(&f.text));
    }

    #[test]
    fn mentions_and_hashtags_are_kept_whole() {
        let text = format!("{} @someone #release {}", "a".repeat(150), "b ".repeat(100));
        let f = fit(&text, Limit::Tweet);
        assert!(f.length <= 280);
        assert!(f.text.contains("@someone #release"), "{}", f.text);
    }

    #[test]
    fn enormous_words_beside_a_link_are_cut_and_the_link_kept() {
        let text = format!(
            "opened {} https://github.com/acme/widgets/issues/1",
            "x".repeat(50_000)
        );
        let f = fit(&text, Limit::Tweet);
        assert!(f.length <= 280);
        assert!(
            f.text.ends_with("https://github.com/acme/widgets/issues/1"),
            "{}",
            f.text
        );
    }

    #[test]
    fn one_enormous_word_is_cut_by_characters() {
        let f = fit(&"x".repeat(1000), Limit::Tweet);
        assert_eq!(f.length, 280);
        assert!(f.text.ends_with('…'));
    }

    #[test]
    fn text_is_nfc_normalized() {
        let f = fit("cafe\u{301}", Limit::Tweet);
        assert_eq!(f.text, "café");
        assert_eq!(f.length, 4);
    }

    #[test]
    fn mastodon_counts_links_as_23() {
        let text = format!("{} https://example.com/{}", "a".repeat(10), "p".repeat(100));
        assert_eq!(Limit::Mastodon.measure(&text), 10 + 1 + 23);
        let long = format!("{} https://example.com/x", "word ".repeat(200));
        let f = fit(&long, Limit::Mastodon);
        assert!(f.length <= 500);
        assert!(f.text.ends_with("… https://example.com/x"), "{}", f.text);
    }

    #[test]
    fn links_can_be_stripped_and_detected() {
        assert!(has_url("see https://github.com/x now"));
        assert!(!has_url("no links here"));
        assert_eq!(
            strip_urls("acme: opened #1 Fix https://github.com/a/b/issues/1"),
            "acme: opened #1 Fix"
        );
    }

    #[test]
    fn dm_limit_counts_characters() {
        let f = fit(&"word ".repeat(3000), Limit::Dm);
        assert!(f.length <= 10_000);
        assert!(f.text.ends_with("word…"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,12}",
            "[A-Z][a-z]{0,8}[.,!?]?",
            Just("日本語".to_string()),
            Just("👍🏽".to_string()),
            Just("👨‍👩‍👧‍👦".to_string()),
            "https://github\\.com/[a-z]{1,10}/[a-z]{1,10}/issues/[0-9]{1,5}",
            "@[a-z_]{1,15}",
            "#[a-z]{2,10}",
            "[a-z]{30,80}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (word(), prop_oneof![Just(" "), Just("\n"), Just("  ")]),
            0..120,
        )
        .prop_map(|ws| {
            ws.into_iter()
                .map(|(w, s)| format!("{w}{s}"))
                .collect::<String>()
        })
    }

    proptest! {
        /// Whatever the text, the fit is within the limit, measured right, and every link in it is one of
        /// the input's links, whole.
        #[test]
        fn the_fit_is_always_within_the_limit_with_links_intact(t in text()) {
            for limit in [Limit::Tweet, Limit::Mastodon] {
                let f = fit(&t, limit);
                prop_assert!(f.length <= limit.max(), "{} > {}", f.length, limit.max());
                prop_assert_eq!(f.length, limit.measure(&f.text));
                let extractor = extractor();
                let input_links = extractor.extract_urls(&t.nfc().collect::<String>());
                for link in extractor.extract_urls(&f.text) {
                    prop_assert!(input_links.contains(&link), "{} is not an input link", link);
                }
                if !f.shortened {
                    prop_assert_eq!(f.text, t.nfc().collect::<String>());
                }
            }
        }
    }
}
