//! The one duration parser of the command line: `500ms`, `1.5s`, `2m`, `1h`, or a plain
//! number of seconds.

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses `500ms`, `1.5s`, `2m`, `1h` or a plain number of seconds (`7`, `0.5`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 500ms, 1.5s, 2m or 1h");
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let per_unit: u128 = match unit {
        "ms" => NANOS_PER_SECOND / 1000,
        "" | "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3600 * NANOS_PER_SECOND,
        _ => return Err(format!("{text:?} has an unknown unit {unit:?}; use ms, s, m or h")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return Err(bad()),
        None => (number, ""),
    };
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let mut nanos = whole.checked_mul(per_unit).ok_or_else(bad)?;
    // Each digit after the point is worth a tenth of the one before; those below a
    // nanosecond are dropped.
    let mut scale = per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| bad())?;
    let sub = u32::try_from(nanos % NANOS_PER_SECOND).map_err(|_| bad())?;
    Ok(Duration::new(seconds, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_parse_with_fractions() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2.5m"), Ok(Duration::from_secs(150)));
        assert_eq!(parse_duration("0.25h"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for bad in ["", "abc", "s", ".5s", "1.s", "1..5s", "1.5.2s", "-1s", "1e3s"] {
            let error = parse_duration(bad).err().unwrap_or_default();
            assert!(
                error.contains("not a duration") || error.contains("unknown unit"),
                "{bad}: {error}"
            );
        }
        let error = parse_duration("10d").err().unwrap_or_default();
        assert!(error.contains("use ms, s, m or h"), "{error}");
        assert!(parse_duration("99999999999999999999999h").is_err());
    }
}
