//! The signals a mail server's main loop waits for (Unix): SIGTERM and
//! SIGINT stop it, SIGHUP asks it to reload (certificates, user lists)
//! without dropping connections, as service managers expect
//! (`systemctl reload` sends SIGHUP).

use std::fmt;
use std::io;

use tokio::signal::unix::{SignalKind, signal};

/// A signal that asks the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopSignal {
    /// SIGTERM (a service manager stopping the server).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// Waits for SIGTERM or SIGINT and says which came; each SIGHUP before
/// that calls `on_hangup`. The handlers are installed first, so a signal
/// arriving while this runs is never lost; failing to install them is an
/// error (the caller cannot be stopped gracefully, and should say so).
/// Call it within a tokio runtime.
pub async fn until_stop_signal(mut on_hangup: impl FnMut()) -> io::Result<StopSignal> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(StopSignal::Terminate),
            _ = int.recv() => return Ok(StopSignal::Interrupt),
            _ = hup.recv() => on_hangup(),
        }
    }
}
