//! The rotate command line, shared by `warden-rotate` and `warden rotate` (which flattens
//! it into its own), and the durations it takes (`500ms`, `1.5s`, `2m`, `1h`, as the rest
//! of warden's command line).

use std::time::Duration;

use crate::driver::Options;

/// `rotate KIND --to V [--dry-run] [--timeout D] [--force-after D]`.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// The resource kind (a path, as given to `warden resource init`).
    pub kind: String,
    /// The version to rotate to (one path segment).
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Print the plan (current version, target, the holders and waiters that must drain)
    /// and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Give up (exit 3) if the kind has not switched within this; the rotation stays
    /// begun, and running the tool again picks it up.
    #[arg(long, value_parser = parse_duration, value_name = "D")]
    pub timeout: Option<Duration>,
    /// Force the switch after this: revoke the holds and waits left in the old version
    /// (their holders are told; lock-delays apply). Needs admin.
    #[arg(long, value_parser = parse_duration, value_name = "D")]
    pub force_after: Option<Duration>,
    /// How often to read the kind's progress.
    #[arg(long, value_parser = parse_duration, value_name = "D", default_value = "250ms")]
    pub poll: Duration,
}

impl RotateArgs {
    /// The driver's options.
    pub fn options(&self) -> Options {
        Options {
            to: self.to.clone(),
            dry_run: self.dry_run,
            timeout: self.timeout,
            force_after: self.force_after,
            poll: self.poll.max(Duration::from_millis(10)),
        }
    }
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Parses `500ms`, `1.5s`, `2m`, `1h` or a plain number of seconds (`7`, `0.5`): the one
/// duration parser of the command line (the `warden` binary's flags use it too).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: RotateArgs,
    }

    #[test]
    fn durations_parse_as_warden_parses_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "abc", ".5s", "1.s", "-1s", "10d", "99999999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
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

    #[test]
    fn the_command_line_takes_a_kind_a_target_and_the_limits() {
        let cli = Cli::try_parse_from([
            "rotate",
            "/orders",
            "--to",
            "v2",
            "--timeout",
            "30s",
            "--force-after",
            "10s",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let o = cli.args.options();
        assert_eq!((cli.args.kind.as_str(), o.to.as_str(), o.dry_run), ("/orders", "v2", false));
        assert_eq!(o.timeout, Some(Duration::from_secs(30)));
        assert_eq!(o.force_after, Some(Duration::from_secs(10)));
        assert_eq!(o.poll, Duration::from_millis(250));
        assert!(Cli::try_parse_from(["rotate", "/orders"]).is_err(), "--to is required");
        let dry = Cli::try_parse_from(["rotate", "/o", "--to", "v2", "--dry-run"]);
        assert!(dry.is_ok_and(|c| c.args.dry_run));
    }
}
