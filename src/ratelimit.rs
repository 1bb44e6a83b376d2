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
        i64::try_from(self.per.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Parses durations written as `250ms`, `5s`, `15m`, `24h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 5s, 15m, 24h or 7d"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("{text:?} has no unit: use ms, s, m, h or d")),
    };
    Ok(Duration::from_millis(ms))
}

/// The gate's verdict for the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Wait until this instant; the reason is for logs and `/readyz`.
    Closed {
        until: UnixMillis,
        reason: String,
    },
}

/// Decides whether a request may go now, given the persisted block and the ledger.
///
/// `sent_in` returns how many requests the ledger holds in the `window` ending now, and the oldest of
/// them, which is when a slot frees up.
pub fn check(
    now: UnixMillis,
    blocked_until: Option<(UnixMillis, String)>,
    windows: &[Window],
    sent_in: &dyn Fn(&Window) -> (u32, Option<UnixMillis>),
) -> Gate {
    let mut gate = Gate::Open;
    let mut close = |until: UnixMillis, reason: String| {
        if let Gate::Closed { until: u, .. } = &gate
            && *u >= until
        {
            return;
        }
        gate = Gate::Closed { until, reason };
    };
    if let Some((until, reason)) = blocked_until
        && until > now
    {
        close(until, reason);
    }
    for w in windows {
        let (count, oldest) = sent_in(w);
        if count >= w.count {
            // The window frees a slot when its oldest request leaves it.
            let until = oldest.map_or(now + w.per_ms(), |o| o + w.per_ms());
            close(
                until.max(now + 1),
                format!("own limit {}/{}s reached", w.count, w.per.as_secs()),
            );
        }
    }
    gate
}

/// What X's headers say about the window after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLimits {
    /// The latest reset among the windows that are spent, in Unix ms, if any is spent.
    pub spent_until: Option<UnixMillis>,
    /// The remaining count of the 15-minute window, for metrics and logs.
    pub remaining: Option<i64>,
}

/// Reads `x-rate-limit-*`, `x-user-limit-24hour-*` and `x-app-limit-24hour-*`. A window counts as spent
/// when its remaining count is 0; `is_429` marks every window whose reset is known as spent, since X
/// answers 429 for whichever one ran out and its 15-minute headers may still show room.
pub fn read_x_headers(headers: &HeaderMap, is_429: bool) -> XLimits {
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
    XLimits {
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
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5w").is_err());
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
        let block = Some((5_000, "429".to_string()));
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
