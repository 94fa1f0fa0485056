//! The two wrappers of measurement 10 as one kind of process: wrapperd or the original Python
//! tool, started on the same ffmpeg command in a scratch directory of its own, and stopped the
//! way its operator would.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::procs::die_with_parent;
use crate::util::{cmd_out, sleep};

/// The wrapper a run uses.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Side {
    Wrapperd,
    Python,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Wrapperd => "wrapperd",
            Side::Python => "python",
        }
    }

    /// Pair `i` in alternation: wrapperd first when `i` is even.
    pub(crate) fn order(i: usize) -> [Side; 2] {
        if i.is_multiple_of(2) {
            [Side::Wrapperd, Side::Python]
        } else {
            [Side::Python, Side::Wrapperd]
        }
    }
}

/// What a run gives both wrappers alike.
pub(crate) struct Setup<'a> {
    /// The ffmpeg to run; `None`: `ffmpeg` on `PATH`.
    pub(crate) ffmpeg: Option<&'a Path>,
    /// Configuration variables (the same names on both sides).
    pub(crate) env: &'a [(&'a str, &'a str)],
    /// ffmpeg's arguments.
    pub(crate) args: &'a [String],
}

/// A running wrapper, wrapperd or the Python tool, in its own scratch directory.
pub(crate) struct Wrapper {
    /// The wrapper process.
    child: Child,
    /// Which one it is.
    side: Side,
    /// When it was first seen exited.
    pub(crate) exited: Option<Instant>,
    /// Stopped (and for the Python tool, its process group killed) already.
    stopped: bool,
}

impl Wrapper {
    /// Starts `side` in `dir` (emptied first): `WORKDIR=dir/wd`, the Python tool's logs in
    /// `dir/logs`, its ffmpeg through `dir/bin/ffmpeg` first on `PATH`.
    pub(crate) fn spawn(
        peer: &Path,
        wrapperd: &Path,
        side: Side,
        dir: &Path,
        s: &Setup<'_>,
    ) -> Wrapper {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("scratch directory");
        let mut cmd = match side {
            Side::Wrapperd => {
                let mut cmd = Command::new(wrapperd);
                if let Some(f) = s.ffmpeg {
                    cmd.env("FFMPEG_BIN", f);
                }
                die_with_parent(&mut cmd);
                cmd
            }
            Side::Python => python_cmd(peer, dir, s.ffmpeg),
        };
        cmd.args(s.args)
            .env("WORKDIR", dir.join("wd"))
            .envs(s.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out_file(&dir.join("stdout")))
            .stderr(out_file(&dir.join("stderr")));
        Wrapper {
            child: cmd.spawn().expect("spawn the wrapper"),
            side,
            exited: None,
            stopped: false,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (noting when it was first seen so).
    pub(crate) fn poll(&mut self) -> bool {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
            self.exited = Some(Instant::now());
        }
        self.exited.is_some()
    }

    /// Waits up to `timeout` s for the exit; true if it exited.
    pub(crate) fn wait(&mut self, timeout: f64) -> bool {
        let end = Instant::now() + Duration::from_secs_f64(timeout);
        while !self.poll() && Instant::now() < end {
            sleep(0.005);
        }
        self.poll()
    }

    /// Stops it as its operator would: SIGTERM to wrapperd; SIGINT (Ctrl-C) to the Python tool,
    /// which dies on SIGTERM without stopping its ffmpeg. Kills it after 20 s, then kills what is
    /// left of the Python tool's process group (its ffmpeg, if that outlived it).
    pub(crate) fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if !self.poll() {
            let sig = match self.side {
                Side::Wrapperd => libc::SIGTERM,
                Side::Python => libc::SIGINT,
            };
            // SAFETY: kill with our own child's pid and a signal number.
            unsafe { libc::kill(self.pid() as i32, sig) };
            if !self.wait(20.0) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if self.side == Side::Python {
            // SAFETY: kill of the process group this child led (process_group(0)), right after
            // reaping it: a surviving member keeps the group id from reuse.
            unsafe { libc::kill(-(self.pid() as i32), libc::SIGKILL) };
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `python3 PEER/ff_wrapper/main.py` with `dir/bin/ffmpeg` (a link to `ffmpeg`) first on
/// `PATH`, its logs under `dir/logs`, in its own process group, SIGINT at its default
/// disposition, sent SIGINT if the bench dies.
fn python_cmd(peer: &Path, dir: &Path, ffmpeg: Option<&Path>) -> Command {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("bin directory");
    let target = ffmpeg
        .map(Path::to_path_buf)
        .or_else(|| on_path("ffmpeg"))
        .unwrap_or_else(|| PathBuf::from("/usr/bin/ffmpeg"));
    // Absolute: a relative link would resolve from `bin/`, miss, and let PATH find another ffmpeg.
    let target = target.canonicalize().unwrap_or(target);
    std::os::unix::fs::symlink(&target, bin.join("ffmpeg")).expect("ffmpeg link");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(python_exe());
    cmd.arg(peer.join("ff_wrapper/main.py"))
        .env("PATH", path)
        .env("LOGS_PATH", dir.join("logs"))
        .env_remove("CONTAINER_NAME")
        .process_group(0);
    // SAFETY: signal and prctl with integer arguments only, between fork and exec. SIGINT back
    // to its default: started in the background, the bench may ignore it, and Python then keeps
    // it ignored instead of raising KeyboardInterrupt (its only clean stop).
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT, 0, 0, 0);
            Ok(())
        });
    }
    cmd
}

/// The interpreter `python3` runs, as `sys.executable` names it: a shim such as pyenv's (a bash
/// script that execs it in the same process) would count its own start as the tool's CPU.
pub(crate) fn python_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let exe = cmd_out("python3", &["-c", "import sys; print(sys.executable)"]);
        if exe.is_empty() {
            PathBuf::from("python3")
        } else {
            PathBuf::from(exe)
        }
    })
    .clone()
}

fn out_file(p: &Path) -> Stdio {
    fs::File::create(p)
        .map(Stdio::from)
        .unwrap_or(Stdio::null())
}

/// The first `name` on `PATH`, as `which` finds it.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// `ffmpeg version X-packaging` of a binary: `X`.
pub(crate) fn ffmpeg_version(bin: &str) -> String {
    let out = cmd_out(bin, &["-version"]);
    let v = out.split_whitespace().nth(2).unwrap_or("?");
    v.split('-').next().unwrap_or(v).to_string()
}
