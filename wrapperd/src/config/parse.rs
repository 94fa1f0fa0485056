//! The kinds of value a variable can hold: how each is parsed from its text and how its
//! effective value is written to `status/<VAR>`.
//!
//! The table in [`super`] names one parser per variable (a method of [`Raw`]) and the default as
//! text. An unset variable parses its default text with the same parser, so `Config::default()`
//! and `--help` cannot disagree. Each parser keeps the exact rules of its kind: which values are
//! trimmed, what counts as unset, and the one-line message of a bad value.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, RestartPolicy, RotationMode};

/// One variable as found in the environment, handed to its parser.
pub(super) struct Raw<'a> {
    /// The variable's name, for the error.
    pub(super) var: &'static str,
    /// Its text as set, or `None` when unset.
    pub(super) value: Option<&'a str>,
    /// The default as text (the table's, also shown by `--help`).
    pub(super) default: &'static str,
}

/// What a boolean accepts, for its bad-value line.
pub(super) const BOOLEAN_WORDS: &str = "1, 0, true, false, yes, no, on or off (any case), or empty";

/// The value of a boolean's word (already trimmed), any case; `None` for any other text.
pub(super) fn switch_word(v: &str) -> Option<bool> {
    const FALSE: [&str; 5] = ["", "0", "false", "no", "off"];
    const TRUE: [&str; 4] = ["1", "true", "yes", "on"];
    if FALSE.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Some(false)
    } else if TRUE.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        Some(true)
    } else {
        None
    }
}

impl Raw<'_> {
    fn bad(&self, value: &str, allowed: &'static str) -> ConfigError {
        ConfigError {
            var: self.var,
            value: value.to_string(),
            allowed,
        }
    }

    /// The trimmed text; unset or blank gives the default.
    fn trimmed(&self) -> &str {
        self.value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(self.default)
    }

    /// Free text, untrimmed; unset or empty gives the default.
    pub(super) fn text<T: From<String>>(&self) -> Result<T, ConfigError> {
        let v = self.value.filter(|v| !v.is_empty()).unwrap_or(self.default);
        Ok(T::from(v.to_string()))
    }

    /// A switch (SPEC §2): unset, empty, `0`, `false`, `no`, `off` are false; `1`, `true`, `yes`,
    /// `on` are true (any case, trimmed); anything else is a bad value, so a typo never flips a
    /// safety switch.
    pub(super) fn flag(&self) -> Result<bool, ConfigError> {
        let v = self.value.unwrap_or(self.default).trim();
        switch_word(v).ok_or_else(|| self.bad(v, BOOLEAN_WORDS))
    }

    /// A switch whose seed promised that "any string" turns it on (`NO_FILE_LOG`, `IS_DEBUG`):
    /// like [`Raw::flag`], but any other non-empty text is true (`super::warn` says so).
    pub(super) fn lenient_flag(&self) -> Result<bool, ConfigError> {
        let v = self.value.unwrap_or(self.default).trim();
        Ok(switch_word(v).unwrap_or(true))
    }

    /// An unsigned integer `>= min`.
    pub(super) fn count<T: TryFrom<u64>>(
        &self,
        min: u64,
        allowed: &'static str,
    ) -> Result<T, ConfigError> {
        let v = self.trimmed();
        v.parse::<u64>()
            .ok()
            .filter(|&n| n >= min)
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.bad(v, allowed))
    }

    /// A finite number `>= 0`.
    pub(super) fn number(&self) -> Result<f64, ConfigError> {
        let v = self.trimmed();
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| self.bad(v, "a number >= 0 (fractions allowed)"))
    }

    /// A number of seconds `>= 0`, fractions allowed; one too large for a `Duration` is bad.
    pub(super) fn seconds(&self) -> Result<Duration, ConfigError> {
        Duration::try_from_secs_f64(self.number()?).map_err(|_| {
            self.bad(
                self.value.unwrap_or_default(),
                "a number of seconds >= 0 (fractions allowed)",
            )
        })
    }

    /// `days` or `size`, any case.
    pub(super) fn rotation(&self) -> Result<RotationMode, ConfigError> {
        match self.trimmed() {
            v if v.eq_ignore_ascii_case("days") => Ok(RotationMode::Days),
            v if v.eq_ignore_ascii_case("size") => Ok(RotationMode::Size),
            v => Err(self.bad(v, "days or size")),
        }
    }

    /// `never`, `on-failure` or `always`, any case.
    pub(super) fn restart(&self) -> Result<RestartPolicy, ConfigError> {
        let v = self.trimmed();
        [
            RestartPolicy::Never,
            RestartPolicy::OnFailure,
            RestartPolicy::Always,
        ]
        .into_iter()
        .find(|p| v.eq_ignore_ascii_case(p.as_str()))
        .ok_or_else(|| self.bad(v, "never, on-failure or always"))
    }

    /// A number of seconds `> 0`, fractions allowed; unset or blank is `None`.
    pub(super) fn positive_seconds(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(v) = self.value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        v.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n > 0.0)
            .and_then(|n| Duration::try_from_secs_f64(n).ok())
            .map(Some)
            .ok_or_else(|| self.bad(v, "a number of seconds > 0 (fractions allowed), or unset"))
    }

    /// An unsigned integer `>= 1`; unset or blank is `None`.
    pub(super) fn optional_count(&self) -> Result<Option<u64>, ConfigError> {
        let Some(v) = self.value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        v.parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .map(Some)
            .ok_or_else(|| self.bad(v, "an integer >= 1, or unset"))
    }

    /// An IPv4 or IPv6 address (brackets allowed), or `localhost`.
    pub(super) fn host(&self) -> Result<IpAddr, ConfigError> {
        match self.value.filter(|v| !v.is_empty()).unwrap_or(self.default) {
            "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
            h => h
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| self.bad(h, "an IPv4 or IPv6 address, or localhost")),
        }
    }

    /// A TCP port; unset or blank is `None` (no TCP listener).
    pub(super) fn port(&self) -> Result<Option<u16>, ConfigError> {
        match self.value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u16>()
                .map(Some)
                .map_err(|_| self.bad(v, "a port number from 0 to 65535 (0: any free port)")),
        }
    }

    /// A secret, untrimmed; unset or empty is `None`.
    pub(super) fn secret(&self) -> Result<Option<String>, ConfigError> {
        Ok(self.value.filter(|t| !t.is_empty()).map(str::to_string))
    }
}

/// A value as written to `status/<VAR>`.
pub(super) trait Effective {
    /// The text of the file.
    fn effective(&self) -> String;
}

macro_rules! effective_by_to_string {
    ($($ty:ty),*) => {
        $(impl Effective for $ty {
            fn effective(&self) -> String {
                self.to_string()
            }
        })*
    };
}

effective_by_to_string!(usize, u64, f64, bool, IpAddr);

impl Effective for PathBuf {
    fn effective(&self) -> String {
        self.display().to_string()
    }
}

impl Effective for OsString {
    fn effective(&self) -> String {
        self.to_string_lossy().into_owned()
    }
}

impl Effective for RotationMode {
    fn effective(&self) -> String {
        match self {
            RotationMode::Days => "days".into(),
            RotationMode::Size => "size".into(),
        }
    }
}

impl Effective for RestartPolicy {
    fn effective(&self) -> String {
        self.as_str().into()
    }
}

/// The value, or empty when unset.
impl Effective for Option<Duration> {
    fn effective(&self) -> String {
        self.map(|d| d.effective()).unwrap_or_default()
    }
}

/// The value, or empty when unset.
impl Effective for Option<u64> {
    fn effective(&self) -> String {
        self.map(|n| n.to_string()).unwrap_or_default()
    }
}

impl Effective for Duration {
    fn effective(&self) -> String {
        format!("{}", self.as_secs_f64())
    }
}

/// The port, or empty when there is no TCP listener.
impl Effective for Option<u16> {
    fn effective(&self) -> String {
        self.map(|p| p.to_string()).unwrap_or_default()
    }
}

/// The token itself is not written out: a file of it would leak it to anyone who can read the
/// work directory. `(set)` or empty.
impl Effective for Option<String> {
    fn effective(&self) -> String {
        if self.is_some() {
            "(set)".into()
        } else {
            String::new()
        }
    }
}
