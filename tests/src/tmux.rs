//! A private tmux server for the tests that drive fftop as a user would: its own socket in its
//! own temporary directory, no user configuration, one session `S` of a fixed size, killed on
//! drop (also when a test panics).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::wait_until;

/// Whether tmux can be run here (the tmux tests skip with a printed reason otherwise).
pub fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A private tmux server (its own socket in its own temporary directory, no user config)
/// holding one session `S` of a fixed size. Dropping it kills the server and everything in it,
/// also when a test panics.
pub struct Tmux {
    /// The directory of its socket, removed with it.
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs `shell_cmd` in a detached `width`×`height` session.
    pub fn start(width: u16, height: u16, shell_cmd: &str) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix("ffw-tmux-")
            .tempdir()
            .expect("tempdir");
        let tmux = Tmux { dir };
        let o = tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-s",
            "S",
            shell_cmd,
        ]);
        assert!(
            o.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(self.dir.path().join("sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux (is it installed? scripts/test installs it)")
    }

    /// The visible screen as text.
    pub fn screen(&self) -> String {
        let o = self.run(&["capture-pane", "-p", "-t", "S"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A tmux format (`#{...}`) of the pane.
    pub fn display(&self, format: &str) -> String {
        let o = self.run(&["display-message", "-p", "-t", "S", format]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "S"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Waits until `f` holds for the screen; panics with the last screen after `timeout`.
    pub fn wait_screen(&self, timeout: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        if wait_until(timeout, || {
            last = self.screen();
            f(&last)
        }) {
            last
        } else {
            panic!("{what}: not on screen within {timeout:?}; the screen:\n{last}")
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
