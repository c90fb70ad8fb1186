//! Reading the file-per-message spool of earlier versions, to import it
//! into the [`LogStore`] at open.
//!
//! That layout, in the queue directory:
//!
//! ```text
//! ID.msg   the body
//! ID.env   the envelope, TOML; since v2 its last line is a seal,
//!          `# postern-seal v1 env=LEN:CRC body=LEN:CRC` (or `body=-`)
//! tmp/     envelope updates in progress (never visible)
//! format   marker: every envelope here is sealed (v2)
//! ```
//!
//! A message existed exactly when `ID.env` existed and, in a v2 queue, its
//! seal verified; a v1 queue (no marker) had only complete envelopes. So
//! the import keeps those, drops what a crash left half-written (never
//! acknowledged), and moves each kept message into the log: committed
//! there (durably) first, its files removed after. A crash in between
//! finds the message in the log on the next start and only removes the
//! files: nothing is imported twice. Envelopes of the v1 format (string
//! `NOTIFY`, `ORCPT`, TLS version) are read by the envelope's own
//! deserializer (`compat`).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use crate::envelope::Envelope;
use crate::id::QueueId;
use crate::logstore::LogStore;
use crate::seal::{FORMAT_MARKER, NO_SEAL, verify_sealed};
use crate::sync_dir;

/// Whether `dir` holds anything of a file-per-message spool.
pub(crate) fn present(dir: &Path) -> bool {
    if dir.join("tmp").exists() || dir.join(FORMAT_MARKER).exists() {
        return true;
    }
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".env") || name.ends_with(".msg")
        })
    })
}

/// Imports the spool in `dir` into `store`; returns how many messages.
pub(crate) fn import(dir: &Path, store: &LogStore) -> io::Result<usize> {
    let tmp = dir.join("tmp");
    if tmp.is_dir() {
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path)?;
            }
        }
    }
    let mut bodies = BTreeSet::new();
    let mut envelopes = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".msg") {
            bodies.insert(stem.to_owned());
        } else if let Some(stem) = name.strip_suffix(".env") {
            envelopes.insert(stem.to_owned());
        }
    }
    // A body without an envelope, or the reverse: a commit or a removal
    // interrupted by a crash.
    for stem in bodies.difference(&envelopes) {
        fs::remove_file(dir.join(format!("{stem}.msg")))?;
    }
    for stem in envelopes.difference(&bodies) {
        fs::remove_file(dir.join(format!("{stem}.env")))?;
    }
    let sealed_queue = dir.join(FORMAT_MARKER).exists();
    let mut imported = 0;
    let mut kept = 0;
    for stem in envelopes.intersection(&bodies) {
        let env_path = dir.join(format!("{stem}.env"));
        let body_path = dir.join(format!("{stem}.msg"));
        match import_one(store, stem, &env_path, &body_path, sealed_queue)? {
            Imported::Yes => imported += 1,
            Imported::Torn => {}
            Imported::Kept => {
                kept += 1;
                continue;
            }
        }
        fs::remove_file(&env_path)?;
        fs::remove_file(&body_path)?;
    }
    sync_dir(dir)?;
    if kept == 0 {
        if tmp.is_dir() {
            fs::remove_dir(&tmp)?;
        }
        match fs::remove_file(dir.join(FORMAT_MARKER)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(dir)?;
    }
    Ok(imported)
}

enum Imported {
    /// Committed to the log (now or by an interrupted earlier import).
    Yes,
    /// A commit that never finished: dropped.
    Torn,
    /// Unreadable: left where it is for an operator.
    Kept,
}

fn import_one(
    store: &LogStore,
    stem: &str,
    env_path: &Path,
    body_path: &Path,
    sealed_queue: bool,
) -> io::Result<Imported> {
    if let Err(problem) = verify_sealed(env_path, body_path)?
        && (sealed_queue || problem != NO_SEAL)
    {
        tracing::warn!(file = %env_path.display(), %problem, "dropping a message whose commit did not finish (never acknowledged)");
        return Ok(Imported::Torn);
    }
    let text = fs::read_to_string(env_path)?;
    // The envelope's deserializer reads the v1 text forms (bare sender,
    // reply lines, string NOTIFY) through `compat`, into the typed fields.
    let env = match toml::from_str::<Envelope>(&text) {
        Ok(env) => env,
        Err(e) => {
            tracing::error!(file = %env_path.display(), error = %e, "cannot import an envelope that does not parse; left in place");
            return Ok(Imported::Kept);
        }
    };
    let Ok(id) = stem.parse::<QueueId>() else {
        tracing::error!(file = %env_path.display(), "cannot import an envelope whose name is no queue id; left in place");
        return Ok(Imported::Kept);
    };
    if store.list_all()?.contains(&id) {
        return Ok(Imported::Yes);
    }
    let body = fs::read(body_path)?;
    let mut writer = store.writer(&id)?;
    writer.write(&body)?;
    drop(writer.commit(&env).wait()?);
    Ok(Imported::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{RecipientState, unix_now};
    use crate::seal::sealed;
    use crate::test_support::{mailbox, sender};
    use std::path::PathBuf;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "postern-legacy-{name}-{}-{}",
            std::process::id(),
            unix_now()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("tmp")).unwrap();
        d
    }

    fn id(n: u32) -> QueueId {
        format!("0123456789abcd0000{n:08x}").parse().unwrap()
    }

    fn envelope(id: &QueueId) -> Envelope {
        let mut env = Envelope::new(id.clone(), sender("a@b.example"));
        env.recipients
            .push(RecipientState::pending(mailbox("c@d.example"), false));
        env
    }

    /// A v2 commit: body and sealed envelope.
    fn write_sealed(dir: &Path, id: &QueueId, body: &[u8]) {
        fs::write(dir.join(format!("{id}.msg")), body).unwrap();
        let seal = Some((body.len() as u64, crc32fast::hash(body)));
        let text = sealed(envelope(id).to_toml().unwrap(), seal);
        fs::write(dir.join(format!("{id}.env")), text).unwrap();
    }

    #[test]
    fn a_queue_from_before_seals_is_imported_not_emptied() {
        let dir = tempdir("v1");
        let id = id(1);
        fs::write(
            dir.join(format!("{id}.env")),
            envelope(&id).to_toml().unwrap(),
        )
        .unwrap();
        fs::write(dir.join(format!("{id}.msg")), b"Subject: old\r\n\r\n").unwrap();
        let store = LogStore::open(&dir).unwrap();
        assert_eq!(store.list().unwrap(), vec![id.clone()]);
        assert_eq!(store.load(&id).unwrap(), envelope(&id));
        assert_eq!(store.body(&id).unwrap(), b"Subject: old\r\n\r\n");
        assert!(!present(&dir), "the spool's files are gone");
        drop(store);
        let store = LogStore::open(&dir).unwrap();
        assert_eq!(store.list().unwrap(), vec![id], "imported once");
        drop(store);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_commits_are_dropped_and_sealed_ones_imported() {
        let dir = tempdir("seal");
        fs::write(dir.join(FORMAT_MARKER), b"sealed envelopes v1\n").unwrap();
        let ids: Vec<QueueId> = (0..5).map(id).collect();
        for (i, id) in ids.iter().enumerate() {
            let mut body = format!("Subject: {i}\r\n\r\n").into_bytes();
            body.extend(std::iter::repeat_n(b'x', 100_000 + i));
            write_sealed(&dir, id, &body);
        }
        // 0: intact. 1: envelope torn. 2: body short. 3: body altered.
        // 4: an unsealed envelope in a sealed queue (torn).
        let env1 = dir.join(format!("{}.env", ids[1]));
        let text = fs::read(&env1).unwrap();
        fs::write(&env1, &text[..text.len() - 10]).unwrap();
        let body2 = dir.join(format!("{}.msg", ids[2]));
        let b = fs::read(&body2).unwrap();
        fs::write(&body2, &b[..b.len() - 4096]).unwrap();
        let body3 = dir.join(format!("{}.msg", ids[3]));
        let mut b = fs::read(&body3).unwrap();
        b[50_000] = 0;
        fs::write(&body3, b).unwrap();
        let env4 = envelope(&ids[4]).to_toml().unwrap();
        fs::write(dir.join(format!("{}.env", ids[4])), env4).unwrap();
        // Leftovers: an update in progress, a lone body, a lone envelope.
        fs::write(dir.join("tmp/x.env"), b"x").unwrap();
        fs::write(dir.join(format!("{}.msg", id(9))), b"x").unwrap();
        fs::write(dir.join(format!("{}.env", id(10))), b"x").unwrap();
        let store = LogStore::open(&dir).unwrap();
        assert_eq!(store.list().unwrap(), vec![ids[0].clone()]);
        assert_eq!(store.body(&ids[0]).unwrap().len(), 100_000 + 14);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && n != "log")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        drop(store);
        let _ = fs::remove_dir_all(&dir);
    }
}
