//! `wrapperd [FFMPEG ARGS...]`: read and check the configuration and the arguments (warnings to
//! stderr), start logging, run, map to an exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use wrapperd::config::{self, Config};
use wrapperd::{logging, signals, supervisor};

fn main() -> ExitCode {
    // Before any thread exists, so every thread (and so every signal) starts unblocked.
    signals::unblock_all();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        None => {
            eprint!("{}", Config::usage());
            return ExitCode::from(2);
        }
        Some("--help" | "-h") if args.len() == 1 => {
            print!("{}", Config::usage());
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") if args.len() == 1 => {
            println!("wrapperd {}", shared::VERSION);
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match config::load_env(&args) {
        Ok(loaded) => {
            logging::init(loaded.config.is_debug);
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            loaded.config
        }
        Err(e) => {
            eprintln!("wrapperd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wrapperd: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // `block_on` runs `run` on this thread, which lives until exit: ffmpeg's PR_SET_PDEATHSIG
    // is tied to the thread that spawned it.
    let result = runtime.block_on(supervisor::run(config, args, std::future::pending()));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("wrapperd: {e}");
            ExitCode::from(2)
        }
    }
}
