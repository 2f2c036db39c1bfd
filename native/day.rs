//! Deriving the day partition of a record: from a `YYYY-MM-DD` value, an event time (ISO-8601 or
//! an epoch number in the configured unit) or the Kafka timestamp, in a configured time zone;
//! and the window of days a record may fall on.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use deltalake::arrow::array::{Array, ArrayRef, Date32Array, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use napi_derive::napi;

use crate::error::{CoreError, CoreResult};

/// Days since 1970-01-01, the representation of Arrow's Date32.
pub type EpochDay = i32;

const UNIX_EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// The unit of epoch numbers in event-time fields and timestamp columns (`delta.epoch_unit`).
#[napi(string_enum)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum EpochUnit {
    #[napi(value = "s")]
    Seconds,
    /// What producers' clocks give (`Date.now()`, `System.currentTimeMillis()`).
    #[napi(value = "ms")]
    #[default]
    Millis,
    #[napi(value = "us")]
    Micros,
}

impl EpochUnit {
    /// How many of this unit make a second.
    pub fn per_second(self) -> i64 {
        match self {
            EpochUnit::Seconds => 1,
            EpochUnit::Millis => 1_000,
            EpochUnit::Micros => 1_000_000,
        }
    }

    fn to_millis(self, number: f64) -> f64 {
        number * 1000.0 / self.per_second() as f64
    }
}

/// The days a record may fall on: a day outside `years` of today is a producer's bug (an epoch
/// in the wrong unit, a zeroed clock), and would create a partition far from all others.
#[derive(Debug, Clone, Copy)]
pub struct DayWindow {
    first: EpochDay,
    last: EpochDay,
    years: u32,
}

impl DayWindow {
    /// The window around today (UTC), `years` each way.
    pub fn around_today(years: u32) -> Self {
        let today = Utc::now().date_naive();
        let months = Months::new(years.saturating_mul(12));
        let first = today.checked_sub_months(months).unwrap_or(NaiveDate::MIN);
        let last = today.checked_add_months(months).unwrap_or(NaiveDate::MAX);
        Self {
            first: to_epoch_day(first),
            last: to_epoch_day(last),
            years,
        }
    }

    /// `day` itself, or why it is outside the window.
    pub fn check(&self, day: EpochDay) -> Result<EpochDay, String> {
        if (self.first..=self.last).contains(&day) {
            Ok(day)
        } else {
            Err(format!(
                "day {} is more than {} years from today (delta.day_window_years)",
                format_day(day),
                self.years
            ))
        }
    }
}

pub fn to_epoch_day(date: NaiveDate) -> EpochDay {
    // The span since 1970 in days always fits i32 for chrono's supported years.
    (date - UNIX_EPOCH_DAY).num_days() as EpochDay
}

pub fn from_epoch_day(day: EpochDay) -> Option<NaiveDate> {
    UNIX_EPOCH_DAY.checked_add_signed(chrono::Duration::days(i64::from(day)))
}

/// Formats a day as the partition value Delta stores: `YYYY-MM-DD`. It runs per staged row
/// of a text day column, so the digits are written directly (chrono's `format` interprets its
/// pattern on every call); years outside 0..=9999 keep chrono's signed form.
pub fn format_day(day: EpochDay) -> String {
    let Some(date) = from_epoch_day(day) else {
        return String::new();
    };
    let year = date.year();
    if !(0..=9999).contains(&year) {
        return date.format("%Y-%m-%d").to_string();
    }
    format!("{year:04}-{:02}-{:02}", date.month(), date.day())
}

/// Parses a strict `YYYY-MM-DD` day: four, two and two ASCII digits. Runs per message of a
/// text day column, hence by hand rather than through chrono's pattern parser.
pub fn parse_day(value: &str) -> Result<EpochDay, String> {
    let trimmed = value.trim().as_bytes();
    if trimmed.len() != 10 {
        return Err(format!("{value:?} is not a YYYY-MM-DD day"));
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let parts = (trimmed[4] == b'-' && trimmed[7] == b'-').then(|| {
        (
            number(&trimmed[0..4]),
            number(&trimmed[5..7]),
            number(&trimmed[8..10]),
        )
    });
    match parts {
        Some((Some(year), Some(month), Some(day))) => {
            NaiveDate::from_ymd_opt(year as i32, month, day).map(to_epoch_day)
        }
        _ => None,
    }
    .ok_or_else(|| format!("{value:?} is not a valid YYYY-MM-DD day"))
}

/// The day of an epoch instant in milliseconds, in `tz`.
pub fn day_of_millis(millis: i64, tz: Tz) -> Option<EpochDay> {
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(millis)?;
    Some(to_epoch_day(utc.with_timezone(&tz).date_naive()))
}

/// The day of an event time given as text: an epoch number in `unit`, an RFC 3339 instant
/// (converted to `tz`), a local date-time (taken as already in `tz`) or a bare date.
pub fn day_of_event_time(value: &str, tz: Tz, unit: EpochUnit) -> Result<EpochDay, String> {
    let text = value.trim();
    if let Ok(number) = text.parse::<f64>() {
        let millis = unit.to_millis(number);
        // Far beyond any calendar chrono knows, so the cast below cannot saturate silently.
        if !millis.is_finite() || millis.abs() > 1e17 {
            return Err(format!("epoch time {text} is out of range"));
        }
        return day_of_millis(millis as i64, tz)
            .ok_or_else(|| format!("epoch time {text} is out of range"));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(to_epoch_day(instant.with_timezone(&tz).date_naive()));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(to_epoch_day(local.date()));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(to_epoch_day(date));
    }
    Err(format!(
        "{value:?} is neither an ISO-8601 date/time nor an epoch number"
    ))
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}"))
}

/// The days of a decoded `YYYY-MM-DD` (or date) partition column.
pub fn column_days(
    column: &ArrayRef,
    name: &str,
) -> CoreResult<Vec<Result<EpochDay, (&'static str, String)>>> {
    let missing = || ("no_day", format!("day field {name:?} is missing or null"));
    if let Some(dates) = column.as_any().downcast_ref::<Date32Array>() {
        return Ok(dates.iter().map(|d| d.ok_or_else(missing)).collect());
    }
    let text = cast(column, &DataType::Utf8)?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| CoreError::Internal("day column did not cast to text".into()))?;
    // Messages come in runs of one day: a value equal to the one before is not parsed again.
    let mut last: Option<(&str, EpochDay)> = None;
    Ok(text
        .iter()
        .map(|value| match value {
            None => Err(missing()),
            Some(v) => match last {
                Some((seen, day)) if seen == v => Ok(day),
                _ => {
                    let day =
                        parse_day(v).map_err(|e| ("no_day", format!("day field {name:?}: {e}")))?;
                    last = Some((v, day));
                    Ok(day)
                }
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> EpochDay {
        parse_day(s).expect("valid day")
    }

    #[test]
    fn strict_days_round_trip() {
        assert_eq!(format_day(day("2026-11-23")), "2026-11-23");
        assert_eq!(day("1970-01-01"), 0);
        assert!(parse_day("2026-13-01").is_err());
        assert!(parse_day("2026-1-1").is_err());
        assert!(parse_day("yesterday").is_err());
    }

    #[test]
    fn hand_written_days_agree_with_chrono() {
        // Every day of 1900..2101 and the four-digit edges: formatted and parsed back as chrono does.
        let first = to_epoch_day(NaiveDate::from_ymd_opt(1900, 1, 1).expect("date"));
        let last = to_epoch_day(NaiveDate::from_ymd_opt(2100, 12, 31).expect("date"));
        let edges = [
            NaiveDate::from_ymd_opt(0, 1, 1),
            NaiveDate::from_ymd_opt(9999, 12, 31),
        ];
        let days = (first..=last).chain(edges.into_iter().flatten().map(to_epoch_day));
        for d in days {
            let date = from_epoch_day(d).expect("date");
            let text = format_day(d);
            assert_eq!(text, date.format("%Y-%m-%d").to_string());
            assert_eq!(parse_day(&text), Ok(d));
        }
        assert_eq!(parse_day(" 2026-11-23\n"), Ok(day("2026-11-23")));
        for bad in [
            "2026-02-30",
            "2026-1-011",
            "+026-01-01",
            "2026/11/23",
            "2026-11-2x",
            "20261-1-23",
        ] {
            assert!(
                parse_day(bad).is_err(),
                "{bad} must not parse as a YYYY-MM-DD day"
            );
        }
    }

    #[test]
    fn event_time_in_every_accepted_shape() {
        let utc = parse_timezone("UTC").expect("tz");
        let expected = day("2026-11-23");
        for text in [
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123+00:00",
            "2026-11-23 23:59:59",
            "2026-11-23",
            "1795420800000", // milliseconds, the default unit
        ] {
            assert_eq!(
                day_of_event_time(text, utc, EpochUnit::Millis),
                Ok(expected),
                "{text}"
            );
        }
        assert_eq!(
            day_of_event_time("1795420800", utc, EpochUnit::Seconds),
            Ok(expected)
        );
        assert_eq!(
            day_of_event_time("1795420800000000", utc, EpochUnit::Micros),
            Ok(expected)
        );
        // Seconds read as milliseconds: 1970-01-21, which the day window then refuses.
        assert_eq!(
            day_of_event_time("1795420800", utc, EpochUnit::Millis),
            Ok(day("1970-01-21"))
        );
        assert!(day_of_event_time("soon", utc, EpochUnit::Millis).is_err());
        assert!(day_of_event_time("1e300", utc, EpochUnit::Millis).is_err());
    }

    #[test]
    fn days_far_from_today_are_outside_the_window() {
        let window = DayWindow::around_today(10);
        let today = to_epoch_day(Utc::now().date_naive());
        assert_eq!(window.check(today), Ok(today));
        assert_eq!(window.check(today - 365 * 9), Ok(today - 365 * 9));
        assert!(window.check(today + 365 * 11).is_err());
        assert!(window.check(day("1970-01-21")).is_err());
    }

    #[test]
    fn instants_move_to_the_configured_zone() {
        let tokyo = parse_timezone("Asia/Tokyo").expect("tz");
        // 20:00 UTC is 05:00 the next morning in Tokyo.
        assert_eq!(
            day_of_event_time("2026-11-23T20:00:00Z", tokyo, EpochUnit::Millis),
            Ok(day("2026-11-24"))
        );
        // A local date-time is already in the zone.
        assert_eq!(
            day_of_event_time("2026-11-23T20:00:00", tokyo, EpochUnit::Millis),
            Ok(day("2026-11-23"))
        );
        assert_eq!(
            day_of_millis(1_795_464_000_000, tokyo),
            Some(day("2026-11-24"))
        );
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
