//! Two hundred clients at once while ffmpeg encodes: no line lost, silent clients hold up nobody.

use std::net::SocketAddr;

use super::*;

/// A client's `/status` polls: how many, and how long each took.
type Polls = Result<Vec<Duration>, String>;

async fn poll(c: Client, pid: u32, min: usize, done: Arc<AtomicBool>) -> Polls {
    let mut took = Vec::new();
    while took.len() < min || !done.load(Ordering::SeqCst) {
        let t = Instant::now();
        let st = c
            .status()
            .await
            .map_err(|e| format!("{}: {e}", c.target()))?;
        took.push(t.elapsed());
        if st.pid != pid {
            return Err(format!("pid {} instead of {pid}", st.pid));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(took)
}

fn socket_client(wd: &Path) -> Client {
    Client::new(
        Target::Unix(wd.join("api.sock")),
        None,
        Duration::from_secs(10),
    )
    .unwrap()
}

/// One fresh client's `/status` round trip.
fn fresh_status_time(c: impl Fn() -> Client) -> Duration {
    let t = Instant::now();
    block_on(c().status()).unwrap();
    t.elapsed()
}

#[test]
fn two_hundred_clients_while_ffmpeg_encodes_lose_no_line_and_silent_ones_hold_up_nobody() {
    // A: real ffmpeg, one numbered showinfo line per frame, stats every 0.1 s.
    let a_wd = Wd::new();
    let mut args = light_input();
    args.extend(["-vf", "showinfo", "-c:v", "mpeg4", "-stats_period", "0.1"].map(String::from));
    args.extend(["-f", "null", "-"].map(String::from));
    let a = a_wd.wrapperd().env("HTTP_PORT", "0").args(&args).spawn();
    a.wait_api();
    let a_ffmpeg = a.ffmpeg_pid();
    wait_status(&a, Duration::from_secs(20), "A encodes", |s| {
        s.counters.progress_blocks >= 2
    });
    // B (started once A encodes, so its quiet start is not used up by A's): the fake, silent
    // for 3 s, then two bursts of 40 000 numbered lines.
    let b_wd = Wd::new();
    let b = b_wd
        .wrapperd()
        .fake()
        .env("ENCODING_DISABLE_CHECK", "1")
        .args(["nostats", "block-interval=0.1", "run", "secs=3"])
        .args(["lines", "n=40000", "run", "secs=0.3", "lines", "n=40000"])
        .args(["silence", "secs=60"])
        .spawn();
    b.wait_api();
    let tcp_addr = a_wd.http_addr();
    let a_tcp = format!("http://{tcp_addr}");
    let tcp_client =
        || Client::new(Target::Tcp(a_tcp.clone()), None, Duration::from_secs(10)).unwrap();

    let silent = silent_connections(&a_wd.path, &b_wd.path, tcp_addr);
    let quiet_unix = fresh_status_time(|| socket_client(&a_wd.path));
    let quiet_tcp = fresh_status_time(tcp_client);
    eprintln!(
        "with 16 silent connections open: /status in {quiet_unix:?} (socket), {quiet_tcp:?} (TCP)"
    );
    // A client held up by them would wait out the 10 s header timeout; 1 s leaves room for a
    // debug build on a loaded machine (the figures printed are what to look at).
    assert!(quiet_unix < Duration::from_secs(1), "{quiet_unix:?}");
    assert!(quiet_tcp < Duration::from_secs(1), "{quiet_tcp:?}");

    // The load: 150 socket and 50 TCP clients on A, 50 socket clients on B, each at least 10
    // polls, and all of them until B's bursts are in.
    let b_pid = b.pid() as u32;
    assert_eq!(
        b.status().counters.log_lines,
        0,
        "B's bursts come during the load"
    );
    let started = Instant::now();
    let a_clients = (0..200).map(|i| {
        let c = if i < 150 {
            socket_client(&a_wd.path)
        } else {
            tcp_client()
        };
        (c, a.pid() as u32)
    });
    let b_clients = (0..50).map(|_| (socket_client(&b_wd.path), b_pid));
    let results = load(a_clients.chain(b_clients).collect(), &b_wd.path);
    assert_polls(results, started.elapsed());

    // The silent connections still hold up nobody.
    let after = fresh_status_time(|| socket_client(&a_wd.path));
    eprintln!("after the load, silent connections still open: /status in {after:?}");
    assert!(after < Duration::from_secs(1), "{after:?}");
    drop(silent);
    check_bursts(&b);
    check_showinfo_frames(&a, a_ffmpeg);
}

/// Connections that send nothing to A (socket and TCP) and B, and one that sends half a request
/// line to A, held open until dropped.
fn silent_connections(a: &Path, b: &Path, tcp_addr: SocketAddr) -> Vec<Box<dyn std::any::Any>> {
    let mut silent: Vec<Box<dyn std::any::Any>> = Vec::new();
    for _ in 0..5 {
        silent.push(Box::new(
            std::os::unix::net::UnixStream::connect(a.join("api.sock")).unwrap(),
        ));
        silent.push(Box::new(std::net::TcpStream::connect(tcp_addr).unwrap()));
        silent.push(Box::new(
            std::os::unix::net::UnixStream::connect(b.join("api.sock")).unwrap(),
        ));
    }
    let mut half = std::os::unix::net::UnixStream::connect(a.join("api.sock")).unwrap();
    half.write_all(b"GET /status HT").unwrap();
    silent.push(Box::new(half));
    silent
}

/// Every client polls `/status` (expecting its pid) at least 10 times, and all of them until B
/// (in work directory `b`) holds its 80 000 lines.
fn load(clients: Vec<(Client, u32)>, b: &Path) -> Vec<Polls> {
    runtime().block_on(async {
        let done = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for (c, pid) in clients {
            tasks.spawn(poll(c, pid, 10, done.clone()));
        }
        let watch = socket_client(b);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match watch.status().await {
                Ok(st) if st.counters.log_lines >= 80_000 => break,
                Ok(_) => {}
                Err(e) => panic!("B's watcher: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.unwrap());
        }
        out
    })
}

/// No client failed, and together they made at least 2 500 polls; prints the figures.
fn assert_polls(results: Vec<Polls>, load_time: Duration) {
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} of 250 clients failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let mut took: Vec<Duration> = results.into_iter().flat_map(Result::unwrap).collect();
    took.sort_unstable();
    let pct = |p: usize| took[(took.len() - 1) * p / 100];
    eprintln!(
        "250 clients, {} /status in {load_time:?}: p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        pct(50),
        pct(99),
        took[took.len() - 1]
    );
    assert!(took.len() >= 2500, "{}", took.len());
}

/// B: exactly the two bursts, in order.
fn check_bursts(b: &Daemon) {
    let st = wait_status(b, Duration::from_secs(10), "B's lines", |s| {
        s.counters.log_lines >= 80_000
    });
    assert_eq!(st.counters.log_lines, 80_000);
    let body = text(b, "/last_stdout?count=0");
    let want: Vec<String> = (1..=40_000)
        .chain(1..=40_000)
        .map(|i| format!("line {i}"))
        .collect();
    assert!(
        check_lines(&body, NaiveDateTime::MIN) == want,
        "B lost or reordered lines"
    );
}

/// A: every line counted is held, and the showinfo frames are all there, in order.
fn check_showinfo_frames(a: &Daemon, a_ffmpeg: i32) {
    let st = freeze(a, a_ffmpeg);
    let body = text(a, "/last_stdout?count=0");
    let lines = check_lines(&body, NaiveDateTime::MIN);
    assert_eq!(lines.len() as u64, st.counters.log_lines);
    let frames: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.split_once("] n:"))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(frames.len() > 25, "{body}");
    assert_eq!(
        frames,
        (0..frames.len() as u64).collect::<Vec<_>>(),
        "showinfo frames"
    );
    kill(a_ffmpeg, Signal::SIGCONT);
}
