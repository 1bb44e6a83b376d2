//! Wall-clock time as Unix milliseconds, read only at the edges.
//!
//! The pure stages (verify, normalize, route, render) never call this: the edge reads the time once
//! and passes it in, so that tests can use fixed instants.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// Reads the system clock.
pub fn now_ms() -> UnixMillis {
    // A clock before 1970 is a misconfigured host; treating it as the epoch keeps the daemon running.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01 (`civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The first instant of the UTC calendar month containing `at`, and of the next month: budgets are
/// monthly, as X bills them.
pub fn month_bounds(at: UnixMillis) -> (UnixMillis, UnixMillis) {
    let (y, m, _) = civil_from_days(at.div_euclid(86_400_000));
    let start = days_from_civil(y, m, 1) * 86_400_000;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * 86_400_000)
}

/// Parses an RFC 3339 / ISO-8601 UTC or offset timestamp, as Mastodon's `X-RateLimit-Reset` carries.
pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
    let t = text.trim();
    let (date, rest) = t.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, m, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (time, offset_secs) =
        if let Some(time) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
            (time, 0)
        } else {
            let split = rest.rfind(['+', '-'])?;
            let (time, off) = rest.split_at(split);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (oh, om) = off[1..]
                .split_once(':')
                .unwrap_or((&off[1..3.min(off.len())], "0"));
            (
                time,
                sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
            )
        };
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let min: i64 = parts.next()?.parse().ok()?;
    let sec_text = parts.next().unwrap_or("0");
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let s: i64 = whole.parse().ok()?;
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(y, m, day);
    Some(((days * 86_400 + h * 3600 + min * 60 + s - offset_secs) * 1000) + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 25), 20_782);
        for z in [-1000, 0, 59, 60, 20_782, 30_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn months_are_bounded_in_utc() {
        let at = parse_rfc3339("2026-12-15T10:00:00Z").unwrap();
        let (start, next) = month_bounds(at);
        assert_eq!(start, parse_rfc3339("2026-12-01T00:00:00Z").unwrap());
        assert_eq!(next, parse_rfc3339("2027-01-01T00:00:00Z").unwrap());
    }

    #[test]
    fn rfc3339_timestamps_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(
            parse_rfc3339("2026-11-25T18:00:00.000Z"),
            Some(1_795_629_600_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T19:00:00+01:00"),
            Some(1_795_629_600_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
