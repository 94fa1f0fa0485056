//! The warnings of SPEC §2: a value that is not quite right but still starts wrapperd, and a
//! variable that looks like one of wrapperd's but is not one (a misspelt name is silently
//! ignored otherwise, and the encode runs with the default the user meant to change).
//!
//! **The misspelt-variable rule.** A variable that is not one of the table's warns, naming the
//! variable it probably meant, when
//! 1. its name in capitals is a name of the table (`restart`: names are case-sensitive), or
//! 2. it is a *near miss* of a name of the table: at most 1 edit away from a name shorter than
//!    10 characters, 2 from one shorter than 20, 3 from a longer one (an edit is a letter
//!    inserted, deleted, replaced, or two neighbours swapped; compared in capitals), or
//! 3. it starts with one of wrapperd's own prefixes ([`families`]): a leading word (or two)
//!    that at least two variables of the table share, except the words other software uses
//!    for its own variables ([`FOREIGN_PREFIXES`]: `HTTP_` of proxies and Kubernetes service
//!    links, `API_`, `FFMPEG_` of ffmpeg itself and its images, `LOG_`, `NO_` …). Today these
//!    are `ENCODING_`, `EVENT_`, `LOG_ROTATION_`, `RESTART_`, `STOP_` and `WEBHOOK_`. The variable named is the one
//!    of that family sharing the most words with it, then the closest.
//!
//! Names that ordinary environments hold are never warned about ([`FOREIGN_NAMES`]), whatever
//! the rules above say: proxies (`HTTP_PROXY`, `http_proxy`, `NO_PROXY` …), ffmpeg's own
//! (`FFMPEG_DATADIR`, `FFREPORT`) and systemd's. The value of an unknown variable is never
//! printed (it could be a misspelt token).

use std::collections::HashMap;

use super::parse::{switch_word, BOOLEAN_WORDS};
use super::VARS;

/// Leading words other software uses for its own variables: not prefixes of wrapperd's alone.
pub(crate) const FOREIGN_PREFIXES: &[&str] = &[
    "API_",
    "EXIT_",
    "FFMPEG_",
    "HTTP_",
    "HTTPS_",
    "IS_",
    "LOG_",
    "MAX_",
    "NO_",
    "PROGRESS_",
    "STDOUT_",
];

/// Variables of ordinary environments that are never warned about, whatever their likeness.
pub(crate) const FOREIGN_NAMES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
    "HTTPS_PORT",
    "FFMPEG_DATADIR",
    "FFMPEG_PATH",
    "FFMPEG_VERSION",
    "FFREPORT",
    "NO_COLOR",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// The switches whose seed promised "any string" turns them on (SPEC §2's exceptions).
const LENIENT_FLAGS: &[&str] = &["NO_FILE_LOG", "IS_DEBUG"];

/// The warning lines for `env` (each one line), in a fixed order: lenient switches first, then
/// unknown variables by name.
pub(super) fn warnings(env: &HashMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for var in LENIENT_FLAGS {
        if let Some(v) = env.get(*var) {
            if switch_word(v.trim()).is_none() {
                out.push(format!(
                    "{var}={:?} is taken as true (a switch is one of {BOOLEAN_WORDS})",
                    v.trim()
                ));
            }
        }
    }
    let mut unknown: Vec<(&str, &str)> = env
        .keys()
        .filter_map(|name| suggestion(name).map(|meant| (name.as_str(), meant)))
        .collect();
    unknown.sort_unstable();
    out.extend(
        unknown.into_iter().map(|(name, meant)| {
            format!("unknown variable {name} is ignored; did you mean {meant}?")
        }),
    );
    out
}

/// The variable of the table that `name` probably meant, when `name` is not one of the table's
/// but looks like one (the rule in the module doc).
pub(crate) fn suggestion(name: &str) -> Option<&'static str> {
    let names = || VARS.iter().map(|v| v.name);
    if names().any(|n| n == name) {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    if FOREIGN_NAMES.contains(&upper.as_str()) {
        return None;
    }
    if let Some(same) = names().find(|n| *n == upper) {
        return Some(same);
    }
    // The closest name, if it is a near miss. A name whose length differs by more than the most
    // edits any name allows cannot be a near miss, nor closer than one: it is not measured
    // (this runs for every variable of the environment before ffmpeg starts).
    let near = names()
        .filter(|n| n.len().abs_diff(upper.len()) <= MOST_EDITS)
        .map(|n| (distance(upper.as_bytes(), n.as_bytes()), n))
        .min()
        .filter(|(d, n)| *d <= allowed_edits(n))
        .map(|(_, n)| n);
    if near.is_some() {
        return near;
    }
    let family = families()
        .into_iter()
        .filter(|f| upper.starts_with(f))
        .max_by_key(|f| f.len())?;
    // In a family, the name sharing the most words (`LOG_ROTATION_KBYTES`: `…_MAX_KBYTES`),
    // then the closest.
    let words: Vec<&str> = upper.split('_').collect();
    let shared = |n: &str| n.split('_').filter(|w| words.contains(w)).count();
    names().filter(|n| n.starts_with(&family)).min_by_key(|n| {
        let d = distance(upper.as_bytes(), n.as_bytes());
        (std::cmp::Reverse(shared(n)), d, *n)
    })
}

/// How many edits a near miss of `name` may have.
fn allowed_edits(name: &str) -> usize {
    match name.len() {
        0..10 => 1,
        10..20 => 2,
        _ => MOST_EDITS,
    }
}

/// The most edits [`allowed_edits`] allows any name.
const MOST_EDITS: usize = 3;

/// wrapperd's own prefixes: each leading word, or two, that at least two variables of the
/// table share, except [`FOREIGN_PREFIXES`] (`LOG_ROTATION_` stands for the foreign `LOG_`).
pub(crate) fn families() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in VARS {
        let words: Vec<&str> = v.name.split('_').collect();
        for n in 1..words.len().min(3) {
            let prefix = format!("{}_", words[..n].join("_"));
            let shared = VARS.iter().filter(|w| w.name.starts_with(&prefix)).count();
            if shared < 2 || out.contains(&prefix) {
                continue;
            }
            if FOREIGN_PREFIXES.contains(&prefix.as_str()) {
                continue;
            }
            if !out.iter().any(|f| prefix.starts_with(f.as_str())) {
                out.push(prefix);
            }
            break;
        }
    }
    out
}

/// Edits from `a` to `b`: letters inserted, deleted, replaced, or two neighbours swapped
/// (optimal string alignment distance).
pub(crate) fn distance(a: &[u8], b: &[u8]) -> usize {
    let (n, m) = (a.len(), b.len());
    // Rows i-2, i-1 and i of the table.
    let mut rows = vec![vec![0usize; m + 1]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        let (cur, prev, before) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[before][j - 2] + 1);
            }
            rows[cur][j] = d;
        }
    }
    rows[n % 3][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn distance_counts_edits_and_swaps() {
        let d = |a: &str, b: &str| distance(a.as_bytes(), b.as_bytes());
        assert_eq!(d("", ""), 0);
        assert_eq!(d("ABC", ""), 3);
        assert_eq!(d("", "AB"), 2);
        assert_eq!(d("ENCODING_MAX_ERRROR_TIME", "ENCODING_MAX_ERROR_TIME"), 1);
        assert_eq!(d("HTTP_PROT", "HTTP_PORT"), 1);
        assert_eq!(d("KITTEN", "SITTING"), 3);
        assert_eq!(d("HTTP_PROXY", "HTTP_PORT"), 3);
    }

    #[test]
    fn near_misses_name_the_variable_meant() {
        for (typo, meant) in [
            ("ENCODING_MAX_ERRROR_TIME", "ENCODING_MAX_ERROR_TIME"),
            ("ENCODING_DISABLE_CHECKS", "ENCODING_DISABLE_CHECK"),
            ("ENCODNIG_MIN_SPEED", "ENCODING_MIN_SPEED"),
            ("HTTP_PROT", "HTTP_PORT"),
            ("WORK_DIR", "WORKDIR"),
            ("API_TOKENS", "API_TOKEN"),
            ("FFMPEG_MAX_RSS_MD", "FFMPEG_MAX_RSS_MB"),
            ("FFMPEG_LOG_TO_STDOUT", "FFMPEG_LOG_TO_STDERR"),
            ("NO_FILE_LOGS", "NO_FILE_LOG"),
            ("restart", "RESTART"),
            ("Http_Port", "HTTP_PORT"),
            ("RESTARTS", "RESTART"),
            // Prefix families: anything under wrapperd's own words.
            ("ENCODING_MAX_FPS", "ENCODING_DELTA_FPS"),
            ("RESTART_MAX_TRIES", "RESTART_MAX_DELAY"),
            ("LOG_ROTATION_KBYTES", "LOG_ROTATION_MAX_KBYTES"),
            ("STOP_GRACE", "STOP_INPUT_GRACE"),
        ] {
            assert_eq!(suggestion(typo), Some(meant), "{typo}");
        }
    }

    /// What real environments hold (shells, containers, systemd, Kubernetes, CI, ffmpeg
    /// images) never warns.
    #[test]
    fn ordinary_environments_do_not_warn() {
        for name in [
            "PATH",
            "HOME",
            "USER",
            "SHELL",
            "TERM",
            "LANG",
            "LC_ALL",
            "PWD",
            "OLDPWD",
            "HOSTNAME",
            "SHLVL",
            "LOGNAME",
            "MAIL",
            "DISPLAY",
            "TMPDIR",
            "TZ",
            "EDITOR",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
            "FTP_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "all_proxy",
            "HTTPS_PORT",
            "FFMPEG_DATADIR",
            "FFREPORT",
            "FFMPEG_VERSION",
            "FFMPEG_PATH",
            "FFMPEG_HOME",
            "AV_LOG_FORCE_NOCOLOR",
            "NO_COLOR",
            "RUST_LOG",
            "RUST_BACKTRACE",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "INVOCATION_ID",
            "JOURNAL_STREAM",
            "LISTEN_FDS",
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "KUBERNETES_PORT",
            "HTTP_SERVICE_HOST",
            "HTTP_PORT_80_TCP",
            "API_SERVICE_HOST",
            "API_PORT",
            "API_KEY",
            "API_URL",
            "NPM_TOKEN",
            "GH_TOKEN",
            "CI_TOKEN",
            "LOG_LEVEL",
            "LOG_FORMAT",
            "LOG_DIR",
            "MAX_THREADS",
            "IS_PRODUCTION",
            "EXIT_ON_ERROR",
            "STDOUT_ENCODING",
            "PROGRESS_BAR",
            "DEBUG",
            "VERBOSE",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "RUSTUP_HOME",
            "XDG_RUNTIME_DIR",
            "SSH_AUTH_SOCK",
            "HOST",
            "PORT",
            "TOKEN",
            "ENCODING",
            "PYTHONIOENCODING",
            "container",
            "_",
        ] {
            assert_eq!(suggestion(name), None, "{name}");
        }
        for v in VARS {
            assert_eq!(suggestion(v.name), None, "{}", v.name);
        }
    }

    #[test]
    fn the_families_are_wrapperds_own_words() {
        let mut f = families();
        f.sort();
        assert_eq!(
            f,
            [
                "ENCODING_",
                "EVENT_",
                "LOG_ROTATION_",
                "RESTART_",
                "STOP_",
                "WEBHOOK_"
            ]
        );
    }

    #[test]
    fn warning_lines() {
        let w = warnings(&env(&[
            ("NO_FILE_LOG", " anything "),
            ("IS_DEBUG", "yes"),
            ("ENCODING_MAX_ERRROR_TIME", "5"),
            ("API_TOKNE", "secret value"),
            ("HTTP_PROXY", "http://proxy:3128"),
            ("HOSTNAME", "box"),
        ]));
        assert_eq!(
            w,
            [
                "NO_FILE_LOG=\"anything\" is taken as true (a switch is one of 1, 0, true, \
                 false, yes, no, on or off (any case), or empty)",
                "unknown variable API_TOKNE is ignored; did you mean API_TOKEN?",
                "unknown variable ENCODING_MAX_ERRROR_TIME is ignored; did you mean \
                 ENCODING_MAX_ERROR_TIME?",
            ]
        );
        assert!(w.iter().all(|l| !l.contains('\n') && !l.contains("secret")));
        assert!(warnings(&env(&[("IS_DEBUG", "ON"), ("NO_FILE_LOG", "")])).is_empty());
    }
}
