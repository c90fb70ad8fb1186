//! The queue directory is owned by one process: a second process that
//! opens it gets an error naming the directory and the holder's pid, and
//! nothing of the first one's is touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use postern_queue::{LogStore, QueueLocked};

const HOLD: &str = "POSTERN_QUEUE_LOCK_HOLD";

/// Run as a child process (by `a_second_process_is_refused_with_the_holders_pid`):
/// opens the queue named by the environment, says so, and keeps it until
/// its standard input closes.
#[test]
fn holder() {
    let Some(dir) = std::env::var_os(HOLD) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let _spool = LogStore::open(&dir).unwrap();
    // A file, not stdout: the test harness may capture what a test prints.
    std::fs::write(ready_file(&dir), std::process::id().to_string()).unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn ready_file(dir: &Path) -> PathBuf {
    dir.with_extension("ready")
}

#[test]
fn a_second_process_is_refused_with_the_holders_pid() {
    let dir = std::env::temp_dir().join(format!("postern-queue-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(ready_file(&dir));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder", "--nocapture", "--test-threads=1"])
        .env(HOLD, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(ready_file(&dir))
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
        {
            break pid;
        }
        assert!(child.try_wait().unwrap().is_none(), "the holder exited");
        assert!(
            Instant::now() < deadline,
            "the holder never locked the queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(pid, child.id());
    // The holder's segment files (its spare included) must survive the
    // refused open.
    let segments = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = segments();

    let err = LogStore::open(&dir).unwrap_err();
    let locked = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<QueueLocked>())
        .unwrap_or_else(|| panic!("not a QueueLocked error: {err}"));
    assert_eq!(locked.pid, Some(pid));
    assert_eq!(locked.dir, dir);
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains(&format!("pid {pid}")), "{text}");
    let after = segments();
    assert!(
        before.iter().all(|n| after.contains(n)),
        "{before:?} {after:?}"
    );

    // Once the holder is gone (however it ended), the queue opens.
    drop(child.stdin.take());
    child.wait().unwrap();
    let spool = LogStore::open(&dir).unwrap();
    assert!(spool.list().unwrap().is_empty());
    // The same process may open its own queue again: the lock is shared.
    let again = LogStore::open(&dir).unwrap();
    drop((spool, again));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(ready_file(&dir));
}
