//! Durations with units on the command line and in config files: `500ms`, `30s`, `5m`, `1h`.

use std::time::Duration;

/// Parses `<integer><unit>` with unit `us`, `ms`, `s`, `m` or `h`. A bare number is refused
/// (is `30` seconds or milliseconds?) with a message that shows how to write it.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "`{s}` is not a duration: write a whole number and a unit, e.g. 500ms, 30s, 5m"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: the number is too large"))?;
    let d = match unit.trim() {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "" => return Err(format!("`{s}` has no unit: write {n}s, {n}ms or {n}m")),
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}` (use us, ms, s, m or h)"
            ))
        }
    };
    Ok(d)
}

/// The inverse of [`parse`], for messages and tables.
pub fn format(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0s".into()
    } else if us.is_multiple_of(3_600_000_000) {
        format!("{}h", us / 3_600_000_000)
    } else if us.is_multiple_of(60_000_000) {
        format!("{}m", us / 60_000_000)
    } else if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1_000) {
        format!("{}ms", us / 1_000)
    } else {
        format!("{us}us")
    }
}

pub fn to_core(d: Duration) -> timed_core::Duration {
    timed_core::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_bare_numbers_are_refused_with_a_hint() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse("30").unwrap_err().contains("30s"));
        assert!(parse("3 fortnights").unwrap_err().contains("unknown unit"));
        assert!(parse("fast").is_err());
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(120)), "2m");
    }
}
