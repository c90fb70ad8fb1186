//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, `postgres` on a loopback high port with its unix socket in
//! that directory, stopped and removed when dropped.
//!
//! Debian's `postgresql` package (scripts/install-peers.sh) keeps the
//! binaries in `/usr/lib/postgresql/VERSION/bin`, off `PATH`; they are
//! looked for there, then on `PATH`. PostgreSQL refuses to run as root:
//! under root (CI) the server runs as the `postgres` user the package
//! creates, and the directory is handed to it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, find_executable, free_port, missing, wait_for_port};

/// A PostgreSQL server of this test alone. See the module docs.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    server: Option<ChildGuard>,
}

/// The database user (superuser, trust authentication on loopback) and
/// database the tests connect as.
pub const PG_USER: &str = "postern";

/// The directory holding `initdb` and `postgres`, if PostgreSQL is
/// installed.
pub fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    // The newest installed version: directory names are major versions.
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().or_else(|| {
        let initdb = find_executable("initdb")?;
        let real = std::fs::canonicalize(initdb).ok()?;
        Some(real.parent()?.to_owned())
    })
}

/// The uid and gid of `name` from /etc/passwd.
fn passwd_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective uid (Linux). Elsewhere
    // the owner of a file this process creates tells; the name is unique
    // per call, because tests starting servers in parallel threads of one
    // process must not remove each other's probe.
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return m.uid() == 0;
    }
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = std::env::temp_dir().join(format!("postern-uid-probe-{}-{n}", std::process::id()));
    let uid = std::fs::write(&probe, b"")
        .and_then(|()| std::fs::metadata(&probe))
        .map(|m| m.uid());
    let _ = std::fs::remove_file(&probe);
    uid.is_ok_and(|u| u == 0)
}

impl Postgres {
    /// Initializes and starts a server; `None` after [`missing`] when
    /// PostgreSQL is not installed (a failure under
    /// `POSTERN_REQUIRE_PEERS=1`). Panics if an installed server does not
    /// come up: that is a broken test machine, not a missing peer.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            missing("postgresql (initdb, postgres)");
            return None;
        };
        let user = if running_as_root() {
            Some(
                passwd_ids("postgres")
                    .expect("running as root: PostgreSQL needs a `postgres` user"),
            )
        } else {
            None
        };
        let dir =
            std::env::temp_dir().join(format!("postern-pg-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL directory");
        if let Some((uid, gid)) = user {
            chown(&dir, uid, gid);
        }
        let mut pg = Postgres {
            bin,
            dir,
            port: free_port(),
            user,
            server: None,
        };
        let data = pg.data_dir();
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        Some(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c
    }

    /// (Re)starts the server on the same port and data directory; waits
    /// until it accepts connections.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "the server is running already");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("creating the log");
        if let Some((uid, gid)) = self.user {
            chown(&self.dir.join("server.log"), uid, gid);
        }
        let child = ChildGuard::spawn(
            self.command("postgres")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-p", &self.port.to_string()])
                .arg("-k")
                .arg(&self.dir)
                .args(["-c", "listen_addresses=127.0.0.1"])
                // Durable as in production: what the tests verify.
                .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
                .args(["-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log),
        );
        self.server = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if !wait_for_port(addr, Duration::from_secs(30)) {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!("postgres did not start on {addr}: {log}");
        }
        // The port accepts before recovery ends: wait until a query works.
        for _ in 0..300 {
            let ok = Command::new(self.bin.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", PG_USER, "-d", "postgres", "-Atc", "select 1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || !self.bin.join("psql").is_file() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres on {addr} accepts connections but answers no query");
    }

    /// Stops the server as a crash would (`SIGQUIT`, PostgreSQL's
    /// immediate shutdown: no checkpoint, crash recovery at the next
    /// start), and waits for it to exit.
    pub fn crash(&mut self) {
        if let Some(mut guard) = self.server.take() {
            let pid = guard.0.id();
            let _ = Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
            let _ = guard.0.wait();
        }
    }

    /// Stops the server cleanly (`SIGINT`, fast shutdown) and waits.
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.server.take() {
            let pid = guard.0.id();
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            let _ = guard.0.wait();
        }
    }

    /// The TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A connection string for database `db` over TCP, in the key=value
    /// form libpq and tokio-postgres read.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={PG_USER} dbname={db} connect_timeout=5",
            self.port
        )
    }

    /// Creates database `name` (through `psql`).
    pub fn create_db(&self, name: &str) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", PG_USER, "-d", "postgres", "-Atc"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `sql` in database `db` through `psql`; its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", PG_USER, "-d", db, "-Atc", sql])
            .stdin(Stdio::null())
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate: a test's server holds nothing worth a checkpoint.
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .expect("handing the directory to postgres");
}
