//! SPEC §11: `GET /events` (`stream`), `EVENT_HOOK` (`hook`) and `WEBHOOK_URL` (`webhook`), with
//! the real wrapperd, the scripted fake ffmpeg or a stand-in whose health flips with every block,
//! and a real HTTP server in the test for the webhook.

mod hook;
mod stream;
mod webhook;

use std::time::Duration;

use tests::Daemon;

/// Waits (bounded) for wrapperd to exit; its exit status code.
fn exit_code(d: &mut Daemon, within: Duration) -> Option<i32> {
    d.wait(within).code()
}
