//! The workloads shared by the Postern benchmarks (`benches/proto.rs`,
//! criterion) and the instruction-count driver (`examples/parse_count.rs`,
//! for callgrind), so both measure exactly the same thing.
//!
//! ```
//! let buf = postern_benches::transcript();
//! assert_eq!(
//!     postern_benches::postern_commands(&buf),
//!     postern_benches::smtp_proto_commands(&buf),
//! );
//! ```

use std::hint::black_box;

use bytes::BytesMut;
use postern_proto::data::{DataConfig, DataDecoder, DataStep};
use postern_proto::{CommandParser, Parsed};

/// A pipelined client transcript: EHLO; MAIL FROM with SIZE and BODY;
/// three RCPT, one with NOTIFY and ORCPT; DATA; RSET; NOOP; QUIT.
pub const TRANSCRIPT: &[u8] = b"EHLO client.example.org\r\n\
MAIL FROM:<sender@example.org> SIZE=1024 BODY=8BITMIME\r\n\
RCPT TO:<alice@example.com>\r\n\
RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n\
RCPT TO:<carol@example.com>\r\n\
DATA\r\n\
RSET\r\n\
NOOP\r\n\
QUIT\r\n";
/// Commands in [`TRANSCRIPT`].
pub const COMMANDS_PER_TRANSCRIPT: usize = 9;
/// How many times [`transcript`] repeats [`TRANSCRIPT`].
pub const REPEAT: usize = 200;
/// Size of [`stuffed_body`], before the terminator.
pub const BODY_SIZE: usize = 16 << 20;
/// The socket read size the DATA workloads simulate.
pub const READ_SIZE: usize = 8 << 10;

/// [`TRANSCRIPT`] repeated [`REPEAT`] times.
pub fn transcript() -> Vec<u8> {
    TRANSCRIPT.repeat(REPEAT)
}

/// A text body of 76-character lines; every 40th line starts with a dot
/// (stuffed on the wire), ending in the terminator.
pub fn stuffed_body() -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY_SIZE + 1024);
    let mut n = 0u64;
    while out.len() < BODY_SIZE {
        // Line 0 is not dot-stuffed: smtp-proto 0.2.5 does not unstuff a dot
        // on the body's first line, and both decoders must agree on the body.
        if n % 40 == 39 {
            out.extend_from_slice(b"..");
        }
        let line =
            format!("{n:08} The quick brown fox jumps over the lazy dog, lines and lines of it.");
        out.extend_from_slice(&line.as_bytes()[..74]);
        out.extend_from_slice(b"\r\n");
        n += 1;
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Parses `buf` with postern-proto; returns the number of commands.
pub fn postern_commands(buf: &[u8]) -> usize {
    let mut parser = CommandParser::default();
    let mut rest = buf;
    let mut n = 0;
    loop {
        match parser.parse(rest) {
            Parsed::Command { command, consumed } => {
                black_box(&command);
                rest = &rest[consumed..];
                n += 1;
            }
            Parsed::Error { error, .. } => panic!("postern refused the transcript: {error}"),
            Parsed::Incomplete { .. } => return n,
        }
    }
}

/// Parses `buf` with smtp-proto; returns the number of commands.
pub fn smtp_proto_commands(buf: &[u8]) -> usize {
    let mut it = buf.iter();
    let mut n = 0;
    while !it.as_slice().is_empty() {
        let request =
            smtp_proto::Request::parse(&mut it).expect("smtp-proto parses the transcript");
        black_box(&request);
        n += 1;
    }
    n
}

/// Decodes `body` with postern-proto's DATA decoder in [`READ_SIZE`]
/// reads; returns the unstuffed size.
pub fn postern_data(body: &[u8]) -> usize {
    let mut decoder = DataDecoder::new(DataConfig::default());
    let mut input = BytesMut::with_capacity(2 * READ_SIZE);
    let mut total = 0;
    for read in body.chunks(READ_SIZE) {
        input.extend_from_slice(read);
        loop {
            match decoder.decode(&mut input) {
                DataStep::Chunk(chunk) => total += black_box(chunk).len(),
                DataStep::NeedMore => break,
                DataStep::End(summary) => {
                    assert_eq!(summary.bare_lf + summary.bare_cr, 0);
                    return total;
                }
            }
        }
    }
    panic!("postern did not find the end of data")
}

/// Decodes `body` with smtp-proto's DATA receiver in [`READ_SIZE`]
/// reads; returns the unstuffed size.
pub fn smtp_proto_data(body: &[u8]) -> usize {
    let mut receiver = smtp_proto::request::receiver::DataReceiver::new();
    let mut read_buf = Vec::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(2 * READ_SIZE);
    let mut total = 0;
    for read in body.chunks(READ_SIZE) {
        read_buf.clear();
        read_buf.extend_from_slice(read);
        let done = receiver.ingest(&mut read_buf.iter(), &mut out);
        total += black_box(&out).len();
        out.clear();
        if done {
            return total;
        }
    }
    panic!("smtp-proto did not find the end of data")
}
