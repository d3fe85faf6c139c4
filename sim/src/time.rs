//! Virtual time: `u64` microseconds since the start of the run, and the human forms of it
//! (`30s`, `5m`, `1h`, `250ms`) the CLI accepts and prints.

/// Microseconds of virtual time.
pub type Micros = u64;

pub const MS: Micros = 1_000;
pub const SEC: Micros = 1_000_000;
pub const MIN: Micros = 60 * SEC;
pub const HOUR: Micros = 60 * MIN;

/// Parses `90`, `90s`, `250ms`, `5m`, `1h`, `1h30m`, `2d` into microseconds. A bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Micros, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. 30s, 5m or 1h".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(|v| v.saturating_mul(SEC))
            .map_err(|e| format!("bad duration {s:?}: {e}"));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if digits == 0 {
            return Err(format!(
                "bad duration {s:?}: expected a number before {rest:?}; write e.g. 30s, 5m or 1h"
            ));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let mult = match unit {
            "us" => 1,
            "ms" => MS,
            "s" | "sec" | "secs" => SEC,
            "m" | "min" | "mins" => MIN,
            "h" | "hr" | "hours" => HOUR,
            "d" | "days" => 24 * HOUR,
            "" => {
                return Err(format!(
                    "bad duration {s:?}: {num} needs a unit (us, ms, s, m, h, d)"
                ))
            }
            u => {
                return Err(format!(
                    "bad duration {s:?}: unknown unit {u:?}; use us, ms, s, m, h or d"
                ))
            }
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("bad duration {s:?}: {num:?} is not a number"))?;
        total = total.saturating_add((v * mult as f64).round() as u64);
        rest = tail;
    }
    Ok(total)
}

/// Prints a duration the way `parse_duration` reads it, as short as exact.
pub fn fmt_duration(us: Micros) -> String {
    if us == 0 {
        return "0s".into();
    }
    if us.is_multiple_of(HOUR) {
        format!("{}h", us / HOUR)
    } else if us.is_multiple_of(MIN) {
        format!("{}m", us / MIN)
    } else if us.is_multiple_of(SEC) {
        format!("{}s", us / SEC)
    } else if us.is_multiple_of(MS) {
        format!("{}ms", us / MS)
    } else {
        format!("{us}us")
    }
}

/// Seconds as a float, for reports.
pub fn secs(us: Micros) -> f64 {
    us as f64 / SEC as f64
}

/// The real clock, for `wall_secs` and the sweep's progress bar only: nothing that decides
/// anything in a run reads it.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> std::time::Instant {
    std::time::Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_round_trip() {
        assert_eq!(parse_duration("30s"), Ok(30 * SEC));
        assert_eq!(parse_duration("90"), Ok(90 * SEC));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MIN));
        assert_eq!(parse_duration("250ms"), Ok(250 * MS));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000));
        for d in [HOUR, 5 * MIN, 30 * SEC, 250 * MS, 7] {
            assert_eq!(parse_duration(&fmt_duration(d)), Ok(d));
        }
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("10 5").is_err());
    }
}
