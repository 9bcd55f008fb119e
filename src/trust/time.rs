//! Unix seconds to and from ISO 8601 UTC text, and CLI durations, without
//! a date crate: the proleptic Gregorian calendar is a few lines of
//! integer arithmetic over 400-year eras (146 097 days each).

use std::fmt;

const SECS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01 (the start of a computational era, years beginning
/// in March so that the leap day comes last) to 1970-01-01.
const EPOCH_SHIFT: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

/// (year, month 1–12, day 1–31) of a day number counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA);
    // Year of era: remove the leap days (one per 4 years, none per 100, one
    // per 400 again) before dividing by 365.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / (DAYS_PER_ERA - 1)) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 153 days per 5 months (31,30,31,30,31).
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let month_from_march = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn iso8601(unix: u64) -> String {
    let days = (unix / SECS_PER_DAY) as i64;
    let secs = unix % SECS_PER_DAY;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Why a time or duration text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeParseError(pub String);

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimeParseError {}

/// A point in time: Unix seconds (`1700000000`), a date (`2025-06-01`,
/// midnight UTC) or a UTC date and time (`2025-06-01T12:00:00Z`).
pub fn parse_time(s: &str) -> Result<u64, TimeParseError> {
    let err =
        || TimeParseError(format!("{s:?} is not a time (Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"));
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| err());
    }
    let (date, clock) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(err)?)),
        None => (s, None),
    };
    let num = |t: &str, len: usize| -> Result<u32, TimeParseError> {
        if t.len() != len || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        t.parse().map_err(|_| err())
    };
    let mut dp = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(err());
    };
    let (y, m, d) = (i64::from(num(y, 4)?), num(m, 2)?, num(d, 2)?);
    if y < 1970 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(err());
    }
    let mut secs = 0u64;
    if let Some(c) = clock {
        let mut cp = c.split(':');
        let (Some(h), Some(mi), Some(se), None) = (cp.next(), cp.next(), cp.next(), cp.next()) else {
            return Err(err());
        };
        let (h, mi, se) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
        if h > 23 || mi > 59 || se > 59 {
            return Err(err());
        }
        secs = u64::from(h * 3600 + mi * 60 + se);
    }
    let days = days_from_civil(y, m, d) as u64;
    Ok(days * SECS_PER_DAY + secs)
}

/// A positive duration: a number and one unit, `s`, `m`, `h`, `d`, `w` or
/// `y` (365 days), e.g. `90d`, `12h`, `30m`, `1y`, `3600s`.
pub fn parse_duration(s: &str) -> Result<u64, TimeParseError> {
    let err = |why: &str| TimeParseError(format!("duration {s:?}: {why}"));
    let unit_at =
        s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| err("needs a unit (s, m, h, d, w or y)"))?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| err("expected a number before the unit"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => SECS_PER_DAY,
        "w" => 7 * SECS_PER_DAY,
        "y" => 365 * SECS_PER_DAY,
        _ => return Err(err("unit must be one of s, m, h, d, w, y")),
    };
    let secs = n.checked_mul(mult).ok_or_else(|| err("too long"))?;
    if secs == 0 {
        return Err(err("must be longer than zero"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(iso8601(4_107_542_400), "2100-03-01T00:00:00Z");
        // u64::MAX must not panic, whatever year it is.
        assert!(iso8601(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400));
        for bad in [
            "",
            "2001-02-29",
            "2023-13-01",
            "2023-11-14T22:13:20",
            "2023-11-14T24:00:00Z",
            "2023-1-14",
            "1969-12-31",
            "99999999999999999999999",
            "2023-11-14T22:13Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400));
        assert_eq!(parse_duration("3600s"), Ok(3_600));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        for bad in ["", "90", "d", "0d", "-1d", "1.5d", "1x", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -1_000_000i64..100_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn iso_round_trips(t in 0u64..253_402_300_799) {
            prop_assert_eq!(parse_time(&iso8601(t)), Ok(t));
        }
    }
}
