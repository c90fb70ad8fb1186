//! Parses the bench transcript many times with one parser, for instruction
//! counting under `valgrind --tool=callgrind` (repeatable on a busy machine):
//! `cargo build --release -p postern-benches --example parse_count`, then
//! `valgrind --tool=callgrind target/release/examples/parse_count postern|smtp-proto [ROUNDS]`.

use std::hint::black_box;

use postern_proto::{CommandParser, Parsed};

const TRANSCRIPT: &[u8] = b"EHLO client.example.org\r\n\
MAIL FROM:<sender@example.org> SIZE=1024 BODY=8BITMIME\r\n\
RCPT TO:<alice@example.com>\r\n\
RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n\
RCPT TO:<carol@example.com>\r\n\
DATA\r\n\
RSET\r\n\
NOOP\r\n\
QUIT\r\n";

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "postern".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let buf = TRANSCRIPT.repeat(1000);
    let mut n = 0usize;
    for _ in 0..rounds {
        n += run(&which, &buf);
    }
    println!("{which}: {n} commands");
}

fn run(which: &str, buf: &[u8]) -> usize {
    let mut n = 0usize;
    if which == "postern" {
        let mut parser = CommandParser::default();
        let mut rest = buf;
        while let Parsed::Command { command, consumed } = parser.parse(rest) {
            black_box(&command);
            rest = &rest[consumed..];
            n += 1;
        }
    } else {
        let mut it = buf.iter();
        while !it.as_slice().is_empty() {
            let r = smtp_proto::Request::parse(&mut it).expect("parses");
            black_box(&r);
            n += 1;
        }
    }
    n
}
