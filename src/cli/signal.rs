//! SIGTERM, the platform's way to end or cancel a sync: stop as a process killed by the signal
//! does, after leaving the output whole.
//!
//! A wrapper must be able to tell a cancelled sync from a finished one, and PyAirbyte accepts
//! only exit 0 or death by SIGTERM after terminating a connector. So the handler marks the
//! streams still running INCOMPLETE, flushes, restores the default action and raises the
//! signal again: the parent sees "killed by SIGTERM". Where the default action is to ignore it
//! (PID 1 in a container, to which the kernel delivers no default-action signal), the process
//! exits 143, the shell's code for death by SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::protocol::Output;

/// The exit code of a process killed by SIGTERM, as shells report it (128 + 15).
pub const EXIT_TERMINATED: u8 = 143;

/// Set once SIGTERM arrived; the main thread then ends the same way the handler does.
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Handles SIGTERM for the rest of the process: see the module documentation.
pub fn spawn_sigterm_handler(output: Arc<Output>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate())
            && term.recv().await.is_some()
        {
            tracing::info!("received SIGTERM: marking the running streams INCOMPLETE and stopping");
            TERMINATING.store(true, Ordering::SeqCst);
            stop(&output);
        }
    });
}

/// Whether SIGTERM arrived: the command's own result no longer decides the exit.
pub fn terminating() -> bool {
    TERMINATING.load(Ordering::SeqCst)
}

/// Marks the running streams INCOMPLETE, flushes, and ends the process as SIGTERM's default
/// action would, or with exit 143 where that action is to ignore it. Both the handler and the
/// main thread (should the command end first) call it; whichever comes second finds the
/// output already closed.
pub fn stop(output: &Output) -> ! {
    let _ = output.interrupt();
    #[cfg(unix)]
    // SAFETY: `signal` with SIG_DFL and `raise` take no pointers and are async-signal-safe;
    // this runs on an ordinary thread, not inside a signal handler.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::raise(libc::SIGTERM);
    }
    std::process::exit(i32::from(EXIT_TERMINATED))
}
