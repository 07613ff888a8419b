//! Calendar view of `requested-at`, for rules such as change windows.
//! No clock is read: the instant comes from the action, so replays agree.

use alloc::format;
use alloc::string::String;

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// ISO weekday: Monday = 1 … Sunday = 7.
    pub weekday: u32,
}

impl Instant {
    /// Parses an RFC 3339 UTC timestamp such as `2026-11-25T10:00:00Z`
    /// (fractional seconds allowed). Offsets other than `Z` are refused:
    /// the host always sends UTC.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("requested-at is not RFC 3339 UTC: {s:?}");
        let b = s.as_bytes();
        if b.len() < 20 || !s.ends_with('Z') || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
            return Err(bad());
        }
        let num = |r: core::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
        let (year, month, day) = (
            num(0..4).ok_or_else(bad)?,
            num(5..7).ok_or_else(bad)?,
            num(8..10).ok_or_else(bad)?,
        );
        let (hour, minute, second) = (
            num(11..13).ok_or_else(bad)?,
            num(14..16).ok_or_else(bad)?,
            num(17..19).ok_or_else(bad)?,
        );
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(bad());
        }
        let days = days_from_civil(year as i64, month, day);
        // 1970-01-01 was a Thursday (ISO 4).
        let weekday = ((days + 3).rem_euclid(7) + 1) as u32;
        Ok(Instant {
            year: year as i64,
            month,
            day,
            hour,
            minute,
            second,
            weekday,
        })
    }

    /// Monday to Friday.
    pub fn is_weekday(&self) -> bool {
        self.weekday <= 5
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_are_right() {
        assert_eq!(Instant::parse("2026-11-25T10:00:00Z").unwrap().weekday, 3); // Wednesday
        assert_eq!(Instant::parse("2024-02-29T23:59:59.5Z").unwrap().weekday, 4);
        assert_eq!(Instant::parse("1970-01-01T00:00:00Z").unwrap().weekday, 4);
        assert!(Instant::parse("2026-11-25T10:00:00+01:00").is_err());
        assert!(Instant::parse("2026-13-25T10:00:00Z").is_err());
    }
}
