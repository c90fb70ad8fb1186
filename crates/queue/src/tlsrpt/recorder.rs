//! [`TlsRptRecorder`]: the relay's TLS sessions, counted per UTC day in a
//! JSON file a day under a directory, so a restart loses nothing and
//! `postern-mta tls-report` can read the pending day while the MTA runs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use postern_relay::Route;
use postern_relay::tlsrpt::TlsSession;

use super::TlsRptLog;
use crate::runner::DeliveryObserver;

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Counts outbound TLS sessions per policy and day (RFC 8460 §4), on disk.
///
/// Add it to the runner with
/// [`Runner::with_observer`](crate::Runner::with_observer); each route's
/// sessions are added to the day's log in memory, which is written
/// ([`write_atomically`](crate::write_atomically)) at most every
/// [`WRITE_EVERY`] seconds, when the day changes, on
/// [`TlsRptRecorder::flush`] and when the recorder is dropped: the runner
/// is not held up by a synced write per route, and a crash loses at most
/// those seconds of counts.
pub struct TlsRptRecorder {
    dir: PathBuf,
    state: Mutex<State>,
    clock: Clock,
}

/// Seconds between writes of the day's log.
pub const WRITE_EVERY: u64 = 10;

struct State {
    day: u64,
    log: TlsRptLog,
    dirty: bool,
    written_at: u64,
}

impl std::fmt::Debug for TlsRptRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRptRecorder")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The start (Unix seconds, midnight UTC) of the day holding `unix`.
pub fn day_of(unix: u64) -> u64 {
    unix - unix % 86_400
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TlsRptRecorder {
    /// A recorder keeping its logs in `dir` (created, mode 0700), with the
    /// system clock; today's log is read back if it exists.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_with_clock(dir, Arc::new(now))
    }

    /// [`TlsRptRecorder::open`] reading the time (Unix seconds) from
    /// `clock` (tests of the day's end).
    pub fn open_with_clock(dir: impl Into<PathBuf>, clock: Clock) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let day = day_of(clock());
        let log = Self::load(&dir, day)?;
        Ok(Self {
            dir,
            state: Mutex::new(State {
                day,
                log,
                dirty: false,
                written_at: 0,
            }),
            clock,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the day starting at `day`.
    pub fn day_file(dir: &Path, day: u64) -> PathBuf {
        dir.join(format!("day-{day}.json"))
    }

    /// The log of the day starting at `day` in `dir` (empty when there is
    /// none). A file that does not parse is an error naming it.
    pub fn load(dir: &Path, day: u64) -> io::Result<TlsRptLog> {
        let path = Self::day_file(dir, day);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a TLS-RPT log: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TlsRptLog::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds `sessions` to today's log; writes it when [`WRITE_EVERY`]
    /// seconds passed since the last write.
    pub fn record(&self, sessions: &[TlsSession]) -> io::Result<()> {
        let now = (self.clock)();
        let today = day_of(now);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.day != today {
            // The old day's last counts, then the new day (its file may
            // exist: a restart earlier today).
            self.write(&mut state, now)?;
            *state = State {
                day: today,
                log: Self::load(&self.dir, today)?,
                dirty: false,
                written_at: now,
            };
        }
        for s in sessions {
            match &s.failure {
                None => state.log.success(&s.policy),
                Some(f) => state.log.failure(&s.policy, f.clone()),
            }
        }
        state.dirty = true;
        if now.saturating_sub(state.written_at) >= WRITE_EVERY {
            self.write(&mut state, now)?;
        }
        Ok(())
    }

    /// Writes what is not written yet.
    pub fn flush(&self) -> io::Result<()> {
        let now = (self.clock)();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.write(&mut state, now)
    }

    fn write(&self, state: &mut State, now: u64) -> io::Result<()> {
        if !state.dirty {
            return Ok(());
        }
        let json = serde_json::to_vec(&state.log).map_err(io::Error::other)?;
        crate::write_atomically(&Self::day_file(&self.dir, state.day), &json, 0o600)?;
        state.dirty = false;
        state.written_at = now;
        Ok(())
    }

    /// Today's start and log so far (the pending report's content).
    pub fn pending(&self) -> (u64, TlsRptLog) {
        let today = day_of((self.clock)());
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.day == today {
            return (today, state.log.clone());
        }
        (today, TlsRptLog::new())
    }

    /// The days before today that have a log not yet reported, oldest
    /// first (what is in memory is written first).
    pub fn finished_days(&self) -> io::Result<Vec<u64>> {
        self.flush()?;
        let today = day_of((self.clock)());
        let mut days: Vec<u64> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix("day-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .filter(|d| *d < today)
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// Forgets a reported day (removes its log and its progress).
    pub fn retire(&self, day: u64) -> io::Result<()> {
        for path in [Self::day_file(&self.dir, day), self.sent_file(day)] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn sent_file(&self, day: u64) -> PathBuf {
        self.dir.join(format!("sent-{day}.json"))
    }

    /// What of `day`'s reports was already sent (keys of
    /// [`SentReport`](super::SentReport)); empty when nothing was, or the
    /// record cannot be read (then a report may go twice, never not).
    pub fn sent(&self, day: u64) -> std::collections::BTreeSet<String> {
        std::fs::read(self.sent_file(day))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Keeps `day` for another pass, with what was sent.
    pub fn keep_sent(&self, day: u64, sent: &std::collections::BTreeSet<String>) -> io::Result<()> {
        let json = serde_json::to_vec(sent).map_err(io::Error::other)?;
        crate::write_atomically(&self.sent_file(day), &json, 0o600)
    }

    /// The current time, by the recorder's clock.
    pub fn now(&self) -> u64 {
        (self.clock)()
    }
}

impl Drop for TlsRptRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(dir = %self.dir.display(), error = %e, "TLS-RPT: the last counts were not written");
        }
    }
}

impl DeliveryObserver for TlsRptRecorder {
    fn tls_sessions(&self, _route: &Route, sessions: &[TlsSession]) {
        if let Err(e) = self.record(sessions) {
            tracing::error!(dir = %self.dir.display(), error = %e, "TLS-RPT: cannot write the day's log; these sessions are not counted");
        }
    }
}
