//! A running `fftop --serve` (SPEC §13) for the tests that need a host's aggregator: started on
//! a free port of a loopback address (any of 127.0.0.0/8 is this machine, so two of them are
//! two hosts), asked over plain HTTP, killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http::{code_and_body, raw, tcp};
use crate::{bin, wait_until};

/// A running `fftop --serve`, killed on drop.
pub struct Serve {
    /// The fftop process.
    child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
}

/// A free TCP port on `ip` (bound and released; fftop binds it right after).
pub fn free_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

impl Serve {
    /// On 127.0.0.1, polling every 0.5 s, with `extra` arguments (targets, `--scan DIR`) and
    /// `API_TOKEN` set to `token`.
    pub fn start(extra: &[&str], token: Option<&str>) -> Serve {
        Serve::start_on("127.0.0.1", extra, token)
    }

    /// On `ip`, as [`Serve::start`]; returns once it listens.
    pub fn start_on(ip: &str, extra: &[&str], token: Option<&str>) -> Serve {
        let addr = free_addr(ip);
        let mut cmd = Command::new(bin("fftop"));
        cmd.args(["--serve", &addr.to_string(), "--interval", "0.5"])
            .args(extra)
            .env_remove("WORKDIR")
            .env_remove("API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.env("API_TOKEN", t);
        }
        let child = cmd.spawn().expect("fftop --serve");
        let s = Serve { child, addr };
        let listens = || std::net::TcpStream::connect(s.addr).is_ok();
        assert!(
            wait_until(Duration::from_secs(10), listens),
            "fftop --serve listens"
        );
        s
    }

    /// `METHOD path` with an optional bearer token: code and body.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let (code, body) = code_and_body(raw(tcp(self.addr), req.as_bytes())).expect("an answer");
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET path` without a token.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
