//! Number and time formatting shared by the interactive view and `--once`.
//!
//! Every cell of the target table goes through here, so the screen and the plain table say the
//! same thing in the same width. Missing values are `-`, never `0`: a zero would be a claim.

/// Frames per second: `25.0`, `120`, `-`.
pub fn fps(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v >= 999.5 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "-".into(),
    }
}

/// Speed as a multiple of real time: `0.99x`, `12.3x`, `-`.
pub fn speed(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v >= 99.5 => format!("{v:.0}x"),
        Some(v) if v.is_finite() && v >= 9.995 => format!("{v:.1}x"),
        Some(v) if v.is_finite() => format!("{v:.2}x"),
        _ => "-".into(),
    }
}

/// A bitrate given in kbit/s: `850k`, `4.50M`, `-`.
pub fn bitrate(kbps: Option<f64>) -> String {
    match kbps {
        Some(v) if v.is_finite() && v >= 99_950.0 => format!("{:.0}M", v / 1000.0),
        Some(v) if v.is_finite() && v >= 9_995.0 => format!("{:.1}M", v / 1000.0),
        Some(v) if v.is_finite() && v >= 999.5 => format!("{:.2}M", v / 1000.0),
        Some(v) if v.is_finite() => format!("{v:.0}k"),
        _ => "-".into(),
    }
}

/// A count that may grow large: `3075`, `12.3M`, `-`.
pub fn count(v: Option<u64>) -> String {
    match v {
        Some(v) if v >= 1_000_000_000 => format!("{:.1}G", v as f64 / 1e9),
        Some(v) if v >= 10_000_000 => format!("{:.1}M", v as f64 / 1e6),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// Dropped and duplicated frames: `0/0`, `12/3`, `-`.
pub fn drop_dup(drop: Option<u64>, dup: Option<u64>) -> String {
    if drop.is_none() && dup.is_none() {
        return "-".into();
    }
    format!("{}/{}", count(drop), count(dup))
}

/// A duration in seconds, at most two units: `45s`, `12m03s`, `3h04m`, `2d03h`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// How long ago something was, from Unix milliseconds: `12s ago`, `never`.
pub fn ago(then_ms: Option<i64>, now_ms: i64) -> String {
    match then_ms {
        Some(t) => format!("{} ago", duration((now_ms - t).max(0) as f64 / 1000.0)),
        None => "never".into(),
    }
}

/// When a target last answered: `seen 12s ago`, `never seen`.
pub fn seen(then_ms: Option<i64>, now_ms: i64) -> String {
    match then_ms {
        Some(_) => format!("seen {}", ago(then_ms, now_ms)),
        None => "never seen".into(),
    }
}

/// Cuts `s` to at most `width` characters, ending with `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fps(Some(24.94)), "24.9");
        assert_eq!(fps(Some(1200.0)), "1200");
        assert_eq!(fps(None), "-");
        assert_eq!(fps(Some(f64::NAN)), "-");
        assert_eq!(speed(Some(0.987)), "0.99x");
        assert_eq!(speed(Some(12.34)), "12.3x");
        assert_eq!(speed(Some(3130.0)), "3130x");
        assert_eq!(bitrate(Some(850.4)), "850k");
        assert_eq!(bitrate(Some(4500.0)), "4.50M");
        assert_eq!(bitrate(Some(12_345.0)), "12.3M");
        assert_eq!(count(Some(3075)), "3075");
        assert_eq!(count(Some(12_345_678)), "12.3M");
        assert_eq!(drop_dup(Some(1), Some(2)), "1/2");
        assert_eq!(drop_dup(None, None), "-");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(45.9), "45s");
        assert_eq!(duration(723.0), "12m03s");
        assert_eq!(duration(3.0 * 3600.0 + 240.0), "3h04m");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0), "2d03h");
        assert_eq!(ago(Some(1_000), 13_500), "12s ago");
        assert_eq!(ago(None, 1), "never");
        assert_eq!(seen(Some(1_000), 13_500), "seen 12s ago");
        assert_eq!(seen(None, 1), "never seen");
    }

    #[test]
    fn fitting() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("abc", 0), "");
    }
}
