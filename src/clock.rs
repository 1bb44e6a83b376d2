//! Wall-clock time as Unix milliseconds, read only at the edges, and the few calendar facts chirpd needs
//! (a UTC month's bounds, a timestamp in a response header), computed by `jiff`.
//!
//! The pure stages (verify, normalize, route, render) never call `now_ms`: the edge reads the time once
//! and passes it in, so that tests can use fixed instants. Nothing here panics or overflows on input.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// A span of time in milliseconds, saturating at `i64::MAX`, for arithmetic with `UnixMillis`.
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Reads the system clock.
pub fn now_ms() -> UnixMillis {
    // A clock before 1970 is a misconfigured host; treating it as the epoch keeps the daemon running.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The first instant of the UTC calendar month containing `at`, and of the next month: budgets are
/// monthly, as X bills them. An instant outside jiff's range (years ±9999) is clamped into it.
pub fn month_bounds(at: UnixMillis) -> (UnixMillis, UnixMillis) {
    let at = Timestamp::from_millisecond(at).unwrap_or(if at < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    let day = at.to_zoned(TimeZone::UTC).date();
    let first = day.first_of_month();
    let start = first
        .to_zoned(TimeZone::UTC)
        .map_or(i64::MIN, |z| z.timestamp().as_millisecond());
    let next = first
        .checked_add(1.month())
        .and_then(|d| d.to_zoned(TimeZone::UTC))
        .map_or(i64::MAX, |z| z.timestamp().as_millisecond());
    (start, next)
}

/// Parses an RFC 3339 / ISO 8601 timestamp with `Z` or an offset (`+01:00`, `+0530`), as Mastodon's
/// `X-RateLimit-Reset` carries. Out-of-range fields and years beyond ±9999 are refused, not wrapped.
pub fn parse_timestamp(text: &str) -> Option<UnixMillis> {
    text.trim()
        .parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_bounded_in_utc() {
        let at = parse_timestamp("2026-12-15T10:00:00Z").unwrap();
        let (start, next) = month_bounds(at);
        assert_eq!(start, parse_timestamp("2026-12-01T00:00:00Z").unwrap());
        assert_eq!(next, parse_timestamp("2027-01-01T00:00:00Z").unwrap());
        let (start, next) = month_bounds(parse_timestamp("2028-02-29T23:59:59.999Z").unwrap());
        assert_eq!(start, parse_timestamp("2028-02-01T00:00:00Z").unwrap());
        assert_eq!(next, parse_timestamp("2028-03-01T00:00:00Z").unwrap());
        // Far outside the calendar: bounded, no overflow.
        let (start, next) = month_bounds(i64::MAX);
        assert!(start < next);
        let (start, next) = month_bounds(i64::MIN);
        assert!(start < next);
    }

    #[test]
    fn timestamps_parse_with_any_offset_and_refuse_nonsense() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(
            parse_timestamp("2026-11-25T18:00:00.000Z"),
            Some(1_795_629_600_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-25T19:00:00+01:00"),
            Some(1_795_629_600_000)
        );
        // +0530 is five and a half hours, not five.
        assert_eq!(
            parse_timestamp("2026-11-25T23:30:00+0530"),
            Some(1_795_629_600_000)
        );
        assert_eq!(parse_timestamp("2026-11-25T25:00:00Z"), None);
        assert_eq!(parse_timestamp("2026-11-25T18:61:00Z"), None);
        assert_eq!(parse_timestamp("2026-11-25T18:00:61Z"), None);
        assert_eq!(parse_timestamp("99999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
