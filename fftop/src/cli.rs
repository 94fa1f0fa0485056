//! The command line (SPEC §8), parsed with clap.
//!
//! Only parsing and the defaults live here; what the options do is elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use shared::client::Target;

/// Terminal monitor for one or many wrapperd.
#[derive(Debug, Clone, Parser)]
#[command(name = "fftop", version = shared::VERSION, about, long_about = None)]
pub struct Cli {
    /// Targets: a work directory (uses its api.sock), a socket path, HOST:PORT or
    /// http://HOST:PORT. Default (with no --scan and no --targets-file either): $WORKDIR, else
    /// /tmp/ff_wrapper.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Watch every directory directly under DIR that holds an api.sock, or the files of an
    /// exited encode (repeatable); targets appear as encodes start, stay as exited rows when
    /// their wrapperd ends, and go with their directories.
    #[arg(long, value_name = "DIR")]
    pub scan: Vec<PathBuf>,

    /// Seconds between polls (fractional allowed).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_interval)]
    pub interval: Duration,

    /// Bearer token for TCP targets; with --serve, also the one its clients must send.
    #[arg(long, value_name = "TOKEN", env = "API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Print one plain table and exit: 0 if every target is healthy or warming up, 1 otherwise.
    #[arg(long)]
    pub once: bool,

    /// With --once: print a JSON array instead of the table.
    #[arg(long, requires = "once")]
    pub json: bool,

    /// No colours (also when NO_COLOR is set or TERM=dumb).
    #[arg(long)]
    pub no_color: bool,

    /// No actions: the stop and restart keys do nothing and the help does not list them.
    #[arg(long)]
    pub read_only: bool,

    /// Targets one per line (`#` comments), read again when the file changes.
    #[arg(long, value_name = "FILE")]
    pub targets_file: Option<PathBuf>,

    /// Run without a terminal as this host's aggregator, serving /metrics, /targets, /t/NAME/…
    /// and /livez over HTTP on HOST:PORT (SPEC §13).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "once")]
    pub serve: Option<String>,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.05..=3600.0).contains(&v) {
        return Err(format!("{s} is out of range (0.05 to 3600 seconds)"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Cli {
    /// The targets named on the command line, or the default work directory when neither a
    /// target nor `--scan` is given.
    pub fn explicit_targets(&self) -> Vec<Target> {
        if self.targets.is_empty() && self.scan.is_empty() && self.targets_file.is_none() {
            let dir = std::env::var("WORKDIR")
                .ok()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/tmp/ff_wrapper".into());
            // A work directory, even one that does not exist (yet): its api.sock.
            return vec![Target::Unix(PathBuf::from(dir).join("api.sock"))];
        }
        let mut out: Vec<Target> = Vec::new();
        for t in &self.targets {
            let t = Target::parse(t);
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Colours unless `--no-color`, a non-empty `NO_COLOR`, or `TERM=dumb`.
    pub fn color(&self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        !(self.no_color || no_color || dumb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let cli = Cli::try_parse_from([
            "fftop",
            "--interval",
            "0.5",
            "--scan",
            "/a",
            "--scan",
            "/b",
            "127.0.0.1:9000",
        ])
        .unwrap();
        assert_eq!(cli.interval, Duration::from_millis(500));
        assert_eq!(cli.scan, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            cli.explicit_targets(),
            vec![Target::Tcp("http://127.0.0.1:9000".into())]
        );
        assert!(Cli::try_parse_from(["fftop", "--interval", "abc"]).is_err());
        assert!(Cli::try_parse_from(["fftop", "--interval", "-1"]).is_err());
        assert!(Cli::try_parse_from(["fftop", "--json"]).is_err());
        assert!(Cli::try_parse_from(["fftop", "--once", "--json"]).is_ok());
        assert!(Cli::try_parse_from(["fftop", "--once", "--serve", "127.0.0.1:1"]).is_err());
        let cli = Cli::try_parse_from(["fftop", "--targets-file", "/x"]).unwrap();
        assert!(cli.explicit_targets().is_empty(), "the file names them");
    }

    #[test]
    fn read_only_is_a_flag() {
        assert!(
            Cli::try_parse_from(["fftop", "--read-only"])
                .unwrap()
                .read_only
        );
        assert!(!Cli::try_parse_from(["fftop"]).unwrap().read_only);
    }

    #[test]
    fn scan_alone_means_no_default_target() {
        let cli = Cli::try_parse_from(["fftop", "--scan", "/srv"]).unwrap();
        assert!(cli.explicit_targets().is_empty());
    }
}
