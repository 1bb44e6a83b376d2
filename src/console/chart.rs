//! The overview's chart, drawn on the server as inline SVG: requests to a destination per hour over the
//! last 24 hours. Pure: times in, markup out; no JavaScript draws anything.

use crate::clock::UnixMillis;

const HOUR: i64 = 3_600_000;
const WIDTH: i64 = 480;
const HEIGHT: i64 = 140;
/// Room below the bars for the hour labels.
const LABELS: i64 = 16;

/// 24 bars, the oldest hour first, each the number of requests `times` holds in that hour before `now`.
pub fn requests_per_hour(times: &[UnixMillis], now: UnixMillis) -> String {
    let mut buckets = [0u32; 24];
    for t in times {
        let age = now - t;
        if (0..24 * HOUR).contains(&age) {
            let i = 23 - usize::try_from(age / HOUR).unwrap_or(23).min(23);
            buckets[i] += 1;
        }
    }
    let top = i64::from(buckets.iter().copied().max().unwrap_or(0).max(1));
    let slot = WIDTH / 24;
    let plot = HEIGHT - LABELS;
    let total: u32 = buckets.iter().sum();
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{total} requests in the last 24 hours, at most {top} in one hour\">"
    );
    svg.push_str(&format!(
        "<line x1=\"0\" y1=\"{plot}\" x2=\"{WIDTH}\" y2=\"{plot}\" class=\"axis\"/>"
    ));
    for (i, n) in buckets.iter().enumerate() {
        let i = i as i64;
        // The top 18 units stay free for the caption.
        let h = i64::from(*n) * (plot - 18) / top;
        if h > 0 {
            svg.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{h}\" class=\"bar\"><title>{n} in the hour ending {} h ago</title></rect>",
                i * slot + 2,
                plot - h,
                slot - 4,
                23 - i
            ));
        }
    }
    for (i, label) in [
        (0, "-24h"),
        (6, "-18h"),
        (12, "-12h"),
        (18, "-6h"),
        (23, "now"),
    ] {
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" class=\"label\">{label}</text>",
            i * slot + 2,
            HEIGHT - 3
        ));
    }
    svg.push_str(&format!(
        "<text x=\"2\" y=\"12\" class=\"label\">{total} in 24 h, at most {top} an hour</text></svg>"
    ));
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_lands_in_its_hour_and_older_ones_are_left_out() {
        let now = 100 * HOUR;
        let times = [
            now - 10,
            now - 20,
            now - HOUR - 1,
            now - 23 * HOUR - 5,
            now - 25 * HOUR,
        ];
        let svg = requests_per_hour(&times, now);
        assert!(
            svg.contains("4 requests in the last 24 hours, at most 2 in one hour"),
            "{svg}"
        );
        assert!(svg.contains("<title>2 in the hour ending 0 h ago</title>"));
        assert!(svg.contains("<title>1 in the hour ending 1 h ago</title>"));
        assert!(svg.contains("<title>1 in the hour ending 23 h ago</title>"));
        assert_eq!(svg.matches("<rect").count(), 3);
        // No request: an empty chart, not a division by zero.
        assert!(requests_per_hour(&[], now).contains("0 requests"));
    }
}
