//! `--scan DIR`: every directory directly under `DIR` holding an `api.sock` is a target, and so
//! is one whose `status/status.json` says the encode exited (SPEC §13: exited encodes stay
//! visible with their reason; a directory without either is not an encode).
//!
//! The scanner re-reads the directories every interval and reports the whole set whenever it
//! changes, so encodes that start appear and those that end disappear while fftop runs. Reading a
//! directory can block (a hung network mount), so it runs on the blocking pool, one scan at a
//! time, and never holds up the screen.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::client::Target;
use tokio::sync::mpsc;

use crate::event::Event;

/// The targets under `dirs` right now. Unreadable directories contribute nothing.
pub fn scan(dirs: &[PathBuf]) -> BTreeSet<Target> {
    dirs.iter().flat_map(|d| scan_one(d)).collect()
}

fn scan_one(dir: &Path) -> Vec<Target> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        // The entry's type comes with the listing; only a symlink needs a look at its target.
        .filter(|e| match e.file_type() {
            Ok(t) if t.is_symlink() => e.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        })
        .filter(|e| {
            // symlink_metadata: a socket is enough; a dangling symlink named api.sock is not.
            std::fs::symlink_metadata(e.path().join("api.sock")).is_ok()
                || crate::exited::is_exited_dir(&e.path())
        })
        .map(|e| Target::Unix(e.path().join("api.sock")))
        .collect()
}

/// Scans `dirs` every `interval` until the receiver is gone, sending [`Event::Scan`] on changes
/// (and once at the start, even when nothing is found).
pub async fn run(dirs: Vec<PathBuf>, interval: Duration, tx: mpsc::Sender<Event>) {
    let interval = interval.max(Duration::from_millis(500));
    let mut last: Option<BTreeSet<Target>> = None;
    loop {
        let d = dirs.clone();
        if let Ok(found) = tokio::task::spawn_blocking(move || scan(&d)).await {
            if last.as_ref() != Some(&found) {
                if tx.send(Event::Scan(found.clone())).await.is_err() {
                    return;
                }
                last = Some(found);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_directories_with_a_socket_only() {
        let root = std::env::temp_dir().join(format!("fftop-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["cam1", "cam2", "empty"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cam1/api.sock"), b"").unwrap();
        std::fs::write(root.join("cam2/api.sock"), b"").unwrap();
        std::fs::write(root.join("api.sock"), b"").unwrap(); // not under a directory
        let found = scan(std::slice::from_ref(&root));
        let names: Vec<String> = found.iter().map(Target::name).collect();
        assert_eq!(names, vec!["cam1", "cam2"]);

        std::fs::remove_file(root.join("cam2/api.sock")).unwrap();
        assert_eq!(scan(std::slice::from_ref(&root)).len(), 1);
        // An exited encode's directory stays, a killed one's status (not exited) does not.
        std::fs::create_dir_all(root.join("cam2/status")).unwrap();
        let mut st = crate::testutil::status(shared::api::Health::Ok, None, None);
        std::fs::write(
            root.join("cam2/status/status.json"),
            serde_json::to_string(&st).unwrap(),
        )
        .unwrap();
        assert_eq!(scan(std::slice::from_ref(&root)).len(), 1);
        st.state = shared::api::State::Exited;
        std::fs::write(
            root.join("cam2/status/status.json"),
            serde_json::to_string(&st).unwrap(),
        )
        .unwrap();
        assert_eq!(scan(std::slice::from_ref(&root)).len(), 2);
        assert!(scan(&[root.join("missing")]).is_empty());
        // A symlink to a work directory elsewhere is one too (a symlink to a file is not).
        let elsewhere = root.with_extension("elsewhere");
        std::fs::create_dir_all(elsewhere.join("cam9")).unwrap();
        std::fs::write(elsewhere.join("cam9/api.sock"), b"").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("cam9"), root.join("cam9")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("cam9/api.sock"), root.join("file")).unwrap();
        let names: Vec<String> = scan(std::slice::from_ref(&root))
            .iter()
            .map(Target::name)
            .collect();
        assert_eq!(names, vec!["cam1", "cam2", "cam9"]);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&elsewhere).unwrap();
    }
}
