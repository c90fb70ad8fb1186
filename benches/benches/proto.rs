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

use criterion::{Criterion, Throughput, criterion_group};
use postern_benches::{
    COMMANDS_PER_TRANSCRIPT, REPEAT, postern_commands, postern_data, smtp_proto_commands,
    smtp_proto_data, stuffed_body, transcript,
};

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

/// Times `a` and `b` alternately, `rounds` times each after a warm-up, and
/// returns both medians: interleaving gives both the same machine state on
/// a machine shared with other builds.
fn medians(rounds: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..3 {
        a();
        b();
    }
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let (mut ta, mut tb): (Vec<Duration>, Vec<Duration>) =
        (0..rounds).map(|_| (time(&mut a), time(&mut b))).unzip();
    ta.sort();
    tb.sort();
    (ta[rounds / 2], tb[rounds / 2])
}

/// The side-by-side table, measured interleaved so both parsers see the same
/// machine state.
fn summary() {
    let buf = transcript();
    let body = stuffed_body();
    let n = (COMMANDS_PER_TRANSCRIPT * REPEAT) as f64;
    let (ours, theirs) = medians(
        201,
        || {
            black_box(postern_commands(black_box(&buf)));
        },
        || {
            black_box(smtp_proto_commands(black_box(&buf)));
        },
    );
    let (ours_ns, theirs_ns) = (ours.as_nanos() as f64 / n, theirs.as_nanos() as f64 / n);
    let gib = |d: Duration| body.len() as f64 / d.as_secs_f64() / f64::from(1u32 << 30);
    let (ours_data, theirs_data) = medians(
        31,
        || {
            black_box(postern_data(black_box(&body)));
        },
        || {
            black_box(smtp_proto_data(black_box(&body)));
        },
    );
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
