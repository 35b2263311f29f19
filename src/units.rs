//! Quantities as people write them, shared by the config file, rule files (`max_age`) and
//! command-line flags (`--since`): durations (`90s`, `7d`, `1h30m`) and byte sizes (`10MB`).
//! Pure parsing into std types; errors say what was expected. No IO.

use std::time::Duration;

/// Parses `90s`, `15m`, `48h`, `7d`, `2w`, `1h30m`, `500ms`. A bare number is refused: units are
/// required.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration {s:?}: expected a number with a unit, like `90s`, `15m`, `48h` or `7d`"
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(expected());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => {
                // Milliseconds are kept only as whole seconds would lose them; handle separately.
                total = total.checked_mul(1000).ok_or_else(expected)?;
                let ms_total = total.checked_add(n).ok_or_else(expected)?;
                rest = &rest[unit_len..];
                if !rest.is_empty() {
                    return Err(expected());
                }
                return Ok(Duration::from_millis(ms_total));
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(expected()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(expected)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// Parses a number of bytes, or one with a unit: `512KB`, `10MB`, `1GB` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number of bytes or `512KB`, `10MB`, `1GB`")
    })?;
    let mult = match t[split..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" | "KIB" => 1024,
        "MB" | "M" | "MIB" => 1024 * 1024,
        "GB" | "G" | "GIB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size {s:?}: expected a number of bytes or `512KB`, `10MB`, `1GB`"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// `d` as people write it, in its largest whole unit: `90s`, `15m`, `48h`, `7d`; `0s`; `1500ms`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<u64>)] = &[
            ("0",      Some(0)),
            ("512",    Some(512)),
            ("512KB",  Some(512 * 1024)),
            ("10 MB",  Some(10 << 20)),
            ("1gib",   Some(1 << 30)),
            ("10MB ",  Some(10 << 20)),
            ("MB",     None),
            ("10TB",   None),
            ("-1",     None),
            ("99999999999999999999GB", None),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_size(s).ok(), want, "{s:?}");
        }
    }

    #[test]
    fn durations_shown_in_their_largest_whole_unit() {
        #[rustfmt::skip]
        let cases: &[(u64, &str)] = &[
            (0, "0s"), (1_000, "1s"), (90_000, "90s"), (900_000, "15m"),
            (3_600_000, "1h"), (172_800_000, "2d"), (1_500, "1500ms"),
        ];
        for &(ms, want) in cases {
            let d = Duration::from_millis(ms);
            assert_eq!(show_duration(d), want, "{ms} ms");
            assert_eq!(parse_duration(want).ok(), Some(d), "{want} parses back");
        }
    }
}
