//! The configuration: every environment variable of SPEC §2, parsed and checked before anything
//! starts.
//!
//! A bad value is one [`ConfigError`] line naming the variable, the value and what is allowed;
//! `main` turns it into exit status 2 without starting ffmpeg. Parsing takes the variables as an
//! argument so it is tested without touching the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A bad environment value: what failed, the value, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value for {var}: {value:?}; allowed: {allowed}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

/// How log files are rotated (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    Days,
    Size,
}

/// The whole configuration, every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub workdir: PathBuf,
    pub ffmpeg_bin: OsString,
    pub progress_buffer_len: usize,
    pub stdout_buffer_len: usize,
    pub no_file_log: bool,
    pub log_rotation_mode: RotationMode,
    pub log_rotation_days: u64,
    pub log_rotation_max_kbytes: u64,
    pub log_rotation_backup: usize,
    pub is_debug: bool,
    pub manager_start_delay: Duration,
    pub encoding_check_start_delay: Duration,
    pub encoding_disable_check: bool,
    pub encoding_min_speed: f64,
    pub encoding_delta_speed: f64,
    pub encoding_delta_fps: f64,
    pub encoding_min_base_fps: f64,
    pub encoding_max_error_time: Duration,
    pub encoding_max_stdout_stuck_time: Duration,
    pub encoding_rate_window: Duration,
    pub stop_timeout: Duration,
    pub http_host: IpAddr,
    pub http_port: Option<u16>,
    pub api_token: Option<String>,
    pub exit_code_passthrough: bool,
}

/// One variable of the table: its name, its default as text, and what it means (for `--help`).
pub struct VarDoc {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every variable of SPEC §2 with its default, in the order of the contract.
pub const VARS: &[VarDoc] = &[
    VarDoc {
        name: "WORKDIR",
        default: "/tmp/ff_wrapper",
        meaning: "the work directory (api.sock, pipes/, logs/, status/)",
    },
    VarDoc {
        name: "FFMPEG_BIN",
        default: "ffmpeg",
        meaning: "the ffmpeg to run (looked up in PATH)",
    },
    VarDoc {
        name: "PROGRESS_BUFFER_LEN",
        default: "100000",
        meaning: "progress blocks kept in memory (>= 1)",
    },
    VarDoc {
        name: "STDOUT_BUFFER_LEN",
        default: "100000",
        meaning: "ffmpeg output lines kept in memory (>= 1)",
    },
    VarDoc {
        name: "NO_FILE_LOG",
        default: "false",
        meaning: "write no log files at all",
    },
    VarDoc {
        name: "LOG_ROTATION_MODE",
        default: "days",
        meaning: "days or size",
    },
    VarDoc {
        name: "LOG_ROTATION_DAYS",
        default: "1",
        meaning: "days mode: rotate a file this many days old (>= 1)",
    },
    VarDoc {
        name: "LOG_ROTATION_MAX_KBYTES",
        default: "25000",
        meaning: "size mode: no file grows past this many KiB (>= 1)",
    },
    VarDoc {
        name: "LOG_ROTATION_BACKUP",
        default: "5",
        meaning: "rotated files kept per log (>= 0)",
    },
    VarDoc {
        name: "IS_DEBUG",
        default: "false",
        meaning: "debug-level wrapperd logs",
    },
    VarDoc {
        name: "MANAGER_START_DELAY",
        default: "5",
        meaning: "seconds after start before the manager's checks run",
    },
    VarDoc {
        name: "ENCODING_CHECK_START_DELAY",
        default: "55",
        meaning: "seconds after ffmpeg starts before the encoding checks run",
    },
    VarDoc {
        name: "ENCODING_DISABLE_CHECK",
        default: "false",
        meaning: "no encoding checks at all",
    },
    VarDoc {
        name: "ENCODING_MIN_SPEED",
        default: "0.85",
        meaning: "speed below which the encode is failing",
    },
    VarDoc {
        name: "ENCODING_DELTA_SPEED",
        default: "0.2",
        meaning: "subtracted from a first speed already below the minimum",
    },
    VarDoc {
        name: "ENCODING_DELTA_FPS",
        default: "10",
        meaning: "subtracted from the base fps to get the minimum fps",
    },
    VarDoc {
        name: "ENCODING_MIN_BASE_FPS",
        default: "14",
        meaning: "a base fps below this is itself failing",
    },
    VarDoc {
        name: "ENCODING_MAX_ERROR_TIME",
        default: "10",
        meaning: "seconds the encode may stay failing before it is stopped",
    },
    VarDoc {
        name: "ENCODING_MAX_STDOUT_STUCK_TIME",
        default: "15",
        meaning: "seconds without output or progress before it is stopped",
    },
    VarDoc {
        name: "ENCODING_RATE_WINDOW",
        default: "10",
        meaning: "seconds over which current fps/speed are measured; 0: ffmpeg's own",
    },
    VarDoc {
        name: "STOP_TIMEOUT",
        default: "10",
        meaning: "seconds a graceful stop may take before ffmpeg is killed",
    },
    VarDoc {
        name: "HTTP_HOST",
        default: "127.0.0.1",
        meaning: "TCP address of the API (only with HTTP_PORT)",
    },
    VarDoc {
        name: "HTTP_PORT",
        default: "unset",
        meaning: "TCP port of the API; unset: no TCP; 0: any free port",
    },
    VarDoc {
        name: "API_TOKEN",
        default: "unset",
        meaning: "bearer token required on TCP (except /healthz)",
    },
    VarDoc {
        name: "EXIT_CODE_PASSTHROUGH",
        default: "false",
        meaning: "exit with ffmpeg's own status",
    },
];

/// Reads the variables the configuration needs out of `vars`.
struct Env(HashMap<String, String>);

impl Env {
    fn get(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(String::as_str)
    }

    fn text(&self, var: &'static str, default: &str) -> String {
        self.get(var)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_string()
    }

    fn bool(&self, var: &'static str) -> bool {
        match self.get(var) {
            None => false,
            Some(v) => {
                let v = v.trim().to_ascii_lowercase();
                !matches!(v.as_str(), "" | "0" | "false" | "no" | "off")
            }
        }
    }

    /// An unsigned integer `>= min`; unset or empty gives `default`.
    fn uint(
        &self,
        var: &'static str,
        default: u64,
        min: u64,
        allowed: &'static str,
    ) -> Result<u64, ConfigError> {
        match self.get(var).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&n| n >= min)
                .ok_or_else(|| ConfigError {
                    var,
                    value: v.to_string(),
                    allowed,
                }),
        }
    }

    /// A finite number `>= 0`; unset or empty gives `default`.
    fn number(&self, var: &'static str, default: f64) -> Result<f64, ConfigError> {
        match self.get(var).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| ConfigError {
                    var,
                    value: v.to_string(),
                    allowed: "a number >= 0 (fractions allowed)",
                }),
        }
    }

    fn seconds(&self, var: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let s = self.number(var, default)?;
        Duration::try_from_secs_f64(s).map_err(|_| ConfigError {
            var,
            value: self.get(var).unwrap_or_default().to_string(),
            allowed: "a number of seconds >= 0 (fractions allowed)",
        })
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        }))
    }

    /// Reads the configuration from `vars`; unknown variables are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env = Env(vars.into_iter().collect());
        let log_rotation_mode = match env.get("LOG_ROTATION_MODE").map(str::trim) {
            None | Some("") => RotationMode::Days,
            Some(v) if v.eq_ignore_ascii_case("days") => RotationMode::Days,
            Some(v) if v.eq_ignore_ascii_case("size") => RotationMode::Size,
            Some(v) => {
                return Err(ConfigError {
                    var: "LOG_ROTATION_MODE",
                    value: v.to_string(),
                    allowed: "days or size",
                })
            }
        };
        let http_host = env.text("HTTP_HOST", "127.0.0.1");
        let http_host = match http_host.as_str() {
            "localhost" => IpAddr::from([127, 0, 0, 1]),
            h => h
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| ConfigError {
                    var: "HTTP_HOST",
                    value: h.to_string(),
                    allowed: "an IPv4 or IPv6 address, or localhost",
                })?,
        };
        let http_port = match env
            .get("HTTP_PORT")
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(v) => Some(v.parse::<u16>().map_err(|_| ConfigError {
                var: "HTTP_PORT",
                value: v.to_string(),
                allowed: "a port number from 0 to 65535 (0: any free port)",
            })?),
        };
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Config {
            workdir: PathBuf::from(env.text("WORKDIR", "/tmp/ff_wrapper")),
            ffmpeg_bin: OsString::from(env.text("FFMPEG_BIN", "ffmpeg")),
            progress_buffer_len: as_usize(env.uint(
                "PROGRESS_BUFFER_LEN",
                100_000,
                1,
                "an integer >= 1",
            )?),
            stdout_buffer_len: as_usize(env.uint(
                "STDOUT_BUFFER_LEN",
                100_000,
                1,
                "an integer >= 1",
            )?),
            no_file_log: env.bool("NO_FILE_LOG"),
            log_rotation_mode,
            log_rotation_days: env.uint("LOG_ROTATION_DAYS", 1, 1, "an integer >= 1")?,
            log_rotation_max_kbytes: env.uint(
                "LOG_ROTATION_MAX_KBYTES",
                25_000,
                1,
                "an integer >= 1",
            )?,
            log_rotation_backup: as_usize(env.uint(
                "LOG_ROTATION_BACKUP",
                5,
                0,
                "an integer >= 0",
            )?),
            is_debug: env.bool("IS_DEBUG"),
            manager_start_delay: env.seconds("MANAGER_START_DELAY", 5.0)?,
            encoding_check_start_delay: env.seconds("ENCODING_CHECK_START_DELAY", 55.0)?,
            encoding_disable_check: env.bool("ENCODING_DISABLE_CHECK"),
            encoding_min_speed: env.number("ENCODING_MIN_SPEED", 0.85)?,
            encoding_delta_speed: env.number("ENCODING_DELTA_SPEED", 0.2)?,
            encoding_delta_fps: env.number("ENCODING_DELTA_FPS", 10.0)?,
            encoding_min_base_fps: env.number("ENCODING_MIN_BASE_FPS", 14.0)?,
            encoding_max_error_time: env.seconds("ENCODING_MAX_ERROR_TIME", 10.0)?,
            encoding_max_stdout_stuck_time: env.seconds("ENCODING_MAX_STDOUT_STUCK_TIME", 15.0)?,
            encoding_rate_window: env.seconds("ENCODING_RATE_WINDOW", 10.0)?,
            stop_timeout: env.seconds("STOP_TIMEOUT", 10.0)?,
            http_host,
            http_port,
            api_token: env
                .get("API_TOKEN")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            exit_code_passthrough: env.bool("EXIT_CODE_PASSTHROUGH"),
        })
    }

    /// The effective value of every variable, for `status/<VAR>` files. The token is not
    /// written out: a file of it would leak it to anyone who can read the work directory.
    pub fn effective_values(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| format!("{}", d.as_secs_f64());
        vec![
            ("WORKDIR", self.workdir.display().to_string()),
            ("FFMPEG_BIN", self.ffmpeg_bin.to_string_lossy().into_owned()),
            ("PROGRESS_BUFFER_LEN", self.progress_buffer_len.to_string()),
            ("STDOUT_BUFFER_LEN", self.stdout_buffer_len.to_string()),
            ("NO_FILE_LOG", self.no_file_log.to_string()),
            (
                "LOG_ROTATION_MODE",
                match self.log_rotation_mode {
                    RotationMode::Days => "days".into(),
                    RotationMode::Size => "size".into(),
                },
            ),
            ("LOG_ROTATION_DAYS", self.log_rotation_days.to_string()),
            (
                "LOG_ROTATION_MAX_KBYTES",
                self.log_rotation_max_kbytes.to_string(),
            ),
            ("LOG_ROTATION_BACKUP", self.log_rotation_backup.to_string()),
            ("IS_DEBUG", self.is_debug.to_string()),
            ("MANAGER_START_DELAY", secs(self.manager_start_delay)),
            (
                "ENCODING_CHECK_START_DELAY",
                secs(self.encoding_check_start_delay),
            ),
            (
                "ENCODING_DISABLE_CHECK",
                self.encoding_disable_check.to_string(),
            ),
            ("ENCODING_MIN_SPEED", self.encoding_min_speed.to_string()),
            (
                "ENCODING_DELTA_SPEED",
                self.encoding_delta_speed.to_string(),
            ),
            ("ENCODING_DELTA_FPS", self.encoding_delta_fps.to_string()),
            (
                "ENCODING_MIN_BASE_FPS",
                self.encoding_min_base_fps.to_string(),
            ),
            (
                "ENCODING_MAX_ERROR_TIME",
                secs(self.encoding_max_error_time),
            ),
            (
                "ENCODING_MAX_STDOUT_STUCK_TIME",
                secs(self.encoding_max_stdout_stuck_time),
            ),
            ("ENCODING_RATE_WINDOW", secs(self.encoding_rate_window)),
            ("STOP_TIMEOUT", secs(self.stop_timeout)),
            ("HTTP_HOST", self.http_host.to_string()),
            (
                "HTTP_PORT",
                self.http_port.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                "API_TOKEN",
                if self.api_token.is_some() {
                    "(set)".into()
                } else {
                    String::new()
                },
            ),
            (
                "EXIT_CODE_PASSTHROUGH",
                self.exit_code_passthrough.to_string(),
            ),
        ]
    }

    /// `--help`: usage and every variable with its default.
    pub fn usage() -> String {
        let mut s = String::from(
            "usage: wrapperd [FFMPEG ARGS...]\n\n\
             Runs ffmpeg with the given arguments (plus -progress into WORKDIR/pipes/progress),\n\
             keeps its logs, stops the encode when it fails or stalls, and serves an HTTP API on\n\
             WORKDIR/api.sock.\n\n\
             wrapperd --help      this text\n\
             wrapperd --version   the version\n\n\
             Environment variables (default in brackets):\n",
        );
        for v in VARS {
            s.push_str(&format!("  {:<31} [{}] {}\n", v.name, v.default, v.meaning));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.workdir, PathBuf::from("/tmp/ff_wrapper"));
        assert_eq!(c.progress_buffer_len, 100_000);
        assert_eq!(c.log_rotation_mode, RotationMode::Days);
        assert_eq!(c.log_rotation_backup, 5);
        assert_eq!(c.encoding_check_start_delay, Duration::from_secs(55));
        assert_eq!(c.encoding_min_speed, 0.85);
        assert_eq!(c.http_port, None);
        assert_eq!(c.http_host.to_string(), "127.0.0.1");
        assert!(!c.no_file_log && !c.exit_code_passthrough);
    }

    #[test]
    fn booleans() {
        for v in ["", "0", "false", "No", "OFF", "FALSE"] {
            assert!(!cfg(&[("NO_FILE_LOG", v)]).unwrap().no_file_log, "{v}");
        }
        for v in ["1", "true", "yes", "on", "anything"] {
            assert!(cfg(&[("NO_FILE_LOG", v)]).unwrap().no_file_log, "{v}");
        }
    }

    #[test]
    fn fractional_seconds() {
        let c = cfg(&[
            ("ENCODING_MAX_ERROR_TIME", "0.5"),
            ("ENCODING_RATE_WINDOW", "0"),
        ])
        .unwrap();
        assert_eq!(c.encoding_max_error_time, Duration::from_millis(500));
        assert_eq!(c.encoding_rate_window, Duration::ZERO);
    }

    #[test]
    fn every_bad_value_names_the_variable() {
        let bad: &[(&str, &str)] = &[
            ("PROGRESS_BUFFER_LEN", "0"),
            ("PROGRESS_BUFFER_LEN", "x"),
            ("STDOUT_BUFFER_LEN", "-1"),
            ("LOG_ROTATION_MODE", "weeks"),
            ("LOG_ROTATION_DAYS", "0"),
            ("LOG_ROTATION_MAX_KBYTES", "1.5"),
            ("LOG_ROTATION_BACKUP", "-1"),
            ("MANAGER_START_DELAY", "NaN"),
            ("ENCODING_CHECK_START_DELAY", "-3"),
            ("ENCODING_MIN_SPEED", "fast"),
            ("ENCODING_DELTA_SPEED", "inf"),
            ("ENCODING_DELTA_FPS", "-1"),
            ("ENCODING_MIN_BASE_FPS", "abc"),
            ("ENCODING_MAX_ERROR_TIME", "1e400"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "-0.1"),
            ("ENCODING_RATE_WINDOW", "ten"),
            ("STOP_TIMEOUT", "-"),
            ("HTTP_PORT", "70000"),
            ("HTTP_HOST", "not a host"),
        ];
        for (var, value) in bad {
            let e = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, *var);
            let line = e.to_string();
            assert!(
                line.contains(var) && line.contains(value) && line.contains("allowed"),
                "{line}"
            );
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn every_documented_variable_has_an_effective_value() {
        let c = cfg(&[]).unwrap();
        let eff: Vec<_> = c.effective_values().into_iter().map(|(k, _)| k).collect();
        let doc: Vec<_> = VARS.iter().map(|v| v.name).collect();
        assert_eq!(eff, doc);
        let usage = Config::usage();
        for v in VARS {
            assert!(usage.contains(v.name) && usage.contains(v.default));
        }
    }
}
