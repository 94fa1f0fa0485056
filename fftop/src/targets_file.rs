//! `--targets-file FILE`: targets one per line (`#` starts a comment, blank lines are skipped),
//! read again whenever its contents change, so a fleet's list can be edited (or generated)
//! while fftop runs. A file that cannot be read keeps the last list (a half-written file
//! replaced by rename is never seen half; an editor's truncate-and-write may be, once).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use shared::client::Target;
use tokio::sync::mpsc;

use crate::event::Event;

/// The targets a file's text lists.
pub fn parse(text: &str) -> BTreeSet<Target> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(Target::parse)
        .collect()
}

/// Reads the file (blocking).
pub fn read(path: &std::path::Path) -> std::io::Result<BTreeSet<Target>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// Checks the file every `interval` (at least every 500 ms) and sends [`Event::TargetsFile`]
/// when its contents changed (and once at the start).
pub async fn run(path: PathBuf, interval: Duration, tx: mpsc::Sender<Event>) {
    let interval = interval.max(Duration::from_millis(500));
    let mut last: Option<String> = None;
    loop {
        let p = path.clone();
        if let Ok(Ok(text)) = tokio::task::spawn_blocking(move || std::fs::read_to_string(p)).await
        {
            if last.as_ref() != Some(&text) {
                if tx.send(Event::TargetsFile(parse(&text))).await.is_err() {
                    return;
                }
                last = Some(text);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_line_with_comments() {
        let got = parse("# fleet\n127.0.0.1:9300  # host1\n\n  10.0.0.2:9300\n127.0.0.1:9300\n");
        let want: BTreeSet<Target> = [
            Target::Tcp("http://127.0.0.1:9300".into()),
            Target::Tcp("http://10.0.0.2:9300".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    async fn next(rx: &mut mpsc::Receiver<Event>) -> BTreeSet<Target> {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Event::TargetsFile(s))) => s,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn sends_again_when_the_file_changes() {
        let dir = crate::testutil::temp_dir("targets-file");
        let file = dir.join("targets");
        std::fs::write(&file, "127.0.0.1:1\n").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(run(file.clone(), Duration::from_millis(100), tx));
        assert_eq!(next(&mut rx).await.len(), 1);
        std::fs::write(&file, "127.0.0.1:1\n127.0.0.1:2\n").unwrap();
        assert_eq!(next(&mut rx).await.len(), 2);
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
