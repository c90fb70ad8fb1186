//! postern-proto beside Stalwart's smtp-proto 0.2.5, in one run:
//!
//! - `commands`: a pipelined transcript (EHLO; MAIL FROM with SIZE and BODY;
//!   three RCPT, one with NOTIFY and ORCPT; DATA; RSET; NOOP; QUIT), repeated,
//!   parsed command by command from one buffer. Reported per command.
//! - `data`: a 16 MiB dot-stuffed body through each DATA decoder in 8 KiB
//!   reads, each read first copied into the decoder's input buffer as a socket
//!   read would. Reported in bytes per second.
//!
//! Run: `cargo bench -p postern-benches --bench proto`; the summary at the end
//! prints both figures and the ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group};
use postern_proto::data::{DataConfig, DataDecoder, DataStep};
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
const COMMANDS_PER_TRANSCRIPT: usize = 9;
const REPEAT: usize = 200;
const BODY_SIZE: usize = 16 << 20;
const READ_SIZE: usize = 8 << 10;

fn transcript() -> Vec<u8> {
    TRANSCRIPT.repeat(REPEAT)
}

/// A text body of 76-character lines; every 40th line starts with a dot
/// (stuffed on the wire), ending in the terminator.
fn stuffed_body() -> Vec<u8> {
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

fn postern_commands(buf: &[u8]) -> usize {
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

fn smtp_proto_commands(buf: &[u8]) -> usize {
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

fn postern_data(body: &[u8]) -> usize {
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

fn smtp_proto_data(body: &[u8]) -> usize {
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

fn bench(c: &mut Criterion) {
    let buf = transcript();
    assert_eq!(postern_commands(&buf), COMMANDS_PER_TRANSCRIPT * REPEAT);
    assert_eq!(smtp_proto_commands(&buf), COMMANDS_PER_TRANSCRIPT * REPEAT);
    let mut group = c.benchmark_group("commands");
    group.throughput(Throughput::Elements(
        (COMMANDS_PER_TRANSCRIPT * REPEAT) as u64,
    ));
    group.bench_function("postern-proto", |b| {
        b.iter(|| postern_commands(black_box(&buf)))
    });
    group.bench_function("smtp-proto", |b| {
        b.iter(|| smtp_proto_commands(black_box(&buf)))
    });
    group.finish();

    let body = stuffed_body();
    let decoded = postern_data(&body);
    assert_eq!(
        decoded,
        smtp_proto_data(&body),
        "both decoders agree on the body size"
    );
    let mut group = c.benchmark_group("data");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sample_size(20);
    group.bench_function("postern-proto", |b| {
        b.iter(|| postern_data(black_box(&body)))
    });
    group.bench_function("smtp-proto", |b| {
        b.iter(|| smtp_proto_data(black_box(&body)))
    });
    group.finish();
}

/// Times `f` over `rounds` runs after a warm-up and returns the median.
fn median(rounds: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

/// The side-by-side table, measured interleaved so both parsers see the same
/// machine state.
fn summary() {
    let buf = transcript();
    let body = stuffed_body();
    let n = (COMMANDS_PER_TRANSCRIPT * REPEAT) as f64;
    let ours = median(201, || {
        black_box(postern_commands(black_box(&buf)));
    });
    let theirs = median(201, || {
        black_box(smtp_proto_commands(black_box(&buf)));
    });
    let (ours_ns, theirs_ns) = (ours.as_nanos() as f64 / n, theirs.as_nanos() as f64 / n);
    let gib = |d: Duration| body.len() as f64 / d.as_secs_f64() / f64::from(1u32 << 30);
    let ours_data = median(31, || {
        black_box(postern_data(black_box(&body)));
    });
    let theirs_data = median(31, || {
        black_box(smtp_proto_data(black_box(&body)));
    });
    println!();
    println!("| workload | postern-proto | smtp-proto 0.2.5 | ratio (smtp-proto / postern) |");
    println!("|---|---|---|---|");
    println!(
        "| commands, ns/command (lower is better) | {ours_ns:.1} | {theirs_ns:.1} | {:.2}x |",
        theirs_ns / ours_ns
    );
    println!(
        "| DATA 16 MiB in 8 KiB reads, GiB/s (higher is better) | {:.2} | {:.2} | {:.2}x |",
        gib(ours_data),
        gib(theirs_data),
        theirs_data.as_secs_f64() / ours_data.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
