//! The in-memory index: where each live message's records are, which
//! segments hold what, and which tombstones are still needed.
//!
//! It is rebuilt by the scan at open and then kept by the committer (after
//! each group commit) and by maintenance (after a segment is removed).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::error::Damage;
use super::io::SegmentIo;
use super::record::{MessageKey, RecordKind};

/// Where one record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) kind: RecordKind,
    /// The lsn of this copy (checked when it is read back).
    pub(crate) lsn: u64,
}

/// A live message.
#[derive(Debug, Default)]
pub(crate) struct Message {
    /// Records by origin lsn: append order, whatever copies were made.
    pub(crate) records: BTreeMap<u64, Loc>,
    /// Segments holding any record of it (live or superseded copies).
    pub(crate) segs: BTreeSet<u64>,
    /// Damage found in its records.
    pub(crate) damage: Option<Damage>,
}

/// A finished message whose tombstone is still needed because some
/// segment still holds its records.
#[derive(Debug, Default)]
pub(crate) struct Tomb {
    pub(crate) data_segs: BTreeSet<u64>,
    pub(crate) tomb_segs: BTreeSet<u64>,
}

/// One segment file.
pub(crate) struct SegMeta {
    pub(crate) file: Arc<dyn SegmentIo>,
    pub(crate) capacity: u64,
    /// Messages with data records here.
    pub(crate) keys: HashSet<MessageKey>,
    /// Messages with a tombstone here.
    pub(crate) tombs: HashSet<MessageKey>,
}

impl std::fmt::Debug for SegMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegMeta")
            .field("capacity", &self.capacity)
            .field("keys", &self.keys.len())
            .field("tombs", &self.tombs.len())
            .finish()
    }
}

/// Live bytes and tombstones of a segment.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Usage {
    pub(crate) live_records: usize,
    pub(crate) live_bytes: u64,
    pub(crate) needed_tombs: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) messages: HashMap<MessageKey, Message>,
    pub(crate) finished: HashMap<MessageKey, Tomb>,
    pub(crate) segments: BTreeMap<u64, SegMeta>,
    /// The segment being appended to (never reclaimed or compacted).
    pub(crate) active: u64,
}

impl Index {
    /// Records a data record of `key` at `loc` whose origin lsn is
    /// `origin` (a copy replaces the location of the same origin).
    pub(crate) fn add_data(&mut self, key: MessageKey, origin: u64, loc: Loc) {
        if let Some(seg) = self.segments.get_mut(&loc.seg) {
            seg.keys.insert(key);
        }
        if let Some(tomb) = self.finished.get_mut(&key) {
            // Present on disk but dead: the tombstone must outlive it.
            tomb.data_segs.insert(loc.seg);
            return;
        }
        let m = self.messages.entry(key).or_default();
        m.records.insert(origin, loc);
        m.segs.insert(loc.seg);
    }

    /// Records a tombstone of `key` in segment `seg`.
    pub(crate) fn add_finish(&mut self, key: MessageKey, seg: u64) {
        let tomb = if let Some(m) = self.messages.remove(&key) {
            if m.segs.is_empty() {
                // A damaged message none of whose records could be read.
                return;
            }
            self.finished.entry(key).or_insert(Tomb {
                data_segs: m.segs,
                tomb_segs: BTreeSet::new(),
            })
        } else if let Some(t) = self.finished.get_mut(&key) {
            t
        } else {
            // Nothing of it is left anywhere: the tombstone is not needed.
            return;
        };
        tomb.tomb_segs.insert(seg);
        if let Some(s) = self.segments.get_mut(&seg) {
            s.tombs.insert(key);
        }
    }

    /// Whether `key`'s tombstone in `seg` keeps other segments' records
    /// of it dead (and so must survive).
    pub(crate) fn tomb_needed(&self, key: MessageKey, seg: u64) -> bool {
        self.finished.get(&key).is_some_and(|t| {
            t.data_segs.iter().any(|&s| s != seg) && !t.tomb_segs.iter().any(|&s| s != seg)
        })
    }

    /// Usage of every segment.
    pub(crate) fn usage(&self) -> BTreeMap<u64, Usage> {
        let mut out: BTreeMap<u64, Usage> = self
            .segments
            .keys()
            .map(|&s| (s, Usage::default()))
            .collect();
        for m in self.messages.values() {
            for loc in m.records.values() {
                if let Some(u) = out.get_mut(&loc.seg) {
                    u.live_records += 1;
                    u.live_bytes += super::record::encoded_len(loc.len as usize) as u64;
                }
            }
        }
        for (&seq, seg) in &self.segments {
            let needed = seg
                .tombs
                .iter()
                .filter(|&&k| self.tomb_needed(k, seq))
                .count();
            if let Some(u) = out.get_mut(&seq) {
                u.needed_tombs = needed;
            }
        }
        out
    }

    /// Forgets `seq`'s tombstones (about to be unlinked: other copies of a
    /// tombstone must not count it any more).
    pub(crate) fn drop_tombs_of(&mut self, seq: u64) {
        let Some(seg) = self.segments.get_mut(&seq) else {
            return;
        };
        for key in std::mem::take(&mut seg.tombs) {
            if let Some(t) = self.finished.get_mut(&key) {
                t.tomb_segs.remove(&seq);
            }
        }
    }

    /// The segment was removed durably: its records no longer exist.
    pub(crate) fn remove_segment(&mut self, seq: u64) {
        self.drop_tombs_of(seq);
        let Some(seg) = self.segments.remove(&seq) else {
            return;
        };
        for key in seg.keys {
            if let Some(m) = self.messages.get_mut(&key) {
                m.segs.remove(&seq);
            }
            let gone = match self.finished.get_mut(&key) {
                Some(t) => {
                    t.data_segs.remove(&seq);
                    t.data_segs.is_empty()
                }
                None => false,
            };
            if gone && let Some(t) = self.finished.remove(&key) {
                // No record of it is left: its tombstones are garbage too.
                for s in t.tomb_segs {
                    if let Some(seg) = self.segments.get_mut(&s) {
                        seg.tombs.remove(&key);
                    }
                }
            }
        }
    }
}
