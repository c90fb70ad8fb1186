//! Maintenance: compaction (copy live records out of mostly-dead segments)
//! and reclamation (remove segments nothing live is in).
//!
//! Reclamation order matters for "a finished message never comes back": a
//! segment holding a tombstone is only removed once no other segment holds
//! that message's records, and those removals are made durable (directory
//! `fsync`) before the tombstone's segment is even considered. So a crash
//! at any point leaves either the records and their tombstone, or neither.

use std::sync::atomic::Ordering;

use super::error::LogError;
use super::record::{MessageKey, RecordKind, encoded_len, verify_read};
use super::segment::segment_name;
use super::store::{CopyRecord, Shared, Work};

/// What a maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Maintenance {
    /// Segment files removed.
    pub reclaimed: usize,
    /// Segments compacted (their live records copied forward).
    pub compacted: usize,
    /// Records copied by compaction.
    pub copied_records: usize,
}

/// The maintenance thread: one pass after every rollover.
pub(crate) fn background(shared: &Shared) {
    loop {
        {
            let mut bg = shared.background();
            while !bg.maintain && !bg.shutdown {
                bg = shared
                    .background_cv
                    .wait(bg)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if bg.shutdown {
                return;
            }
            bg.maintain = false;
        }
        if let Err(e) = run(shared) {
            tracing::error!(error = %e, "log maintenance failed");
        }
    }
}

/// A record to copy: message, origin lsn, kind (None: tombstone), where.
type Planned = (MessageKey, u64, Option<RecordKind>, u64, u32, u64);

/// One pass: compaction, then reclamation until nothing more goes.
pub(crate) fn run(shared: &Shared) -> Result<Maintenance, LogError> {
    let _one = shared.maintaining.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = Maintenance::default();
    compact(shared, &mut report)?;
    reclaim(shared, &mut report)?;
    Ok(report)
}

fn compact(shared: &Shared, report: &mut Maintenance) -> Result<(), LogError> {
    let threshold = shared.config.compact_below;
    let candidates: Vec<(u64, Vec<Planned>)> = {
        let index = shared.index();
        let usage = index.usage();
        let mut out = Vec::new();
        for (&seq, u) in &usage {
            let Some(seg) = index.segments.get(&seq) else {
                continue;
            };
            if seq >= index.active || (u.live_records == 0 && u.needed_tombs == 0) {
                continue;
            }
            if u.live_bytes as f64 >= threshold * seg.capacity as f64 {
                continue;
            }
            let mut plan: Vec<Planned> = Vec::new();
            for (&key, m) in &index.messages {
                if m.damage.is_some() {
                    // Left where it is: copying would hide the damage.
                    continue;
                }
                for (&origin, loc) in &m.records {
                    if loc.seg == seq {
                        plan.push((key, origin, Some(loc.kind), loc.offset, loc.len, loc.lsn));
                    }
                }
            }
            for &key in &seg.tombs {
                if index.tomb_needed(key, seq) {
                    plan.push((key, 0, None, 0, 0, 0));
                }
            }
            plan.sort_by_key(|p| (p.0, p.1));
            out.push((seq, plan));
        }
        out
    };
    let max = shared.config.max_submission();
    for (seq, plan) in candidates {
        let file = match shared.index().segments.get(&seq) {
            Some(s) => s.file.clone(),
            None => continue,
        };
        let mut tickets = Vec::new();
        let mut batch: Vec<CopyRecord> = Vec::new();
        let mut batch_size = 0;
        let mut copied = 0;
        for (key, origin, kind, offset, len, lsn) in plan {
            let payload = match kind {
                None => Vec::new(),
                Some(_) => {
                    let mut buf = vec![0u8; encoded_len(len as usize)];
                    file.read_at(&mut buf, offset)
                        .map_err(|e| shared.io_err("read", seq, e))?;
                    match verify_read(&buf, lsn) {
                        Some(p) => p.to_vec(),
                        None => {
                            tracing::error!(segment = %shared.io.path(&segment_name(seq)).display(), offset, message = %key, "record does not verify; not compacted");
                            continue;
                        }
                    }
                }
            };
            let size = encoded_len(payload.len());
            if batch_size + size > max && !batch.is_empty() {
                tickets.push(shared.submit(Work::Copy(std::mem::take(&mut batch))));
                batch_size = 0;
            }
            batch_size += size;
            copied += 1;
            batch.push(CopyRecord {
                key,
                origin,
                kind,
                payload,
                source: seq,
            });
        }
        if !batch.is_empty() {
            tickets.push(shared.submit(Work::Copy(batch)));
        }
        for t in tickets {
            t.wait()?;
        }
        report.compacted += 1;
        report.copied_records += copied;
    }
    Ok(())
}

fn reclaim(shared: &Shared, report: &mut Maintenance) -> Result<(), LogError> {
    loop {
        let victims: Vec<u64> = {
            let mut index = shared.index();
            let usage = index.usage();
            let mut victims = Vec::new();
            for (&seq, u) in &usage {
                if seq >= index.active || u.live_records > 0 {
                    continue;
                }
                let Some(seg) = index.segments.get(&seq) else {
                    continue;
                };
                // Evaluated one segment at a time: dropping this one's
                // tombstones makes other copies of them needed.
                if seg.tombs.iter().any(|&k| index.tomb_needed(k, seq)) {
                    continue;
                }
                index.drop_tombs_of(seq);
                victims.push(seq);
            }
            victims
        };
        if victims.is_empty() {
            return Ok(());
        }
        for &seq in &victims {
            shared
                .io
                .remove(&segment_name(seq))
                .map_err(|e| shared.io_err("remove segment", seq, e))?;
        }
        shared
            .io
            .sync_dir()
            .map_err(|e| shared.io_err("fsync directory for", victims[0], e))?;
        let mut index = shared.index();
        for &seq in &victims {
            index.remove_segment(seq);
        }
        shared
            .counters
            .segments_removed
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        report.reclaimed += victims.len();
    }
}
