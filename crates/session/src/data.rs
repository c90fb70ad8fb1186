//! The message body: `DATA` (dot-stuffed, decoded by
//! [`DataDecoder`](postern_proto::data::DataDecoder)) and `BDAT` chunks
//! (read by [`BdatReader`]), streamed to the embedder without buffering.

use postern_proto::Body;
use postern_proto::bdat::{BdatReader, BdatStep};
use postern_proto::data::{BareLineEndings, DataConfig, DataDecoder, DataStep};

use crate::capabilities::format_u64;
use crate::config::BareLineEndingPolicy;
use crate::event::{AbortReason, BodyKind, Question};
use crate::replies;
use crate::session::{Pending, Phase, Session};

/// A BDAT chunk being read.
pub(crate) struct BdatState {
    pub(crate) reader: BdatReader,
    pub(crate) size: u64,
    /// The chunk was refused: its octets are discarded, then this reply is
    /// sent (and counted as an error when `counts`).
    pub(crate) refusal: Option<(Vec<u8>, bool)>,
}

impl BdatState {
    pub(crate) fn accepted(size: u64, last: bool) -> Self {
        Self {
            reader: BdatReader::new(size, last),
            size,
            refusal: None,
        }
    }

    pub(crate) fn refused(size: u64, last: bool, reply: Vec<u8>, counts: bool) -> Self {
        Self {
            reader: BdatReader::discard(size, last),
            size,
            refusal: Some((reply, counts)),
        }
    }
}

impl Session {
    pub(crate) fn data(&mut self) {
        let Some(txn) = &self.txn else {
            return self.refuse(replies::NEED_MAIL);
        };
        if txn.bdat {
            return self.refuse(replies::DATA_AFTER_BDAT);
        }
        if txn.recipients == 0 {
            return self.refuse(replies::NO_RECIPIENTS);
        }
        // RFC 3030 §3: a BINARYMIME body cannot be dot-stuffed text.
        if txn.body == Some(Body::BinaryMime) {
            return self.refuse(replies::BINARYMIME_NEEDS_BDAT);
        }
        self.ask(
            Pending::DataStart(BodyKind::Data),
            Question::DataStart {
                kind: BodyKind::Data,
            },
        );
    }

    pub(crate) fn data_decoder(&self) -> DataDecoder {
        DataDecoder::new(DataConfig::new(
            Some(self.config.limits.max_message_size),
            match self.config.bare_line_endings {
                BareLineEndingPolicy::Reject => BareLineEndings::Keep,
                BareLineEndingPolicy::Normalize => BareLineEndings::Normalize,
            },
        ))
    }

    /// `BDAT size [LAST]`. Whatever the answer, the chunk's octets are
    /// consumed, or they would be read as commands (RFC 3030 §4).
    pub(crate) fn bdat(&mut self, size: u64, last: bool) {
        let refusal: Option<&'static [u8]> = if !(self.esmtp() && self.offer.extensions.chunking) {
            Some(replies::BDAT_NOT_OFFERED)
        } else {
            match &self.txn {
                None => Some(replies::NEED_MAIL),
                Some(t) if t.recipients == 0 => Some(replies::NO_RECIPIENTS),
                Some(_) => None,
            }
        };
        if let Some(reply) = refusal {
            self.phase = Phase::Bdat(BdatState::refused(size, last, reply.to_vec(), true));
            return;
        }
        let Some(txn) = &mut self.txn else { return };
        if txn.bdat {
            self.phase = Phase::Bdat(BdatState::accepted(size, last));
        } else {
            txn.bdat = true;
            let kind = BodyKind::Bdat { size, last };
            self.ask(Pending::DataStart(kind), Question::DataStart { kind });
        }
    }

    /// One step of DATA decoding; false when more input is needed.
    pub(crate) fn step_data(&mut self) -> bool {
        let reject_bare = self.config.bare_line_endings == BareLineEndingPolicy::Reject;
        let Phase::Data(decoder) = &mut self.phase else {
            return false;
        };
        let bare_before = decoder.summary().has_bare_line_endings();
        let step = decoder.decode(&mut self.input);
        let bare_seen = decoder.summary().has_bare_line_endings();
        match step {
            DataStep::Chunk(mut chunk) => {
                // Once a bare line ending is seen the message will be
                // refused: nothing from its first bare octet on is handed
                // out. Cutting the chunk there, not dropping all of it,
                // makes what the embedder sees the same however the input
                // was split into reads.
                if reject_bare && bare_seen {
                    if bare_before {
                        return true;
                    }
                    chunk.truncate(first_bare_line_end(&chunk).unwrap_or(chunk.len()));
                }
                self.emit_body(chunk);
                true
            }
            DataStep::NeedMore => false,
            DataStep::End(summary) => {
                self.phase = Phase::Command;
                if summary.exceeded_limit {
                    self.abort_transaction(AbortReason::TooLarge);
                    self.send(replies::TOO_LARGE);
                } else if reject_bare && summary.has_bare_line_endings() {
                    self.abort_transaction(AbortReason::BareLineEndings);
                    self.send(replies::BARE_LINE_ENDINGS);
                } else {
                    self.message_complete(summary.size);
                }
                true
            }
        }
    }

    /// One step of reading a BDAT chunk; false when more input is needed.
    pub(crate) fn step_bdat(&mut self) -> bool {
        let max = self.config.limits.max_message_size;
        let Phase::Bdat(state) = &mut self.phase else {
            return false;
        };
        match state.reader.read(&mut self.input) {
            BdatStep::Chunk(mut chunk) => {
                if let Some(txn) = &mut self.txn {
                    let room = max.saturating_sub(txn.body_size);
                    txn.body_size = txn.body_size.saturating_add(chunk.len() as u64);
                    if chunk.len() as u64 > room {
                        // Past the limit: count the rest without keeping it.
                        txn.too_large = true;
                        state.reader.discard_rest();
                        chunk.truncate(room as usize);
                    }
                    self.emit_body(chunk);
                }
                true
            }
            BdatStep::NeedMore => false,
            BdatStep::Done { last } => {
                let size = state.size;
                let refusal = state.refusal.take();
                self.phase = Phase::Command;
                if let Some((reply, counts)) = refusal {
                    if counts {
                        self.refuse(&reply);
                    } else {
                        self.send(&reply);
                    }
                } else if self.txn.as_ref().is_some_and(|t| t.too_large) {
                    self.abort_transaction(AbortReason::TooLarge);
                    self.send(replies::TOO_LARGE);
                } else if last {
                    let size = self.txn.as_ref().map_or(0, |t| t.body_size);
                    self.message_complete(size);
                } else {
                    let mut digits = [0u8; 20];
                    self.output.extend_from_slice(b"250 2.0.0 ");
                    self.output.extend_from_slice(format_u64(size, &mut digits));
                    self.output.extend_from_slice(b" octets received\r\n");
                }
                true
            }
        }
    }

    fn message_complete(&mut self, size: u64) {
        let recipients = self.txn.as_ref().map_or(0, |t| t.recipients);
        let total = match self.config.protocol {
            crate::Protocol::Smtp => 1,
            crate::Protocol::Lmtp => recipients.max(1),
        };
        self.ask(
            Pending::MessageComplete { next: 0, total },
            Question::MessageComplete { size, recipients },
        );
    }
}

/// Where the first bare CR or bare LF of a chunk decoded in
/// [`BareLineEndings::Keep`] mode is. The decoder never ends a chunk between
/// the CR and LF of a pair, so an LF at the start of a chunk is bare.
fn first_bare_line_end(chunk: &[u8]) -> Option<usize> {
    if chunk.first() == Some(&b'\n') {
        return Some(0);
    }
    chunk
        .windows(2)
        .enumerate()
        .find_map(|(i, w)| match (w[0], w[1]) {
            (b'\r', b'\n') => None,
            (b'\r', _) => Some(i),
            (_, b'\n') => Some(i + 1),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::first_bare_line_end;

    #[test]
    fn finds_the_first_bare_octet() {
        assert_eq!(first_bare_line_end(b"a\r\nb\r\n"), None);
        assert_eq!(first_bare_line_end(b"\nx"), Some(0));
        assert_eq!(first_bare_line_end(b"ab\r\r\n"), Some(2));
        assert_eq!(first_bare_line_end(b"ab\r\nc\nd\re"), Some(5));
        assert_eq!(first_bare_line_end(b"ab\rc\nd"), Some(2));
        // A final CR may yet be followed by LF.
        assert_eq!(first_bare_line_end(b"ab\r"), None);
    }
}
