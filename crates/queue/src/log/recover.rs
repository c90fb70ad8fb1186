//! Open-time recovery: scan every segment, rebuild the index, tell a torn
//! tail from damage, seal the tail. The rules are in the module docs of
//! [`super`]; this file implements them.

use std::collections::HashSet;
use std::path::PathBuf;

use super::config::LogConfig;
use super::error::{Damage, LogError, Problem};
use super::index::{Index, Loc, Message, SegMeta};
use super::io::LogIo;
use super::record::{Header, KIND_FINISH, KIND_SEAL, MessageKey, RecordKind};
use super::segment::{Found, Scan, decode_segment_header, parse_segment_name, scan, segment_name};

/// What the scan at open found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segment files read.
    pub segments: usize,
    /// Valid records applied to the index.
    pub records: u64,
    /// Live messages after recovery (damaged ones included).
    pub messages: usize,
    /// The torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Submissions at the tail that were only partly written (never
    /// acknowledged: their sync had not returned) and were dropped whole.
    pub dropped_submissions: u64,
    /// Damage found: each names the segment file and byte offset.
    pub damage: Vec<Damage>,
    /// Unused preallocated segments removed.
    pub removed_spares: usize,
}

/// A torn tail: bytes after the last valid record of the log's last
/// segment that belong to a group commit whose `fdatasync` never returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the log now ends (a seal record was written there).
    pub offset: u64,
    /// Valid records of the torn group found after the cut and discarded.
    pub discarded_records: usize,
}

pub(crate) struct Recovered {
    pub(crate) index: Index,
    pub(crate) report: RecoveryReport,
    pub(crate) next_seq: u64,
    pub(crate) next_lsn: u64,
    pub(crate) next_group: u64,
}

struct Scanned {
    seq: u64,
    name: String,
    scan: Scan,
    len: u64,
    header: Option<(u64, u64)>,
}

impl Scanned {
    fn has_content(&self) -> bool {
        !self.scan.records.is_empty() || !self.scan.gaps.is_empty()
    }
}

/// Assembles submissions (records sharing a `txn_end`) so only whole ones
/// reach the index.
#[derive(Default)]
struct Txn {
    records: Vec<(u64, Found)>,
}

pub(crate) fn recover(io: &dyn LogIo, config: &LogConfig) -> Result<Recovered, LogError> {
    let _ = config;
    let io_err = |op, name: &str, source| LogError::Io {
        op,
        path: io.path(name),
        source,
    };
    let mut names: Vec<(u64, String)> = io
        .list()
        .map_err(|e| io_err("list", "", e))?
        .into_iter()
        .filter_map(|n| parse_segment_name(&n).map(|s| (s, n)))
        .collect();
    names.sort();
    let next_seq = names.last().map_or(1, |(s, _)| s + 1);

    let mut index = Index::default();
    let mut report = RecoveryReport::default();
    let mut scanned = Vec::with_capacity(names.len());
    for (seq, name) in names {
        let file = io.open(&name).map_err(|e| io_err("open", &name, e))?;
        let len = file.file_len().map_err(|e| io_err("stat", &name, e))?;
        let mut image = vec![0u8; len as usize];
        file.read_at(&mut image, 0)
            .map_err(|e| io_err("read", &name, e))?;
        let header = decode_segment_header(&image);
        let scan = scan(&image);
        drop(image);
        index.segments.insert(
            seq,
            SegMeta {
                file,
                capacity: header.map_or(len, |h| h.1),
                keys: HashSet::new(),
                tombs: HashSet::new(),
            },
        );
        scanned.push(Scanned {
            seq,
            name,
            scan,
            len,
            header,
        });
    }
    report.segments = scanned.len();

    // Segments after the last one with content are spares made ahead of
    // need (possibly half-made by a crash): removed.
    let tail = scanned.iter().rposition(Scanned::has_content);
    let keep = tail.map_or(0, |t| t + 1);
    for s in scanned.drain(keep..) {
        index.segments.remove(&s.seq);
        io.remove(&s.name)
            .map_err(|e| io_err("remove spare", &s.name, e))?;
        report.removed_spares += 1;
    }
    if report.removed_spares > 0 {
        io.sync_dir()
            .map_err(|e| io_err("fsync directory", "", e))?;
    }

    let mut damage: Vec<Damage> = Vec::new();
    let mut last_group = 0u64;
    let mut max_lsn = 0u64;
    let mut max_group = 0u64;
    let mut applied_lsn = 0u64;
    let mut txn = Txn::default();
    let mut tail_end: Option<(u64, u64, bool)> = None; // (seq, offset, needs seal)
    let last = scanned.len().checked_sub(1);
    for (i, s) in scanned.iter().enumerate() {
        let is_tail = Some(i) == last;
        let path = io.path(&s.name);
        let at = |offset: usize, problem: Problem, key: Option<MessageKey>| Damage {
            segment: path.clone(),
            offset: offset as u64,
            problem,
            key,
        };
        let mut truncated = false;
        match s.header {
            Some((seq, cap)) if seq == s.seq => {
                if s.len < cap {
                    truncated = true;
                    damage.push(at(
                        s.len as usize,
                        Problem::Truncated {
                            len: s.len,
                            expected: cap,
                        },
                        None,
                    ));
                }
            }
            _ => damage.push(at(0, Problem::BadSegmentHeader, None)),
        }
        for f in &s.scan.records {
            max_lsn = max_lsn.max(f.header.lsn);
            max_group = max_group.max(f.header.group);
        }
        // Where the tail's torn group starts, if it has one.
        let mut cut: Option<usize> = None;
        for g in &s.scan.gaps {
            let after: Vec<&Found> = s
                .scan
                .records
                .iter()
                .filter(|f| f.offset > g.offset)
                .collect();
            let before = s
                .scan
                .records
                .iter()
                .rev()
                .find(|f| f.offset < g.offset)
                .map_or(last_group, |f| f.header.group);
            let torn = after.first().is_none_or(|f| {
                after.iter().all(|a| a.header.group == f.header.group) && f.header.group >= before
            });
            if is_tail && torn {
                cut = Some(g.offset);
                break;
            }
            let skipped = g.resume.map_or(s.len as usize, |r| r) - g.offset;
            let key = g.header.and_then(|h| MessageKey::new(h.key));
            damage.push(at(
                g.offset,
                Problem::BadRecord {
                    skipped: skipped as u64,
                },
                key,
            ));
        }
        let trailing_gap = s.scan.gaps.last().is_some_and(|g| g.resume.is_none());
        if !is_tail && !s.scan.sealed && !truncated && !trailing_gap {
            damage.push(at(s.scan.end, Problem::MissingSeal, None));
        }
        let mut discarded = 0;
        for f in &s.scan.records {
            if cut.is_some_and(|c| f.offset > c) {
                discarded += 1;
                continue;
            }
            let h = f.header;
            last_group = h.group;
            if h.lsn <= applied_lsn {
                continue;
            }
            if let Some(&(_, p)) = txn.records.last()
                && (h.lsn != p.header.lsn + 1 || h.txn_end != p.header.txn_end)
            {
                // The previous submission stops short, and more follows:
                // damage, not a tail. Serve what is left, flagged.
                let (seg, first) = txn.records[0];
                let incomplete = txn_damage(io, &scanned, seg, &first, &txn);
                damage.extend(incomplete);
                apply(&mut index, std::mem::take(&mut txn.records), &mut report);
            }
            applied_lsn = h.lsn;
            if txn.records.is_empty() && h.lsn != h.txn_first && h.kind != KIND_SEAL {
                // The submission's first records are missing (unreadable
                // bytes before this one): serve nothing of it unflagged.
                let lone = Txn {
                    records: vec![(s.seq, *f)],
                };
                damage.extend(txn_damage(io, &scanned, s.seq, f, &lone));
            }
            txn.records.push((s.seq, *f));
            if h.lsn == h.txn_end {
                apply(&mut index, std::mem::take(&mut txn.records), &mut report);
            }
        }
        if !txn.records.is_empty() {
            if is_tail {
                // Never acknowledged: its sync had not returned.
                report.dropped_submissions += 1;
                let first = txn.records[0].1.offset;
                cut = Some(cut.map_or(first, |c| c.min(first)));
                discarded += txn.records.len();
                txn.records.clear();
            } else {
                let (seg, first) = txn.records[0];
                damage.extend(txn_damage(io, &scanned, seg, &first, &txn));
                apply(&mut index, std::mem::take(&mut txn.records), &mut report);
            }
        }
        if is_tail {
            if let Some(c) = cut {
                report.torn_tail = Some(TornTail {
                    segment: path.clone(),
                    offset: c as u64,
                    discarded_records: discarded,
                });
            }
            let end = cut.unwrap_or(s.scan.end);
            let needs_seal = cut.is_some() || !s.scan.sealed;
            tail_end = Some((s.seq, end as u64, needs_seal));
        }
    }

    let mut next_lsn = max_lsn + 1;
    let mut next_group = max_group + 1;
    if let Some((seq, offset, true)) = tail_end
        && let Some(seg) = index.segments.get(&seq)
        && offset + super::record::HEADER_LEN as u64 <= seg.capacity.min(file_len(&scanned, seq))
    {
        let mut buf = Vec::new();
        Header {
            kind: KIND_SEAL,
            flags: 0,
            len: 0,
            lsn: next_lsn,
            origin: next_lsn,
            txn_first: next_lsn,
            txn_end: next_lsn,
            group: next_group,
            key: 0,
        }
        .encode(&[], &mut buf);
        let name = segment_name(seq);
        seg.file
            .write_at(&buf, offset)
            .map_err(|e| io_err("write seal", &name, e))?;
        seg.file
            .sync_data()
            .map_err(|e| io_err("fdatasync", &name, e))?;
        next_lsn += 1;
        next_group += 1;
    }

    for d in &damage {
        tracing::error!(damage = %d, "log damage found at open");
        let Some(key) = d.key else { continue };
        if index.finished.contains_key(&key) {
            continue;
        }
        let m = index.messages.entry(key).or_insert_with(Message::default);
        if m.damage.is_none() {
            m.damage = Some(d.clone());
        }
    }
    if let Some(t) = &report.torn_tail {
        tracing::warn!(segment = %t.segment.display(), offset = t.offset, records = t.discarded_records, "torn tail cut off (a group commit that never finished)");
    }
    report.damage = damage;
    report.messages = index.messages.len();
    Ok(Recovered {
        index,
        report,
        next_seq,
        next_lsn,
        next_group,
    })
}

fn file_len(scanned: &[Scanned], seq: u64) -> u64 {
    scanned.iter().find(|s| s.seq == seq).map_or(0, |s| s.len)
}

/// Damage entries for an incomplete submission: one per message in it.
fn txn_damage(
    io: &dyn LogIo,
    scanned: &[Scanned],
    seg: u64,
    first: &Found,
    txn: &Txn,
) -> Vec<Damage> {
    let name = scanned
        .iter()
        .find(|s| s.seq == seg)
        .map_or_else(|| segment_name(seg), |s| s.name.clone());
    let mut keys: Vec<MessageKey> = txn
        .records
        .iter()
        .filter_map(|(_, f)| MessageKey::new(f.header.key))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|key| Damage {
            segment: io.path(&name),
            offset: first.offset as u64,
            problem: Problem::IncompleteCommit,
            key: Some(key),
        })
        .collect()
}

fn apply(index: &mut Index, records: Vec<(u64, Found)>, report: &mut RecoveryReport) {
    for (seq, f) in records {
        let h = f.header;
        report.records += 1;
        let Some(key) = MessageKey::new(h.key) else {
            continue;
        };
        match h.kind {
            KIND_SEAL => {}
            KIND_FINISH => index.add_finish(key, seq),
            code => {
                if let Some(kind) = RecordKind::from_code(code) {
                    index.add_data(
                        key,
                        h.origin,
                        Loc {
                            seg: seq,
                            offset: f.offset as u64,
                            len: h.len,
                            kind,
                            lsn: h.lsn,
                        },
                    );
                }
            }
        }
    }
}
