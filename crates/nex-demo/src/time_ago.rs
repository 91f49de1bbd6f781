//! Times in the list of sessions, said relative to now ("5 minutes ago"): the
//! reader's time zone never matters, and the wording is a pure function of two
//! instants, so tests pin it down without a clock.

const MINUTE_MS: i64 = 60 * 1000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long before `now_ms` the instant `then_ms` was (both ms since the Unix
/// epoch), in whole units rounded down: "just now" under a minute, then
/// minutes, hours, days. An instant after `now_ms` (another app instance's clock
/// runs a little ahead) is "just now" too.
pub(crate) fn ago(now_ms: i64, then_ms: i64) -> String {
    let elapsed = now_ms.saturating_sub(then_ms);
    let (count, unit) = if elapsed < MINUTE_MS {
        return "just now".to_owned();
    } else if elapsed < HOUR_MS {
        (elapsed / MINUTE_MS, "minute")
    } else if elapsed < DAY_MS {
        (elapsed / HOUR_MS, "hour")
    } else {
        (elapsed / DAY_MS, "day")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_417_600_000;

    #[test]
    fn under_a_minute_and_the_future_are_just_now() {
        assert_eq!(ago(NOW, NOW), "just now");
        assert_eq!(ago(NOW, NOW - 59_999), "just now");
        assert_eq!(ago(NOW, NOW + 5_000), "just now", "a clock slightly ahead");
        assert_eq!(ago(i64::MIN, i64::MAX), "just now", "no overflow");
    }

    #[test]
    fn whole_units_rounded_down_with_the_right_plural() {
        assert_eq!(ago(NOW, NOW - MINUTE_MS), "1 minute ago");
        assert_eq!(ago(NOW, NOW - 2 * MINUTE_MS - 59_000), "2 minutes ago");
        assert_eq!(ago(NOW, NOW - 59 * MINUTE_MS), "59 minutes ago");
        assert_eq!(ago(NOW, NOW - HOUR_MS), "1 hour ago");
        assert_eq!(ago(NOW, NOW - 23 * HOUR_MS - 59 * MINUTE_MS), "23 hours ago");
        assert_eq!(ago(NOW, NOW - DAY_MS), "1 day ago");
        assert_eq!(ago(NOW, NOW - 7 * DAY_MS), "7 days ago");
        assert_eq!(ago(NOW, 0), "20421 days ago");
    }
}
