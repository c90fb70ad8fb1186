//! The committer thread (group commit) and the preallocator thread (the
//! next segment, ready before it is needed).
//!
//! The committer loops: take every submission queued so far (the group),
//! encode them into one buffer, `pwrite` it at the end of the active
//! segment, `fdatasync` the segment once, update the index, resolve every
//! ticket of the group. Submissions arriving during the sync queue up and
//! form the next group, so under load one sync covers many writers; an
//! idle log commits a lone writer at once (no timer, no added latency).
//!
//! When a group does not fit in the active segment, the committer writes a
//! seal record after what fits, syncs that segment, and switches to the
//! spare segment the preallocator made ahead of time (created, space
//! reserved, header written, file and directory synced). The acknowledgement
//! path therefore never creates a file, unless the spare is not ready yet.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::error::LogError;
use super::index::{Loc, SegMeta};
use super::io::SegmentIo;
use super::record::{
    FLAG_COPY, HEADER_LEN, Header, KIND_FINISH, KIND_SEAL, MessageKey, RecordKind, encoded_len,
};
use super::segment::{SEGMENT_HEADER_LEN, encode_segment_header, segment_name};
use super::store::{Shared, Submission, Work};
use super::ticket::{Committed, Slot};

/// The seal record's size.
const SEAL_LEN: u64 = HEADER_LEN as u64;

/// Creates segment `seq`, ready for appends: space reserved, header
/// written, file and directory entry durable.
pub(crate) fn create_segment(shared: &Shared, seq: u64) -> Result<Arc<dyn SegmentIo>, LogError> {
    let name = segment_name(seq);
    let cap = shared.config.segment_size;
    let err = |op, source| LogError::Io {
        op,
        path: shared.io.path(&name),
        source,
    };
    let file = shared
        .io
        .create(&name, cap, shared.config.preallocation)
        .map_err(|e| err("create segment", e))?;
    file.write_at(&encode_segment_header(seq, cap), 0)
        .map_err(|e| err("write segment header", e))?;
    file.sync_all().map_err(|e| err("fsync segment", e))?;
    shared
        .io
        .sync_dir()
        .map_err(|e| err("fsync directory for", e))?;
    shared
        .counters
        .segments_created
        .fetch_add(1, Ordering::Relaxed);
    Ok(file)
}

/// The preallocator thread: makes the requested spare segment.
pub(crate) fn preallocator(shared: &Shared) {
    let mut bg = shared.background();
    loop {
        if let Some((seq, None)) = bg.spare {
            drop(bg);
            let made = create_segment(shared, seq);
            bg = shared.background();
            bg.spare = Some((seq, Some(made)));
            shared.background_cv.notify_all();
            continue;
        }
        if bg.shutdown {
            return;
        }
        bg = shared
            .background_cv
            .wait(bg)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// One record planned for a group.
struct PlanRec {
    kind: u8,
    user_kind: Option<RecordKind>,
    flags: u16,
    key: MessageKey,
    /// A copy's origin lsn.
    origin: Option<u64>,
    payload: Vec<u8>,
}

struct Planned {
    slot: Arc<Slot>,
    recs: Vec<PlanRec>,
    size: usize,
}

/// A record written, to be put in the index after the sync.
struct Written {
    key: MessageKey,
    kind: u8,
    user_kind: Option<RecordKind>,
    origin: u64,
    loc_seg: u64,
    offset: u64,
    len: u32,
    lsn: u64,
}

/// The committer: owns the active segment and the sequence counters.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    seq: u64,
    file: Arc<dyn SegmentIo>,
    pos: u64,
    next_lsn: u64,
    next_group: u64,
}

impl Committer {
    /// Creates the first active segment (`seq`) and asks for the spare.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        seq: u64,
        next_lsn: u64,
        next_group: u64,
    ) -> Result<Committer, LogError> {
        let file = create_segment(shared, seq)?;
        {
            let mut index = shared.index();
            index.segments.insert(
                seq,
                SegMeta {
                    file: file.clone(),
                    capacity: shared.config.segment_size,
                    keys: HashSet::new(),
                    tombs: HashSet::new(),
                },
            );
            index.active = seq;
        }
        shared.background().spare = Some((seq + 1, None));
        shared.background_cv.notify_all();
        Ok(Committer {
            shared: shared.clone(),
            seq,
            file,
            pos: SEGMENT_HEADER_LEN as u64,
            next_lsn,
            next_group,
        })
    }

    /// The thread's loop; returns when the log shuts down and the queue is
    /// empty.
    pub(crate) fn run(mut self) {
        loop {
            let (subs, failed) = {
                let mut q = self.shared.queue();
                loop {
                    if !q.subs.is_empty() {
                        break (std::mem::take(&mut q.subs), q.failed);
                    }
                    if q.shutdown {
                        return;
                    }
                    q = self
                        .shared
                        .queue_cv
                        .wait(q)
                        .unwrap_or_else(|e| e.into_inner());
                }
            };
            if failed {
                for s in subs {
                    s.slot.complete(Err(LogError::Failed));
                }
                continue;
            }
            self.group(subs);
        }
    }

    /// Validates the submissions against the index; resolves the invalid
    /// ones and those with nothing to write.
    fn plan(&self, subs: Vec<Submission>, group: u64) -> Vec<Planned> {
        let index = self.shared.index();
        let max = self.shared.config.max_submission();
        let mut finishing: HashSet<MessageKey> = HashSet::new();
        let mut appended: HashSet<MessageKey> = HashSet::new();
        let mut out = Vec::with_capacity(subs.len());
        for Submission { work, slot } in subs {
            let recs: Result<Vec<PlanRec>, LogError> = match work {
                Work::Append(records) => records
                    .into_iter()
                    .map(|r| {
                        if finishing.contains(&r.key) || index.finished.contains_key(&r.key) {
                            return Err(LogError::Finished(r.key));
                        }
                        Ok(PlanRec {
                            kind: r.kind.code(),
                            user_kind: Some(r.kind),
                            flags: 0,
                            key: r.key,
                            origin: None,
                            payload: r.payload,
                        })
                    })
                    .collect(),
                Work::Finish(key) => {
                    if index.messages.contains_key(&key) || appended.contains(&key) {
                        finishing.insert(key);
                        Ok(vec![PlanRec {
                            kind: KIND_FINISH,
                            user_kind: None,
                            flags: 0,
                            key,
                            origin: None,
                            payload: Vec::new(),
                        }])
                    } else {
                        Ok(Vec::new())
                    }
                }
                Work::Copy(copies) => Ok(copies
                    .into_iter()
                    .filter(|c| match c.kind {
                        Some(_) => {
                            !finishing.contains(&c.key)
                                && index
                                    .messages
                                    .get(&c.key)
                                    .and_then(|m| m.records.get(&c.origin))
                                    .is_some_and(|l| l.seg == c.source)
                        }
                        None => index.finished.contains_key(&c.key),
                    })
                    .map(|c| PlanRec {
                        kind: c.kind.map_or(KIND_FINISH, RecordKind::code),
                        user_kind: c.kind,
                        flags: FLAG_COPY,
                        key: c.key,
                        origin: Some(c.origin),
                        payload: c.payload,
                    })
                    .collect()),
            };
            match recs {
                Err(e) => slot.complete(Err(e)),
                Ok(recs) if recs.is_empty() => slot.complete(Ok(Committed { lsn: 0, group })),
                Ok(recs) => {
                    let size = recs.iter().map(|r| encoded_len(r.payload.len())).sum();
                    if size > max {
                        slot.complete(Err(LogError::TooLarge { len: size, max }));
                        continue;
                    }
                    for r in &recs {
                        if r.kind != KIND_FINISH {
                            appended.insert(r.key);
                        }
                    }
                    out.push(Planned { slot, recs, size });
                }
            }
        }
        out
    }

    fn group(&mut self, subs: Vec<Submission>) {
        let group = self.next_group;
        let plans = self.plan(subs, group);
        if plans.is_empty() {
            return;
        }
        self.next_group += 1;
        match self.write_group(&plans, group) {
            Ok(written) => {
                {
                    let mut index = self.shared.index();
                    for w in &written {
                        if w.kind == KIND_FINISH {
                            index.add_finish(w.key, w.loc_seg);
                        } else if let Some(kind) = w.user_kind {
                            index.add_data(
                                w.key,
                                w.origin,
                                Loc {
                                    seg: w.loc_seg,
                                    offset: w.offset,
                                    len: w.len,
                                    kind,
                                    lsn: w.lsn,
                                },
                            );
                        }
                    }
                }
                let c = &self.shared.counters;
                c.groups.fetch_add(1, Ordering::Relaxed);
                c.submissions
                    .fetch_add(plans.len() as u64, Ordering::Relaxed);
                c.records.fetch_add(written.len() as u64, Ordering::Relaxed);
                let mut lsn_end = Vec::with_capacity(plans.len());
                let mut i = 0;
                for p in &plans {
                    i += p.recs.len();
                    lsn_end.push(written.get(i - 1).map_or(0, |w| w.lsn));
                }
                for (p, lsn) in plans.into_iter().zip(lsn_end) {
                    p.slot.complete(Ok(Committed { lsn, group }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; the log refuses further writes");
                self.shared.queue().failed = true;
                let e = Arc::new(e);
                for p in plans {
                    p.slot
                        .complete(Err(LogError::CommitFailed { source: e.clone() }));
                }
            }
        }
    }

    /// Writes and syncs the group; returns the records written in order
    /// (seals excluded).
    fn write_group(&mut self, plans: &[Planned], group: u64) -> Result<Vec<Written>, LogError> {
        let capacity = self.shared.config.segment_size;
        let total: usize = plans.iter().map(|p| p.size).sum();
        let mut buf = Vec::with_capacity(total.min(capacity as usize));
        let mut buf_at = self.pos;
        let mut written = Vec::new();
        for p in plans {
            if self.pos + p.size as u64 + SEAL_LEN > capacity {
                self.seal_into(&mut buf, group);
                self.flush(&buf, buf_at)?;
                self.sync()?;
                self.switch()?;
                buf.clear();
                buf_at = self.pos;
            }
            let first = self.next_lsn;
            let txn_end = first + p.recs.len() as u64 - 1;
            for r in &p.recs {
                let lsn = self.next_lsn;
                self.next_lsn += 1;
                let origin = r.origin.unwrap_or(lsn);
                let header = Header {
                    kind: r.kind,
                    flags: r.flags,
                    len: r.payload.len() as u32,
                    lsn,
                    origin,
                    txn_first: first,
                    txn_end,
                    group,
                    key: r.key.get(),
                };
                written.push(Written {
                    key: r.key,
                    kind: r.kind,
                    user_kind: r.user_kind,
                    origin,
                    loc_seg: self.seq,
                    offset: self.pos,
                    len: header.len,
                    lsn,
                });
                let before = buf.len();
                header.encode(&r.payload, &mut buf);
                self.pos += (buf.len() - before) as u64;
            }
        }
        self.flush(&buf, buf_at)?;
        self.sync()?;
        Ok(written)
    }

    /// Appends a seal record to `buf` (and advances the position).
    fn seal_into(&mut self, buf: &mut Vec<u8>, group: u64) {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        Header {
            kind: KIND_SEAL,
            flags: 0,
            len: 0,
            lsn,
            origin: lsn,
            txn_first: lsn,
            txn_end: lsn,
            group,
            key: 0,
        }
        .encode(&[], buf);
        self.pos += SEAL_LEN;
    }

    fn flush(&self, buf: &[u8], at: u64) -> Result<(), LogError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_at(buf, at)
            .map_err(|e| self.shared.io_err("write", self.seq, e))
    }

    fn sync(&self) -> Result<(), LogError> {
        self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.file
            .sync_data()
            .map_err(|e| self.shared.io_err("fdatasync", self.seq, e))
    }

    /// Makes the spare the active segment and asks for the next spare.
    fn switch(&mut self) -> Result<(), LogError> {
        let (seq, file) = {
            let mut bg = self.shared.background();
            loop {
                match bg.spare.take() {
                    Some((seq, Some(made))) => break (seq, made?),
                    Some(pending) => {
                        // Being made (the preallocator outlives the
                        // committer: see `Owner::drop`).
                        bg.spare = Some(pending);
                        bg = self
                            .shared
                            .background_cv
                            .wait(bg)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                    None => bg.spare = Some((self.seq + 1, None)),
                }
            }
        };
        {
            let mut bg = self.shared.background();
            bg.spare = Some((seq + 1, None));
            bg.maintain = true;
        }
        self.shared.background_cv.notify_all();
        {
            let mut index = self.shared.index();
            index.segments.insert(
                seq,
                SegMeta {
                    file: file.clone(),
                    capacity: self.shared.config.segment_size,
                    keys: HashSet::new(),
                    tombs: HashSet::new(),
                },
            );
            index.active = seq;
        }
        self.seq = seq;
        self.file = file;
        self.pos = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }
}
