//! The configuration: every environment variable of SPEC §2, parsed and checked before anything
//! starts.
//!
//! One table, the `vars!` invocation below, lists each variable once: its field, its name,
//! its default as text, its parser and what it means, with one good and some bad example values
//! for its test. From it come the [`Config`] struct, [`Config::from_vars`], [`Config::default`],
//! the `--help` text ([`Config::usage`]), the `status/` values ([`Config::effective_values`])
//! and [`VARS`], the list other code and tests use. The parsers themselves are in `parse`.
//!
//! A bad value is one [`ConfigError`] line naming the variable, the value and what is allowed;
//! `main` turns it into exit status 2 without starting ffmpeg. Parsing takes the variables as an
//! argument so it is tested without touching the process environment.
//!
//! [`load`] is what `main` calls: the configuration, the user's arguments checked (a `-progress`
//! of their own is refused, [`LoadError::Progress`]), and the warnings of `warn` (a switch given
//! as "any string", a variable that looks like a misspelt one of ours), each one line.

mod events;
mod parse;
mod warn;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use events::EventSet;
use parse::{Effective, Raw};

/// A bad environment value: what failed, the value, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value for {var}: {value:?}; allowed: {allowed}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value as found (trimmed where the variable's kind trims).
    pub value: String,
    /// What the variable accepts.
    pub allowed: &'static str,
}

/// What stops wrapperd before anything starts (exit status 2), as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A bad environment value.
    #[error(transparent)]
    Value(#[from] ConfigError),
    /// The user's arguments hold their own `-progress` (argument `index`, counted from 1).
    #[error(
        "ffmpeg argument {index} is -progress: wrapperd adds its own -progress for the manager \
         (a second one would take the progress stream away from it); remove it"
    )]
    Progress {
        /// Its place among the user's arguments, from 1.
        index: usize,
    },
}

/// The configuration and what to warn about, once everything is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// One line each, for stderr (and the log).
    pub warnings: Vec<String>,
}

/// Reads and checks the configuration from `vars` and the user's ffmpeg arguments `args`.
pub fn load(
    vars: impl IntoIterator<Item = (String, String)>,
    args: &[OsString],
) -> Result<Loaded, LoadError> {
    let env: HashMap<String, String> = vars.into_iter().collect();
    let config = Config::from_map(&env)?;
    if let Some(i) = args.iter().position(|a| a == "-progress") {
        return Err(LoadError::Progress { index: i + 1 });
    }
    Ok(Loaded {
        config,
        warnings: warn::warnings(&env),
    })
}

/// [`load`] from the process environment.
pub fn load_env(args: &[OsString]) -> Result<Loaded, LoadError> {
    let vars = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    load(vars, args)
}

/// How log files are rotated (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    /// A new file when the current one is `LOG_ROTATION_DAYS` days old.
    Days,
    /// A new file before the current one grows past `LOG_ROTATION_MAX_KBYTES`.
    Size,
}

/// What happens when a run ends (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Exit after the run (the outer restart policy takes over).
    Never,
    /// A new run when the manager stopped ffmpeg or it ended with a non-zero status or a signal.
    OnFailure,
    /// Also after ffmpeg ended by itself with status 0.
    Always,
}

impl RestartPolicy {
    /// The word of `RESTART`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// One variable of the table: its name, its default as text, and what it means (for `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarDoc {
    /// The environment variable's name.
    pub name: &'static str,
    /// Its default as `--help` shows it (`unset` when there is none).
    pub default: &'static str,
    /// What it means, in a few words.
    pub meaning: &'static str,
}

/// A variable's examples for its test: one good value with its effective value, and bad values.
#[cfg(test)]
struct Examples {
    /// The variable's name.
    name: &'static str,
    /// A value it accepts, and what `status/<VAR>` then holds.
    ok: (&'static str, &'static str),
    /// Values it refuses.
    bad: &'static [&'static str],
}

/// Generates everything the module doc lists from one table. Per variable:
/// `field: Type = "NAME" ["default"] parser(args), "meaning", ok "in" => "effective", bad [...];`
/// where `parser` is a method of [`Raw`] returning `Result<Type, ConfigError>`.
macro_rules! vars {
    ($(
        $field:ident : $ty:ty = $name:literal [$default:literal] $parse:ident ( $($arg:expr),* ),
        $meaning:literal, ok $ok_in:literal => $ok_out:literal, bad [$($bad:literal),*];
    )*) => {
        /// The whole configuration, every value checked.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $(
                #[doc = concat!("`", $name, "` (default `", $default, "`): ", $meaning, ".")]
                pub $field: $ty,
            )*
        }

        /// Every variable of SPEC §2 with its default, in the order of the contract.
        pub const VARS: &[VarDoc] = &[
            $(VarDoc { name: $name, default: $default, meaning: $meaning },)*
        ];

        #[cfg(test)]
        const EXAMPLES: &[Examples] = &[
            $(Examples { name: $name, ok: ($ok_in, $ok_out), bad: &[$($bad),*] },)*
        ];

        impl Config {
            /// Reads the configuration from `vars`; unknown variables are ignored. The first
            /// bad value, in table order, is the error.
            pub fn from_vars(
                vars: impl IntoIterator<Item = (String, String)>,
            ) -> Result<Config, ConfigError> {
                Config::from_map(&vars.into_iter().collect())
            }

            fn from_map(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
                Ok(Config {
                    $($field: Raw {
                        var: $name,
                        value: env.get($name).map(String::as_str),
                        default: $default,
                    }
                    .$parse($($arg),*)?,)*
                })
            }

            /// The effective value of every variable, for `status/<VAR>` files, in table order.
            /// The token is not written out: a file of it would leak it to anyone who can read
            /// the work directory.
            pub fn effective_values(&self) -> Vec<(&'static str, String)> {
                vec![$(($name, self.$field.effective()),)*]
            }
        }
    };
}

vars! {
    workdir: PathBuf = "WORKDIR" ["/tmp/ff_wrapper"] text(),
        "the work directory (api.sock, pipes/, logs/, status/)",
        ok "/srv/wd" => "/srv/wd", bad [];
    ffmpeg_bin: OsString = "FFMPEG_BIN" ["ffmpeg"] text(),
        "the ffmpeg to run (looked up in PATH)",
        ok "/usr/bin/ffmpeg" => "/usr/bin/ffmpeg", bad [];
    progress_buffer_len: usize = "PROGRESS_BUFFER_LEN" ["100000"] count(1, "an integer >= 1"),
        "progress blocks kept in memory (>= 1)",
        ok " 7 " => "7", bad ["0", "x", "-1", "1.5"];
    stdout_buffer_len: usize = "STDOUT_BUFFER_LEN" ["100000"] count(1, "an integer >= 1"),
        "ffmpeg output lines kept in memory (>= 1)",
        ok "1" => "1", bad ["0", "ten", "-1"];
    no_file_log: bool = "NO_FILE_LOG" ["false"] lenient_flag(),
        "write no log files at all",
        ok "anything" => "true", bad [];
    log_rotation_mode: RotationMode = "LOG_ROTATION_MODE" ["days"] rotation(),
        "days or size",
        ok " SIZE " => "size", bad ["weeks", "weekly", "day"];
    log_rotation_days: u64 = "LOG_ROTATION_DAYS" ["1"] count(1, "an integer >= 1"),
        "days mode: rotate a file this many days old (>= 1)",
        ok "3" => "3", bad ["0", "x"];
    log_rotation_max_kbytes: u64 =
        "LOG_ROTATION_MAX_KBYTES" ["25000"] count(1, "an integer >= 1"),
        "size mode: no file grows past this many KiB (>= 1)",
        ok "64" => "64", bad ["0", "1.5", "-5"];
    log_rotation_backup: usize = "LOG_ROTATION_BACKUP" ["5"] count(0, "an integer >= 0"),
        "rotated files kept per log (>= 0)",
        ok "0" => "0", bad ["-1", "x"];
    is_debug: bool = "IS_DEBUG" ["false"] lenient_flag(),
        "debug-level wrapperd logs",
        ok "ON" => "true", bad [];
    manager_start_delay: Duration = "MANAGER_START_DELAY" ["5"] seconds(),
        "seconds after start before the manager's checks run",
        ok "0.25" => "0.25", bad ["NaN", "-1", "1s"];
    encoding_check_start_delay: Duration = "ENCODING_CHECK_START_DELAY" ["55"] seconds(),
        "seconds after ffmpeg starts before the encoding checks run",
        ok "0" => "0", bad ["-3", "-1"];
    encoding_disable_check: bool = "ENCODING_DISABLE_CHECK" ["false"] flag(),
        "no encoding checks at all",
        ok "yes" => "true", bad ["flase", "2", "y", "enabled"];
    encoding_min_speed: f64 = "ENCODING_MIN_SPEED" ["0.85"] number(),
        "speed below which the encode is failing",
        ok "0.5" => "0.5", bad ["fast", "-0.1"];
    encoding_delta_speed: f64 = "ENCODING_DELTA_SPEED" ["0.2"] number(),
        "subtracted from a first speed already below the minimum",
        ok "0" => "0", bad ["inf", "-0.1"];
    encoding_delta_fps: f64 = "ENCODING_DELTA_FPS" ["10"] number(),
        "subtracted from the base fps to get the minimum fps",
        ok "2.5" => "2.5", bad ["-1", "x"];
    encoding_min_base_fps: f64 = "ENCODING_MIN_BASE_FPS" ["14"] number(),
        "a base fps below this is itself failing",
        ok "20" => "20", bad ["abc", "-14"];
    encoding_max_error_time: Duration = "ENCODING_MAX_ERROR_TIME" ["10"] seconds(),
        "seconds the encode may stay failing before it is stopped",
        ok "0.5" => "0.5", bad ["1e400", "inf", "1e300"];
    encoding_max_stdout_stuck_time: Duration =
        "ENCODING_MAX_STDOUT_STUCK_TIME" ["15"] seconds(),
        "seconds without output or progress before it is stopped",
        ok "2" => "2", bad ["-0.1", "soon"];
    encoding_rate_window: Duration = "ENCODING_RATE_WINDOW" ["10"] seconds(),
        "seconds over which current fps/speed are measured; 0: ffmpeg's own",
        ok "0" => "0", bad ["ten", "-10"];
    stop_timeout: Duration = "STOP_TIMEOUT" ["10"] seconds(),
        "seconds a graceful stop may take before ffmpeg is killed",
        ok "1.5" => "1.5", bad ["-", "1s"];
    stop_input_grace: Duration = "STOP_INPUT_GRACE" ["1"] seconds(),
        "seconds into a stop before ffmpeg's network inputs are ended; 0: never (SPEC 9)",
        ok "0" => "0", bad ["-1", "1s", "NaN"];
    http_host: IpAddr = "HTTP_HOST" ["127.0.0.1"] host(),
        "TCP address of the API (only with HTTP_PORT)",
        ok "[::1]" => "::1", bad ["not a host", "nowhere host", "localhost "];
    http_port: Option<u16> = "HTTP_PORT" ["unset"] port(),
        "TCP port of the API; unset: no TCP; 0: any free port",
        ok " 0 " => "0", bad ["70000", "65536", "-1"];
    api_token: Option<String> = "API_TOKEN" ["unset"] secret(),
        "bearer token required on TCP (except /healthz and /livez)",
        ok "s3cret" => "(set)", bad [];
    exit_code_passthrough: bool = "EXIT_CODE_PASSTHROUGH" ["false"] flag(),
        "exit with ffmpeg's own status",
        ok "1" => "true", bad ["2", "-1", "ture"];
    restart: RestartPolicy = "RESTART" ["never"] restart(),
        "never, on-failure or always: start a new run when one ends (SPEC 10)",
        ok " On-Failure " => "on-failure", bad ["sometimes", "onfailure", "1"];
    restart_delay: Duration = "RESTART_DELAY" ["1"] seconds(),
        "seconds before the first restart; doubled after each one",
        ok "0.001" => "0.001", bad ["-1", "soon"];
    restart_max_delay: Duration = "RESTART_MAX_DELAY" ["60"] seconds(),
        "the longest restart delay, in seconds",
        ok "8" => "8", bad ["-8", "x"];
    restart_reset_after: Duration = "RESTART_RESET_AFTER" ["60"] seconds(),
        "seconds of health (ok) after which the delay is back to RESTART_DELAY",
        ok "2.5" => "2.5", bad ["-2", "y"];
    restart_limit: u64 = "RESTART_LIMIT" ["0"] count(0, "an integer >= 0"),
        "give up after more restarts than this within RESTART_WINDOW; 0: never",
        ok "3" => "3", bad ["-1", "1.5", "x"];
    restart_window: Duration = "RESTART_WINDOW" ["600"] seconds(),
        "seconds over which RESTART_LIMIT counts restarts",
        ok "60" => "60", bad ["-1", "z"];
    max_runtime: Option<Duration> = "MAX_RUNTIME" ["unset"] positive_seconds(),
        "stop each run gracefully after this many seconds (> 0)",
        ok "3600" => "3600", bad ["0", "-1", "1h"];
    ffmpeg_max_rss_mb: Option<u64> = "FFMPEG_MAX_RSS_MB" ["unset"] optional_count(),
        "stop ffmpeg (reason memory) when its resident MiB stay above this",
        ok "512" => "512", bad ["0", "-5", "1.5", "lots"];
    ffmpeg_log_to_stderr: bool = "FFMPEG_LOG_TO_STDERR" ["false"] flag(),
        "also write ffmpeg's output lines (not its stats) to wrapperd's stderr",
        ok " On " => "true", bad ["yess", "stderr"];
    api_control_token: Option<String> = "API_CONTROL_TOKEN" ["unset"] secret(),
        "bearer token for POST /stop and /restart on TCP (also grants reading)",
        ok "k3y" => "(set)", bad [];
    api_read_only: bool = "API_READ_ONLY" ["false"] flag(),
        "refuse POST /stop and /restart on every listener (403)",
        ok "TRUE" => "true", bad ["maybe", "read-only", "t"];
    event_hook: Option<String> = "EVENT_HOOK" ["unset"] secret(),
        "command run with /bin/sh -c on every event, FFW_* in its environment (SPEC 11)",
        ok "logger -t ffw" => "(set)", bad [];
    event_hook_timeout: Duration = "EVENT_HOOK_TIMEOUT" ["10"] seconds(),
        "seconds a hook may run before it is killed with its process group",
        ok "2.5" => "2.5", bad ["-1", "soon"];
    webhook_url: Option<String> = "WEBHOOK_URL" ["unset"] webhook_url(),
        "http(s) URL the events of WEBHOOK_EVENTS are POSTed to as JSON",
        ok "https://hooks.example/T0/B1" => "(set)", bad ["ftp://x/y", "hooks.example", "http://"];
    webhook_events: EventSet =
        "WEBHOOK_EVENTS" ["failing,stalled,exited,restarting,gave_up"] event_set(),
        "events and health words sent to WEBHOOK_URL (plus ok after one of them)",
        ok " Stalled, EXITED " => "stalled,exited", bad ["stale", "ok,,failing"];
    webhook_token: Option<String> = "WEBHOOK_TOKEN" ["unset"] secret(),
        "bearer token sent to WEBHOOK_URL",
        ok "xoxb" => "(set)", bad [];
    webhook_retry_for: Duration = "WEBHOOK_RETRY_FOR" ["120"] seconds(),
        "seconds a failed webhook delivery is retried (connection errors, timeouts, 5xx)",
        ok "5" => "5", bad ["-1", "2m"];
}

impl Default for Config {
    /// The defaults of SPEC §2: the table's default texts, parsed.
    fn default() -> Config {
        Config::from_vars(std::iter::empty()).expect("every default in the table parses")
    }
}

impl Config {
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

    fn effective(c: &Config, var: &str) -> String {
        let values = c.effective_values();
        values.into_iter().find(|(k, _)| *k == var).unwrap().1
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c, cfg(&[]).unwrap());
        assert_eq!(c.workdir, PathBuf::from("/tmp/ff_wrapper"));
        assert_eq!(c.ffmpeg_bin, OsString::from("ffmpeg"));
        assert_eq!(c.progress_buffer_len, 100_000);
        assert_eq!(c.stdout_buffer_len, 100_000);
        assert_eq!(c.log_rotation_mode, RotationMode::Days);
        assert_eq!(c.log_rotation_days, 1);
        assert_eq!(c.log_rotation_max_kbytes, 25_000);
        assert_eq!(c.log_rotation_backup, 5);
        assert_eq!(c.manager_start_delay, Duration::from_secs(5));
        assert_eq!(c.encoding_check_start_delay, Duration::from_secs(55));
        assert_eq!(c.encoding_min_speed, 0.85);
        assert_eq!(c.encoding_delta_speed, 0.2);
        assert_eq!(c.encoding_delta_fps, 10.0);
        assert_eq!(c.encoding_min_base_fps, 14.0);
        assert_eq!(c.encoding_max_error_time, Duration::from_secs(10));
        assert_eq!(c.encoding_max_stdout_stuck_time, Duration::from_secs(15));
        assert_eq!(c.encoding_rate_window, Duration::from_secs(10));
        assert_eq!(c.stop_timeout, Duration::from_secs(10));
        assert_eq!(c.stop_input_grace, Duration::from_secs(1));
        assert_eq!(c.http_port, None);
        assert_eq!(c.http_host.to_string(), "127.0.0.1");
        assert_eq!(c.api_token, None);
        assert!(!c.no_file_log && !c.is_debug && !c.encoding_disable_check);
        assert!(!c.exit_code_passthrough);
    }

    /// Each variable's good example is taken, and shows as its effective value; blank is the
    /// default; each bad example is one line naming the variable, the value and what is allowed.
    #[test]
    fn every_variable_takes_its_good_example_and_refuses_its_bad_ones() {
        let default = Config::default();
        for ex in EXAMPLES {
            let c = cfg(&[(ex.name, ex.ok.0)]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(effective(&c, ex.name), ex.ok.1, "{}={:?}", ex.name, ex.ok.0);
            assert_ne!(c, default, "{} example differs from the default", ex.name);
            assert_eq!(cfg(&[(ex.name, "")]).unwrap(), default, "{} empty", ex.name);
            for value in ex.bad {
                let e = cfg(&[(ex.name, value)]).unwrap_err();
                assert_eq!(e.var, ex.name);
                let line = e.to_string();
                assert!(
                    line.contains(ex.name) && line.contains(value) && line.contains("allowed"),
                    "{line}"
                );
                assert!(!line.contains('\n'));
            }
        }
    }

    /// The messages are a contract: these pin them byte for byte.
    #[test]
    fn bad_value_messages() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "PROGRESS_BUFFER_LEN",
                " 0 ",
                r#""0"; allowed: an integer >= 1"#,
            ),
            (
                "LOG_ROTATION_BACKUP",
                "-1",
                r#""-1"; allowed: an integer >= 0"#,
            ),
            (
                "LOG_ROTATION_MODE",
                " weeks",
                r#""weeks"; allowed: days or size"#,
            ),
            (
                "ENCODING_MIN_SPEED",
                "NaN",
                r#""NaN"; allowed: a number >= 0 (fractions allowed)"#,
            ),
            (
                "STOP_TIMEOUT",
                " 1e300",
                r#"" 1e300"; allowed: a number of seconds >= 0 (fractions allowed)"#,
            ),
            (
                "HTTP_HOST",
                " ::1",
                r#"" ::1"; allowed: an IPv4 or IPv6 address, or localhost"#,
            ),
            (
                "HTTP_PORT",
                "70000",
                r#""70000"; allowed: a port number from 0 to 65535 (0: any free port)"#,
            ),
            (
                "ENCODING_DISABLE_CHECK",
                " flase ",
                r#""flase"; allowed: 1, 0, true, false, yes, no, on or off (any case), or empty"#,
            ),
        ];
        for (var, value, tail) in cases {
            let line = cfg(&[(var, value)]).unwrap_err().to_string();
            assert_eq!(line, format!("bad value for {var}: {tail}"));
        }
    }

    #[test]
    fn booleans() {
        for var in ["ENCODING_DISABLE_CHECK", "NO_FILE_LOG", "API_READ_ONLY"] {
            for v in ["", "0", "false", "No", "OFF", "FALSE", " off ", "\t0\n"] {
                let c = cfg(&[(var, v)]).unwrap();
                assert_eq!(effective(&c, var), "false", "{var}={v:?}");
            }
            for v in ["1", "true", "yes", "on", " On ", "YES"] {
                let c = cfg(&[(var, v)]).unwrap();
                assert_eq!(effective(&c, var), "true", "{var}={v:?}");
            }
        }
        // A typo never flips a safety switch...
        for v in ["flase", "2", "-1", "y", "n", "tru", "enable", "0.0", "offf"] {
            let e = cfg(&[("ENCODING_DISABLE_CHECK", v)]).unwrap_err();
            assert_eq!(e.var, "ENCODING_DISABLE_CHECK", "{v}");
        }
        // ...but the two the seed promised to "any string" still take one (with a warning).
        for var in ["NO_FILE_LOG", "IS_DEBUG"] {
            let c = cfg(&[(var, "anything")]).unwrap();
            assert_eq!(effective(&c, var), "true", "{var}");
        }
    }

    #[test]
    fn load_refuses_a_progress_of_the_users_own_and_gives_the_warnings() {
        let vars = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let args = |a: &[&str]| -> Vec<OsString> { a.iter().map(OsString::from).collect() };
        let e = load(
            vars(&[]),
            &args(&["-i", "in", "-progress", "pipe:1", "out"]),
        )
        .unwrap_err();
        assert_eq!(e, LoadError::Progress { index: 3 });
        assert_eq!(
            e.to_string(),
            "ffmpeg argument 3 is -progress: wrapperd adds its own -progress for the manager \
             (a second one would take the progress stream away from it); remove it"
        );
        // A bad value comes first; values and names merely like -progress pass.
        let e = load(
            vars(&[("IS_DEBUG", ""), ("API_READ_ONLY", "maybe")]),
            &args(&["-progress"]),
        );
        assert!(matches!(
            e,
            Err(LoadError::Value(ConfigError {
                var: "API_READ_ONLY",
                ..
            }))
        ));
        let ok = load(
            vars(&[("NO_FILE_LOG", "please"), ("RESTART_DELY", "2")]),
            &args(&[
                "-i",
                "-progress.mp4",
                "-metadata",
                "title=-progress",
                "--progress",
            ]),
        )
        .unwrap();
        assert!(ok.config.no_file_log);
        assert_eq!(ok.warnings.len(), 2, "{:?}", ok.warnings);
        assert!(
            ok.warnings[1].contains("RESTART_DELAY"),
            "{:?}",
            ok.warnings
        );
    }

    #[test]
    fn texts_are_untrimmed_and_localhost_is_loopback() {
        let c = cfg(&[
            ("WORKDIR", " /a b "),
            ("API_TOKEN", " t "),
            ("HTTP_HOST", "localhost"),
        ])
        .unwrap();
        assert_eq!(c.workdir, PathBuf::from(" /a b "));
        assert_eq!(c.api_token.as_deref(), Some(" t "));
        assert_eq!(c.http_host.to_string(), "127.0.0.1");
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
    fn every_documented_variable_has_an_effective_value_and_a_help_line() {
        let c = Config::default();
        let eff: Vec<_> = c.effective_values().into_iter().map(|(k, _)| k).collect();
        let doc: Vec<_> = VARS.iter().map(|v| v.name).collect();
        assert_eq!(eff, doc);
        assert_eq!(doc.len(), 43);
        let usage = Config::usage();
        for v in VARS {
            let line = format!("  {:<31} [{}] {}\n", v.name, v.default, v.meaning);
            assert!(usage.contains(&line), "{line}");
        }
    }
}
