//! The events of `GET /events`, `EVENT_HOOK` and `WEBHOOK_URL` (SPEC §11).
//!
//! wrapperd serializes [`Event`] once per event (for the stream, the hook's `FFW_JSON` and the
//! webhook's body) and fftop reads it back, so both sides agree by construction. Every event has
//! the same head (`id`, `t`, `event`, `run`, `health`, `reason`); the fields of one kind only
//! (`old`, `pid`, `delay_s`, `exit_code`, …) are left out when they do not apply. Fields may be
//! added, never renamed.

use serde::{Deserialize, Serialize};

use crate::api::{ExitInfo, FfmpegStatus, Health, RunRecord, Status};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The current `/status`, first on every stream (never sent to hooks or webhooks).
    Snapshot,
    /// A run began: ffmpeg was spawned.
    Started,
    /// The encode's health word changed (`warming_up`, `ok`, `failing`, `stalled`).
    Health,
    /// A stop was asked of ffmpeg, with the reason.
    Stopping,
    /// ffmpeg ended, with the run record.
    Exited,
    /// A new run starts after a delay.
    Restarting,
    /// Too many restarts: wrapperd gives up and exits.
    GaveUp,
    /// A control request (`POST /stop`, `POST /restart`) was accepted.
    Control,
}

impl EventKind {
    /// The word in `event` (and `FFW_EVENT`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Snapshot => "snapshot",
            EventKind::Started => "started",
            EventKind::Health => "health",
            EventKind::Stopping => "stopping",
            EventKind::Exited => "exited",
            EventKind::Restarting => "restarting",
            EventKind::GaveUp => "gave_up",
            EventKind::Control => "control",
        }
    }

    /// Every kind, in the order the README lists them.
    pub const ALL: [EventKind; 8] = [
        EventKind::Snapshot,
        EventKind::Started,
        EventKind::Health,
        EventKind::Stopping,
        EventKind::Exited,
        EventKind::Restarting,
        EventKind::GaveUp,
        EventKind::Control,
    ];
}

/// One event, as one `data:` line of `/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing for the life of one wrapperd, from 1 (a snapshot carries the newest id sent
    /// before it, 0 when there was none).
    pub id: u64,
    /// When it happened, RFC 3339 with milliseconds (UTC).
    pub t: String,
    /// What happened.
    pub event: EventKind,
    /// The run it belongs to (`/status`'s `run.number`).
    pub run: u64,
    /// The health word right after it happened.
    pub health: Health,
    /// The health's reason (for `control` and `gave_up`, what was asked or decided).
    pub reason: Option<String>,
    /// `health`: the word before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Health>,
    /// `started`: ffmpeg's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `restarting`: seconds until the next run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<f64>,
    /// `exited`: ffmpeg's status as a shell reports it (the code, or 128+N for signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `exited`: ffmpeg's status (a code, `"signal N"` or `"not started"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffmpeg_status: Option<FfmpegStatus>,
    /// `exited`: the run's record (SPEC §10), when it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
    /// `exited` when wrapperd itself exits after the run: its exit, as `/status`'s `exit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    /// `control`: what was asked (`stop`, `restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// `control`: who asked (`socket`, or the TCP peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `snapshot`: the current `/status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
}

impl Event {
    /// An event with only the common head set.
    pub fn new(id: u64, t: String, event: EventKind, run: u64, health: Health) -> Event {
        Event {
            id,
            t,
            event,
            run,
            health,
            reason: None,
            old: None,
            pid: None,
            delay_s: None,
            exit_code: None,
            ffmpeg_status: None,
            record: None,
            exit: None,
            control: None,
            origin: None,
            status: None,
        }
    }

    /// One human line about it, prefixed with `name` (the work directory's name): the webhook's
    /// `text`/`content`, and fftop's timeline.
    pub fn summary(&self, name: &str) -> String {
        let reason = self
            .reason
            .as_deref()
            .map(|r| format!(": {}", one_line(r)))
            .unwrap_or_default();
        let run = self.run;
        let what = match self.event {
            EventKind::Snapshot => format!("{}{reason}", self.health.as_str()),
            EventKind::Started => match self.pid {
                Some(pid) => format!("run {run} started (ffmpeg pid {pid})"),
                None => format!("run {run} started"),
            },
            EventKind::Health => match self.old {
                Some(old) => format!("{} (was {}){reason}", self.health.as_str(), old.as_str()),
                None => format!("{}{reason}", self.health.as_str()),
            },
            EventKind::Stopping => format!("stopping{reason}"),
            EventKind::Exited => {
                let st = self
                    .ffmpeg_status
                    .map(|s| format!(", ffmpeg status {s}"))
                    .unwrap_or_default();
                let why = self
                    .record
                    .as_ref()
                    .map(|r| format!(": {}", one_line(&r.reason)))
                    .unwrap_or(reason);
                format!("run {run} ended{st}{why}")
            }
            EventKind::Restarting => match self.delay_s {
                Some(d) => format!("restarting in {d:.1} s{reason}"),
                None => format!("restarting{reason}"),
            },
            EventKind::GaveUp => format!("gave up{reason}"),
            EventKind::Control => format!(
                "{} requested by {}",
                self.control.as_deref().unwrap_or("control"),
                self.origin.as_deref().unwrap_or("?")
            ),
        };
        format!("{name}: {what}")
    }
}

/// `s` with line breaks as spaces.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_serde() {
        for k in EventKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn an_event_round_trips_and_leaves_out_what_does_not_apply() {
        let mut e = Event::new(
            7,
            "2026-11-23T23:54:00.123Z".into(),
            EventKind::Health,
            3,
            Health::Stalled,
        );
        e.old = Some(Health::Ok);
        e.reason = Some("no output for 2.1 s".into());
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"id":7,"t":"2026-11-23T23:54:00.123Z","event":"health","run":3,"health":"stalled","reason":"no output for 2.1 s","old":"ok"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), e);
        assert_eq!(
            e.summary("cam1"),
            "cam1: stalled (was ok): no output for 2.1 s"
        );
    }

    #[test]
    fn summaries_are_one_line() {
        let mut e = Event::new(1, "t".into(), EventKind::Exited, 2, Health::Exited);
        e.ffmpeg_status = Some(FfmpegStatus::Code(1));
        e.reason = Some("ffmpeg ended by itself\nwith status 1".into());
        assert_eq!(
            e.summary("cam"),
            "cam: run 2 ended, ffmpeg status 1: ffmpeg ended by itself with status 1"
        );
        let mut r = Event::new(2, "t".into(), EventKind::Restarting, 2, Health::Restarting);
        r.delay_s = Some(4.0);
        assert_eq!(r.summary("cam"), "cam: restarting in 4.0 s");
        let mut c = Event::new(3, "t".into(), EventKind::Control, 2, Health::Ok);
        c.control = Some("restart".into());
        c.origin = Some("socket".into());
        assert_eq!(c.summary("cam"), "cam: restart requested by socket");
    }
}
