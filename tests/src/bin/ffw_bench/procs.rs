//! The processes a measurement starts: the binaries under test, a running wrapperd (stopped
//! when dropped), timing a command to its exit, and the CPU time of every thread a process has
//! had, in ns (schedstat: [`SchedCpu`]).

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{get, get_json, Target};
use crate::util::{sleep, wait_for};

/// The binaries a run uses.
pub(crate) struct Bins {
    /// The wrapperd under test.
    pub(crate) wrapperd: PathBuf,
    /// The fftop under test.
    pub(crate) fftop: PathBuf,
    /// The scripted fake ffmpeg.
    pub(crate) fake: PathBuf,
    /// This binary (the scripted child of some measurements).
    pub(crate) me: PathBuf,
}

/// A running wrapperd (stopped with SIGTERM, then SIGKILL, when dropped).
pub(crate) struct Daemon {
    /// The wrapperd process.
    pub(crate) child: Child,
    /// Its work directory.
    pub(crate) wd: PathBuf,
}

impl Daemon {
    pub(crate) fn spawn(bins: &Bins, wd: &Path, env: &[(&str, String)], args: &[&str]) -> Daemon {
        let _ = fs::remove_dir_all(wd);
        fs::create_dir_all(wd).expect("work directory");
        let mut cmd = Command::new(&bins.wrapperd);
        cmd.args(args)
            .env("WORKDIR", wd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(wd.join("wrapperd.stderr"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(&mut cmd);
        Daemon {
            child: cmd.spawn().expect("spawn wrapperd"),
            wd: wd.to_path_buf(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn sock(&self) -> Target {
        Target::Unix(self.wd.join("api.sock"))
    }

    pub(crate) fn tcp(&self) -> Option<Target> {
        let a = fs::read_to_string(self.wd.join("status/HTTP_ADDR")).ok()?;
        let a = a.trim();
        (!a.is_empty()).then(|| Target::Tcp(a.to_string()))
    }

    pub(crate) fn wait_api(&self, timeout: f64) -> bool {
        let t = self.sock();
        wait_for(timeout, || matches!(get(&t, "/get_pid"), Ok((200, _))))
    }

    pub(crate) fn status(&self) -> Option<serde_json::Value> {
        get_json(&self.sock(), "/status")
    }

    pub(crate) fn term(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }

    /// Waits for the exit; kills after `timeout` s.
    pub(crate) fn wait(&mut self, timeout: f64) {
        let end = Instant::now() + Duration::from_secs_f64(timeout);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(0.005);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn stop(&mut self) {
        self.term();
        self.wait(15.0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

pub(crate) fn stop_all(ds: &mut Vec<Daemon>) {
    for d in ds.iter() {
        d.term();
    }
    for d in ds.iter_mut() {
        d.wait(15.0);
    }
    ds.clear();
}

/// The bench's children die with it (SIGTERM), so an interrupted run leaves nothing behind.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl with integer arguments only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
}

pub(crate) fn wall(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let st = cmd.status().expect("spawn");
    let w = t.elapsed().as_secs_f64();
    let _ = st;
    w
}

// CPU time by schedstat.

/// A process's CPU time in ns from `/proc/PID/task/TID/schedstat` (first field: ns on CPU, exact,
/// where `/proc/PID/stat` counts 10 ms ticks). A thread's figure leaves `task/` when the thread
/// exits (tokio's blocking-pool threads exit after 10 s idle; Python's threads too), so the owner
/// samples often and this keeps each thread's largest figure: a thread that exits loses only
/// what it ran since the last sample.
pub(crate) struct SchedCpu {
    /// The process.
    pid: u32,
    /// The largest figure seen of every thread (ns), by thread id.
    per_tid: HashMap<u32, u64>,
    /// Threads alive at the last sample.
    live: usize,
}

impl SchedCpu {
    pub(crate) fn new(pid: u32) -> SchedCpu {
        SchedCpu {
            pid,
            per_tid: HashMap::new(),
            live: 0,
        }
    }

    /// Reads every live thread's figure; false when the process is gone.
    pub(crate) fn sample(&mut self) -> bool {
        let Ok(rd) = fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return false;
        };
        let mut live = 0;
        for e in rd.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Some(ns) = fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            else {
                continue;
            };
            live += 1;
            let v = self.per_tid.entry(tid).or_insert(0);
            *v = (*v).max(ns);
        }
        self.live = live;
        live > 0
    }

    /// The sum of every thread's largest figure, in ns.
    pub(crate) fn total_ns(&self) -> u64 {
        self.per_tid.values().sum()
    }

    /// The sum of every thread's largest figure, in s.
    pub(crate) fn secs(&self) -> f64 {
        self.total_ns() as f64 / 1e9
    }

    /// Threads seen in all, and alive at the last sample.
    pub(crate) fn threads(&self) -> (usize, usize) {
        (self.per_tid.len(), self.live)
    }
}

/// Samples every one of `cpus` every 100 ms for `secs` s (so no thread's time is lost), then
/// once more; returns the total of all, in s.
pub(crate) fn sample_for(cpus: &mut [SchedCpu], secs: f64) -> f64 {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        for c in cpus.iter_mut() {
            c.sample();
        }
        sleep(0.1f64.min(end.saturating_duration_since(Instant::now()).as_secs_f64()));
    }
    cpus.iter_mut()
        .map(|c| {
            c.sample();
            c.secs()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_cpu_grows_and_keeps_an_exited_thread() {
        let mut c = SchedCpu::new(std::process::id());
        assert!(c.sample());
        let before = c.total_ns();
        let (spun_tx, spun_rx) = std::sync::mpsc::channel();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::black_box(0u64);
            }
            spun_tx.send(()).unwrap();
            let _ = exit_rx.recv();
        });
        spun_rx.recv().unwrap();
        assert!(c.sample());
        let (seen, live) = c.threads();
        assert!(c.total_ns() > before, "{} ns, was {before}", c.total_ns());
        exit_tx.send(()).unwrap();
        h.join().unwrap();
        // `join` returns once the kernel clears the thread's tid, a moment before the thread
        // leaves /proc/PID/task: wait for that, then its figure must still be counted.
        let gone = wait_for(5.0, || {
            c.sample();
            let (seen2, live2) = c.threads();
            seen2 > live2
        });
        let (seen2, live2) = c.threads();
        assert!(
            gone && seen2 >= seen,
            "seen {seen}/{seen2}, live {live}/{live2}"
        );
        assert!(c.total_ns() > before);
        assert!(!SchedCpu::new(u32::MAX).sample());
    }
}
