//! `EVENT_HOOK` (SPEC §11): a command run with `/bin/sh -c` on every event, one at a time, in
//! order, with the event in its environment (`FFW_*`).
//!
//! - **Queue.** [`Queue`] holds at most [`QUEUE`] events; when full the oldest is dropped and
//!   counted, and the count is logged before the next hook runs. Publishing only pushes, so a
//!   slow hook never delays the supervisor, the manager or ffmpeg.
//! - **Process.** The hook gets its own process group (killed whole on `EVENT_HOOK_TIMEOUT`, `0`:
//!   no limit), default signal dispositions and mask, stdin from `/dev/null`, and stdout and
//!   stderr into one pipe whose lines go to `wrapperd.log` (at most [`MAX_LINES`] per run).
//!   `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are removed from its environment.
//!   Descriptors: everything wrapperd opens is close-on-exec already (Rust's std, tokio and mio
//!   open with `O_CLOEXEC`/`SOCK_CLOEXEC`); to be sure whatever a library might leak, the child
//!   also marks every descriptor above 2 close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`) just
//!   before the exec.
//! - **Reaping.** wrapperd reaps every child (`waitpid(-1)` in the supervisor's reaper, as a
//!   subreaper), so the reaper may collect the hook before this code does; a plain
//!   `waitpid(pid)` here could then wait on a reused pid (a new ffmpeg) or lose the status. So:
//!   the end of the hook is watched through a pidfd (`pidfd_open`), which names that very
//!   process, and its status is taken with `waitid(P_PIDFD)`; when the reaper got there first
//!   (`ECHILD`), it has handed the status over: [`reaped`], called by the reaper for every pid
//!   that is not ffmpeg's, stores the statuses of the hooks it finds (and, for a hook that ended
//!   before it was registered, keeps the few newest unclaimed ones with their time). Without
//!   pidfds (Linux < 5.3), the runner polls the hand-over and `waitpid(pid, WNOHANG)` every
//!   [`POLL`] instead.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::wait::WaitStatus;
use shared::events::EventKind;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Notify;

use super::Published;

/// Events waiting for the hook; more drop the oldest.
pub(crate) const QUEUE: usize = 100;
/// Lines of one hook's output written to wrapperd.log; the rest are counted.
const MAX_LINES: usize = 100;
/// How long the runner reads a hook's output after the hook ended (a background child of it
/// may hold the pipe open).
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(1);
/// Polling interval where there are no pidfds, and for a status the reaper is handing over.
const POLL: Duration = Duration::from_millis(10);
/// Unclaimed statuses the reaper keeps for hooks that ended before they were registered.
const UNCLAIMED: usize = 64;
/// The variables removed from the hook's environment (SPEC §12).
const REMOVED_VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// What the runner needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct HookConfig {
    /// `EVENT_HOOK`.
    pub(crate) command: String,
    /// `EVENT_HOOK_TIMEOUT` (zero: no limit).
    pub(crate) timeout: Duration,
    /// The work directory's name (`FFW_NAME`).
    pub(crate) name: String,
    /// The work directory (`FFW_WORKDIR`).
    pub(crate) workdir: String,
}

/// The queue between the bus and the runner.
#[derive(Debug, Default)]
struct QueueState {
    /// Events not yet run, oldest first.
    events: VecDeque<Arc<Published>>,
    /// Dropped since the last hook ran.
    dropped: u64,
    /// A hook is running.
    busy: bool,
}

/// The hook's queue (the bus pushes, the runner pops).
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// The events and counts.
    state: Mutex<QueueState>,
    /// Wakes the runner.
    wake: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event, dropping the oldest when full.
    pub(crate) fn push(&self, p: Arc<Published>) {
        let mut s = self.lock();
        if s.events.len() >= QUEUE {
            s.events.pop_front();
            s.dropped += 1;
        }
        s.events.push_back(p);
        drop(s);
        self.wake.notify_one();
    }

    /// Nothing queued and no hook running.
    pub(crate) fn idle(&self) -> bool {
        let s = self.lock();
        s.events.is_empty() && !s.busy
    }

    /// The next event and the count dropped before it, marking the runner busy.
    fn pop(&self) -> Option<(Arc<Published>, u64)> {
        let mut s = self.lock();
        let p = s.events.pop_front()?;
        s.busy = true;
        Some((p, std::mem::take(&mut s.dropped)))
    }

    fn done(&self) {
        self.lock().busy = false;
    }
}

/// Starts the runner task; returns its queue.
pub(crate) fn start(cfg: HookConfig) -> Arc<Queue> {
    let q = Arc::new(Queue::default());
    tokio::spawn(run(cfg, q.clone()));
    q
}

/// Runs the queued events' hooks, one at a time, forever.
async fn run(cfg: HookConfig, q: Arc<Queue>) {
    loop {
        let Some((p, dropped)) = q.pop() else {
            q.wake.notified().await;
            continue;
        };
        if dropped > 0 {
            tracing::warn!(
                "event hook queue full ({QUEUE}): dropped the {dropped} oldest events \
                 (the hook is slower than the events)"
            );
        }
        run_one(&cfg, &p).await;
        q.done();
    }
}

/// The `FFW_*` variables of one event.
pub(crate) fn hook_env(cfg: &HookConfig, p: &Published) -> Vec<(&'static str, String)> {
    let e = &p.event;
    let mut env = vec![
        ("FFW_EVENT", e.event.as_str().to_string()),
        ("FFW_NAME", cfg.name.clone()),
        ("FFW_WORKDIR", cfg.workdir.clone()),
        ("FFW_RUN", e.run.to_string()),
        ("FFW_HEALTH", e.health.as_str().to_string()),
        ("FFW_REASON", e.reason.clone().unwrap_or_default()),
        ("FFW_JSON", p.json.clone()),
    ];
    if e.event == EventKind::Exited {
        if let Some(c) = e.exit_code {
            env.push(("FFW_EXIT_CODE", c.to_string()));
        }
    }
    env
}

/// The command for one event, not yet spawned; its output goes to `out`.
fn command(cfg: &HookConfig, p: &Published, out: OwnedFd) -> std::io::Result<Command> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&cfg.command);
    for v in REMOVED_VARS.iter().chain(&["FFW_EXIT_CODE"]) {
        cmd.env_remove(v);
    }
    cmd.envs(hook_env(cfg, p));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out));
    cmd.process_group(0);
    // SAFETY: between fork and exec, only async-signal-safe calls (sigaction, sigprocmask
    // through raw syscalls, close_range).
    unsafe {
        cmd.pre_exec(|| {
            crate::signals::reset_for_child()?;
            // Errors (a kernel before 5.11) are ignored: everything is CLOEXEC already.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    Ok(cmd)
}

/// Runs the hook for one event and waits for it (killing it on the timeout).
async fn run_one(cfg: &HookConfig, p: &Published) {
    let what = format!(
        "event hook for event {} ({})",
        p.event.id,
        p.event.event.as_str()
    );
    let (rx, tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(fds) => fds,
        Err(e) => {
            tracing::warn!("{what}: cannot make a pipe: {e}");
            return;
        }
    };
    let spawned = command(cfg, p, tx).and_then(|mut c| c.spawn());
    let pid = match spawned {
        Ok(child) => child.id() as i32,
        Err(e) => {
            tracing::warn!("{what}: cannot run /bin/sh: {e}");
            return;
        }
    };
    let since = Instant::now();
    let watch = Watch::new(pid, since);
    let output = tokio::spawn(log_output(rx));
    let status = if cfg.timeout.is_zero() {
        watch.wait().await
    } else {
        match tokio::time::timeout(cfg.timeout, watch.wait()).await {
            Ok(st) => st,
            Err(_) => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                tracing::warn!(
                    "{what} ran past EVENT_HOOK_TIMEOUT ({:.1} s): killed it and its process group",
                    cfg.timeout.as_secs_f64()
                );
                watch.wait().await
            }
        }
    };
    if tokio::time::timeout(OUTPUT_AFTER_EXIT, output)
        .await
        .is_err()
    {
        tracing::debug!(
            "{what}: its output pipe is still open (a background child); not read further"
        );
    }
    let secs = since.elapsed().as_secs_f64();
    match status {
        Some(0) => tracing::debug!("{what} done in {secs:.3} s"),
        Some(code) if code > 128 => {
            tracing::warn!("{what} ended by signal {} after {secs:.1} s", code - 128)
        }
        Some(code) => tracing::warn!("{what} exited with status {code} after {secs:.1} s"),
        None => tracing::warn!("{what} ended after {secs:.1} s (its status is unknown)"),
    }
}

/// Logs the hook's output lines (lossily decoded, at most [`MAX_LINES`]) until end of file.
async fn log_output(rx: OwnedFd) {
    let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(rx) else {
        return;
    };
    let mut r = tokio::io::BufReader::new(rx);
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        n += 1;
        if n <= MAX_LINES {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            tracing::info!("hook: {}", &line[..line.floor_char_boundary_compat(4096)]);
        }
    }
    if n > MAX_LINES {
        tracing::info!("hook: {} more output lines not logged", n - MAX_LINES);
    }
}

/// `str::floor_char_boundary` (unstable) for the cut of a long line.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, max: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, max: usize) -> usize {
        if max >= self.len() {
            return self.len();
        }
        (0..=max)
            .rev()
            .find(|i| self.is_char_boundary(*i))
            .unwrap_or(0)
    }
}

/// The shell status of a reaped child: its code, or 128+N for signal N.
fn shell_status(st: &WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(*c),
        WaitStatus::Signaled(_, s, _) => Some(128 + *s as i32),
        _ => None,
    }
}

/// The statuses the reaper hands over (see the module doc).
#[derive(Default)]
struct Registry {
    /// Running hooks by pid, with their status once the reaper collected them.
    wanted: HashMap<i32, Option<i32>>,
    /// Statuses of pids nobody had registered, newest last, with when they were reaped.
    unclaimed: VecDeque<(i32, i32, Instant)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called by the reaper for every child it reaped that is not ffmpeg: keeps the status for a
/// hook's runner. Returns whether `pid` was a running hook.
pub(crate) fn reaped(pid: i32, st: &WaitStatus) -> bool {
    let Some(code) = shell_status(st) else {
        return false;
    };
    let mut g = registry();
    let r = g.get_or_insert_with(Registry::default);
    if let Some(slot) = r.wanted.get_mut(&pid) {
        *slot = Some(code);
        return true;
    }
    if r.unclaimed.len() >= UNCLAIMED {
        r.unclaimed.pop_front();
    }
    r.unclaimed.push_back((pid, code, Instant::now()));
    false
}

/// One running hook, registered with the reaper until dropped.
struct Watch {
    /// The hook's pid (its process group too).
    pid: i32,
    /// A pidfd naming the process, when the kernel has them.
    pidfd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
}

impl Watch {
    /// Registers `pid`, spawned at `since` (a status the reaper took before is claimed).
    fn new(pid: i32, since: Instant) -> Watch {
        {
            let mut g = registry();
            let r = g.get_or_insert_with(Registry::default);
            let early = r
                .unclaimed
                .iter()
                .position(|(p, _, at)| *p == pid && *at >= since);
            let status = early.and_then(|i| r.unclaimed.remove(i)).map(|(_, c, _)| c);
            r.wanted.insert(pid, status);
        }
        // SAFETY: pidfd_open with a pid and no flags; the result is a new descriptor we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let pidfd = (fd >= 0)
            .then(|| {
                // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
                let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
                // SAFETY: the OwnedFd stays open and the same descriptor as long as the AsyncFd.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        owned,
                        tokio::io::Interest::READABLE,
                    )
                }
                .ok()
            })
            .flatten();
        Watch { pid, pidfd }
    }

    /// The status handed over by the reaper, if it collected the hook.
    fn handed_over(&self) -> Option<i32> {
        registry()
            .as_ref()
            .and_then(|r| r.wanted.get(&self.pid).copied().flatten())
    }

    /// Waits for the hook to end; its shell status, `None` when it is lost.
    async fn wait(&self) -> Option<i32> {
        match &self.pidfd {
            Some(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    return self.wait_polling().await;
                };
                match waitid_pidfd(fd.get_ref()) {
                    Ok(Some(code)) => return Some(code),
                    Ok(None) => ready.clear_ready(),
                    Err(_) => return self.taken_by_reaper().await,
                }
            },
            None => self.wait_polling().await,
        }
    }

    /// Without a pidfd: the hand-over, or `waitpid(pid, WNOHANG)`, every [`POLL`].
    async fn wait_polling(&self) -> Option<i32> {
        use nix::sys::wait::{waitpid, WaitPidFlag};
        loop {
            if let Some(c) = self.handed_over() {
                return Some(c);
            }
            match waitpid(
                nix::unistd::Pid::from_raw(self.pid),
                Some(WaitPidFlag::WNOHANG),
            ) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(st) => {
                    if let Some(c) = shell_status(&st) {
                        return Some(c);
                    }
                }
                Err(_) => return self.taken_by_reaper().await,
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The reaper collected the hook: its status, which it hands over right after.
    async fn taken_by_reaper(&self) -> Option<i32> {
        for _ in 0..100 {
            if let Some(c) = self.handed_over() {
                return Some(c);
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(r) = registry().as_mut() {
            r.wanted.remove(&self.pid);
        }
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`: `Ok(None)` while it runs, its shell status once it
/// ended, `Err` when it was reaped by someone else (`ECHILD`).
fn waitid_pidfd(fd: &OwnedFd) -> std::io::Result<Option<i32>> {
    // SAFETY: an all-zero siginfo_t is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pidfd and a pointer to a live siginfo_t.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            fd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` for a child event (or left it zeroed when none).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if info.si_code == libc::CLD_EXITED {
        status
    } else {
        128 + status
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::Health;
    use shared::events::Event;

    fn published(id: u64, kind: EventKind) -> Arc<Published> {
        let mut e = Event::new(id, "t".into(), kind, 2, Health::Exited);
        e.reason = Some("why".into());
        e.exit_code = Some(1);
        let json = serde_json::to_string(&e).unwrap();
        Arc::new(Published { event: e, json })
    }

    #[test]
    fn the_queue_drops_the_oldest_and_counts_them() {
        let q = Queue::default();
        for id in 1..=150 {
            q.push(published(id, EventKind::Started));
        }
        let (first, dropped) = q.pop().unwrap();
        assert_eq!((first.event.id, dropped), (51, 50));
        assert!(!q.idle());
        q.done();
        assert_eq!(q.pop().unwrap().1, 0);
    }

    #[test]
    fn the_environment_has_every_variable_and_the_exit_code_only_on_exited() {
        let cfg = HookConfig {
            command: "true".into(),
            timeout: Duration::from_secs(1),
            name: "cam1".into(),
            workdir: "/srv/cam1".into(),
        };
        let env = hook_env(&cfg, &published(9, EventKind::Exited));
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("FFW_EVENT"), Some("exited"));
        assert_eq!(get("FFW_NAME"), Some("cam1"));
        assert_eq!(get("FFW_WORKDIR"), Some("/srv/cam1"));
        assert_eq!(get("FFW_RUN"), Some("2"));
        assert_eq!(get("FFW_HEALTH"), Some("exited"));
        assert_eq!(get("FFW_REASON"), Some("why"));
        assert_eq!(get("FFW_EXIT_CODE"), Some("1"));
        assert!(get("FFW_JSON").unwrap().contains("\"id\":9"));
        let env = hook_env(&cfg, &published(10, EventKind::Started));
        assert!(!env.iter().any(|(n, _)| *n == "FFW_EXIT_CODE"));
    }

    #[tokio::test]
    #[allow(clippy::zombie_processes)] // reaped below, by waitpid, as the reaper does
    async fn a_hook_reaped_by_someone_else_still_reports_its_status() {
        let cfg = HookConfig {
            command: "exit 3".into(),
            timeout: Duration::from_secs(10),
            name: "n".into(),
            workdir: "/".into(),
        };
        let (_rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let child = command(&cfg, &published(1, EventKind::Started), tx)
            .unwrap()
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let watch = Watch::new(pid, Instant::now());
        // The supervisor's reaper gets there first.
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert!(reaped(pid, &st));
        assert_eq!(watch.wait().await, Some(3));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let s = "é".repeat(3000);
        let cut = s.floor_char_boundary_compat(4096);
        assert!(cut <= 4096 && s.is_char_boundary(cut));
    }
}
