//! Deriving the day partition of a record: from a `YYYY-MM-DD` value, an event time (ISO-8601 or
//! epoch seconds/milliseconds) or the Kafka timestamp, in a configured time zone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

/// Days since 1970-01-01, the representation of Arrow's Date32.
pub type EpochDay = i32;

const UNIX_EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Epoch values below this are seconds, at or above it milliseconds (10^11 s is the year 5138,
/// 10^11 ms is 1973), so both units can share one field without configuration.
const SECONDS_MILLIS_THRESHOLD: f64 = 1e11;

pub fn to_epoch_day(date: NaiveDate) -> EpochDay {
    // The span since 1970 in days always fits i32 for chrono's supported years.
    (date - UNIX_EPOCH_DAY).num_days() as EpochDay
}

pub fn from_epoch_day(day: EpochDay) -> Option<NaiveDate> {
    UNIX_EPOCH_DAY.checked_add_signed(chrono::Duration::days(i64::from(day)))
}

/// Formats a day as the partition value Delta stores: `YYYY-MM-DD`.
pub fn format_day(day: EpochDay) -> String {
    from_epoch_day(day)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Parses a strict `YYYY-MM-DD` day.
pub fn parse_day(value: &str) -> Result<EpochDay, String> {
    let trimmed = value.trim();
    if trimmed.len() != 10 {
        return Err(format!("{value:?} is not a YYYY-MM-DD day"));
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .map(to_epoch_day)
        .map_err(|_| format!("{value:?} is not a valid YYYY-MM-DD day"))
}

/// The day of an epoch instant in milliseconds, in `tz`.
pub fn day_of_millis(millis: i64, tz: Tz) -> Option<EpochDay> {
    let utc: DateTime<Utc> = DateTime::from_timestamp_millis(millis)?;
    Some(to_epoch_day(utc.with_timezone(&tz).date_naive()))
}

/// The day of an event time given as text: epoch seconds or milliseconds, an RFC 3339 instant
/// (converted to `tz`), a local date-time (taken as already in `tz`) or a bare date.
pub fn day_of_event_time(value: &str, tz: Tz) -> Result<EpochDay, String> {
    let text = value.trim();
    if let Ok(number) = text.parse::<f64>() {
        if !number.is_finite() || number < 0.0 {
            return Err(format!("epoch time {text} is out of range"));
        }
        let millis = if number < SECONDS_MILLIS_THRESHOLD {
            number * 1000.0
        } else {
            number
        };
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
        "{value:?} is neither an ISO-8601 date/time nor epoch seconds/milliseconds"
    ))
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}"))
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
    fn event_time_in_every_accepted_shape() {
        let utc = parse_timezone("UTC").expect("tz");
        let expected = day("2026-11-23");
        for text in [
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123+00:00",
            "2026-11-23 23:59:59",
            "2026-11-23",
            "1795420800",    // seconds
            "1795420800000", // milliseconds
        ] {
            assert_eq!(day_of_event_time(text, utc), Ok(expected), "{text}");
        }
        assert!(day_of_event_time("soon", utc).is_err());
        assert!(day_of_event_time("-5", utc).is_err());
    }

    #[test]
    fn instants_move_to_the_configured_zone() {
        let tokyo = parse_timezone("Asia/Tokyo").expect("tz");
        // 20:00 UTC is 05:00 the next morning in Tokyo.
        assert_eq!(
            day_of_event_time("2026-11-23T20:00:00Z", tokyo),
            Ok(day("2026-11-24"))
        );
        // A local date-time is already in the zone.
        assert_eq!(
            day_of_event_time("2026-11-23T20:00:00", tokyo),
            Ok(day("2026-11-23"))
        );
        assert_eq!(
            day_of_millis(1_795_464_000_000, tokyo),
            Some(day("2026-11-24"))
        );
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
