//! The rate-limit gate in front of every request to X.
//!
//! Two sources of truth are combined. The admin's own windows (`limits = ["100/15m", "17/24h"]`) are
//! counted against the store's send ledger, one row per request made, so a restart does not reset them.
//! X's answers are read too: `x-rate-limit-*`, `x-user-limit-24hour-*` and `x-app-limit-24hour-*` headers;
//! when one says the window is spent, or after a 429, nothing is sent before the largest reset, and that
//! block is persisted as well. The decision functions are pure; the dispatcher does the I/O.

use std::time::Duration;

use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::outbox::{Block, HoldCause};

/// One of the admin's quota windows: at most `count` requests in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub per: Duration,
}

impl Window {
    /// Parses `100/15m`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let (count, per) = text
            .split_once('/')
            .ok_or_else(|| format!("limit {text:?} is not COUNT/DURATION, e.g. 100/15m"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("limit {text:?}: {count:?} is not a whole number"))?;
        if count == 0 {
            return Err(format!(
                "limit {text:?}: a window of 0 posts would never send"
            ));
        }
        let per = parse_duration(per.trim()).map_err(|e| format!("limit {text:?}: {e}"))?;
        Ok(Window { count, per })
    }

    pub fn per_ms(&self) -> i64 {
        crate::clock::millis(self.per)
    }
}

/// Parses a duration in jiff's friendly format: `250ms`, `5s`, `15m`, `1h30m`, `1h 30m`, `24h`, `7d`
/// (a day is 24 hours here: windows and timeouts are spans of elapsed time, not calendar days).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 500ms, 5s, 15m, 1h30m or 7d");
    let span: jiff::Span = text.trim().parse().map_err(|_| invalid())?;
    let elapsed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| invalid())?;
    Duration::try_from(elapsed).map_err(|_| format!("{text:?} is negative"))
}

/// The gate's verdict for the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Wait until this instant. The cause decides what follows; the reason is for logs and `/readyz`.
    Closed {
        until: UnixMillis,
        cause: HoldCause,
        reason: String,
    },
}

/// Decides whether a request may go now, given the persisted block and the ledger.
///
/// `sent_in` returns how many requests the ledger holds in the `window` ending now, and the oldest of
/// them, which is when a slot frees up.
pub fn check(
    now: UnixMillis,
    blocked: Option<Block>,
    windows: &[Window],
    sent_in: &dyn Fn(&Window) -> (u32, Option<UnixMillis>),
) -> Gate {
    let mut gate = Gate::Open;
    let mut close = |until: UnixMillis, cause: HoldCause, reason: String| {
        if let Gate::Closed { until: u, .. } = &gate
            && *u >= until
        {
            return;
        }
        gate = Gate::Closed {
            until,
            cause,
            reason,
        };
    };
    if let Some(b) = blocked
        && b.until > now
    {
        close(b.until, b.cause, b.reason);
    }
    for w in windows {
        let (count, oldest) = sent_in(w);
        if count >= w.count {
            // The window frees a slot when its oldest request leaves it.
            let until = oldest.map_or(now + w.per_ms(), |o| o + w.per_ms());
            close(
                until.max(now + 1),
                HoldCause::OwnWindow,
                format!("own limit {}/{}s reached", w.count, w.per.as_secs()),
            );
        }
    }
    gate
}

/// What an API's rate-limit headers say after an answer (X's, or Mastodon's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiLimits {
    /// The latest reset among the windows that are spent, in Unix ms, if any is spent.
    pub spent_until: Option<UnixMillis>,
    /// The remaining count of the 15-minute window, for metrics and logs.
    pub remaining: Option<i64>,
}

/// Reads `x-rate-limit-*`, `x-user-limit-24hour-*` and `x-app-limit-24hour-*`. A window counts as spent
/// when its remaining count is 0; `is_429` marks every window whose reset is known as spent, since X
/// answers 429 for whichever one ran out and its 15-minute headers may still show room.
pub fn read_x_headers(headers: &HeaderMap, is_429: bool) -> ApiLimits {
    let num = |name: &str| -> Option<i64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let mut spent_until: Option<UnixMillis> = None;
    for prefix in ["x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"] {
        let remaining = num(&format!("{prefix}-remaining"));
        let Some(reset_secs) = num(&format!("{prefix}-reset")) else {
            continue;
        };
        if remaining == Some(0) || (is_429 && remaining.is_none_or(|r| r <= 0)) {
            let reset = reset_secs.saturating_mul(1000);
            spent_until = Some(spent_until.map_or(reset, |s| s.max(reset)));
        }
    }
    if is_429 && spent_until.is_none() {
        // A 429 whose headers name no spent window: trust the largest reset given, if any.
        for prefix in ["x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"] {
            if let Some(reset_secs) = num(&format!("{prefix}-reset")) {
                let reset = reset_secs.saturating_mul(1000);
                spent_until = Some(spent_until.map_or(reset, |s| s.max(reset)));
            }
        }
    }
    ApiLimits {
        spent_until,
        remaining: num("x-rate-limit-remaining"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_durations_parse() {
        assert_eq!(
            Window::parse("100/15m").unwrap(),
            Window {
                count: 100,
                per: Duration::from_secs(900)
            }
        );
        assert_eq!(
            Window::parse("17/24h").unwrap().per,
            Duration::from_secs(86_400)
        );
        assert!(Window::parse("0/1h").is_err());
        assert!(Window::parse("10").is_err());
        assert!(Window::parse("x/1h").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert!(
            parse_duration("5")
                .unwrap_err()
                .contains("is not a duration")
        );
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
        // Far too long is refused, not multiplied into an overflow.
        assert!(parse_duration("99999999999999d").is_err());
    }

    #[test]
    fn own_window_closes_until_the_oldest_request_leaves() {
        let w = [Window::parse("2/1m").unwrap()];
        let full = |_: &Window| (2, Some(1_000));
        match check(30_000, None, &w, &full) {
            Gate::Closed { until, .. } => assert_eq!(until, 61_000),
            g => panic!("expected closed, got {g:?}"),
        }
        let room = |_: &Window| (1, Some(1_000));
        assert_eq!(check(30_000, None, &w, &room), Gate::Open);
    }

    #[test]
    fn persisted_block_wins_until_it_passes() {
        let none = |_: &Window| (0, None);
        let block = Some(Block {
            until: 5_000,
            cause: HoldCause::RateLimited,
            reason: "429".into(),
        });
        assert!(matches!(
            check(1_000, block.clone(), &[], &none),
            Gate::Closed { until: 5_000, .. }
        ));
        assert_eq!(check(5_000, block, &[], &none), Gate::Open);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_429_waits_for_the_largest_spent_reset() {
        let h = headers(&[
            ("x-rate-limit-limit", "100"),
            ("x-rate-limit-remaining", "97"),
            ("x-rate-limit-reset", "1000"),
            ("x-user-limit-24hour-limit", "17"),
            ("x-user-limit-24hour-remaining", "0"),
            ("x-user-limit-24hour-reset", "5000"),
        ]);
        let l = read_x_headers(&h, true);
        assert_eq!(l.spent_until, Some(5_000_000));
        assert_eq!(l.remaining, Some(97));
    }

    #[test]
    fn a_success_with_room_left_blocks_nothing() {
        let h = headers(&[
            ("x-rate-limit-remaining", "3"),
            ("x-rate-limit-reset", "1000"),
        ]);
        assert_eq!(read_x_headers(&h, false).spent_until, None);
        let h = headers(&[
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "1000"),
        ]);
        assert_eq!(read_x_headers(&h, false).spent_until, Some(1_000_000));
    }

    #[test]
    fn a_bare_429_uses_any_reset_it_has() {
        let h = headers(&[("x-rate-limit-reset", "2000")]);
        assert_eq!(read_x_headers(&h, true).spent_until, Some(2_000_000));
        assert_eq!(read_x_headers(&HeaderMap::new(), true).spent_until, None);
    }
}
