//! Times for people and scripts: milliseconds since the Unix epoch as
//! `YYYY-MM-DD HH:MM:SS` in UTC (tables) or RFC 3339 (`--json`), without a date
//! crate (the proleptic Gregorian calendar is a few lines); spans as `29d 23h`;
//! counts with their noun in the right number.

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn utc(ms: i64) -> String {
    let (date, (hour, minute, second)) = split(ms);
    format!("{date} {hour:02}:{minute:02}:{second:02}")
}

/// `ms` since the Unix epoch as RFC 3339 in UTC, to the second: `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let (date, (hour, minute, second)) = split(ms);
    format!("{date}T{hour:02}:{minute:02}:{second:02}Z")
}

/// The date (`YYYY-MM-DD`) and the time of day of `ms` since the Unix epoch, in UTC.
fn split(ms: i64) -> (String, (i64, i64, i64)) {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (format!("{year:04}-{month:02}-{day:02}"), (rest / 3600, rest % 3600 / 60, rest % 60))
}

/// The calendar date of a day number (days since 1970-01-01), by the well-known
/// era arithmetic: 400-year eras of 146,097 days, years starting in March so the
/// leap day is the last day of a year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A span of `seconds` for people: the two largest units, `29d 23h`, `5h 3m`,
/// `2m 5s`, `42s` (negative spans, already past, get a leading `-`).
pub(crate) fn human(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (days, hours, minutes, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let text = match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    };
    format!("{sign}{text}")
}

/// `count` and `noun`, the noun in the plural unless the count is one: `1 session`, `2 sessions`.
pub(crate) fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::{count, human, rfc3339, utc};

    #[test]
    fn spans_for_people_and_counts_in_the_right_number() {
        assert_eq!(human(2_591_991), "29d 23h");
        assert_eq!(human(18_180), "5h 3m");
        assert_eq!(human(125), "2m 5s");
        assert_eq!(human(42), "42s");
        assert_eq!(human(0), "0s");
        assert_eq!(human(-90), "-1m 30s");
        assert_eq!(count(1u64, "session"), "1 session");
        assert_eq!(count(0u64, "session"), "0 sessions");
        assert_eq!(count(2u64, "expired session"), "2 expired sessions");
    }

    #[test]
    fn known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31 23:59:59");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
    }

    #[test]
    fn rfc3339_is_the_same_instant_with_t_and_z() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
