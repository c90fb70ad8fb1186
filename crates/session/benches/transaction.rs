//! One SMTP transaction through a `Session` with immediate decisions:
//! EHLO, MAIL, 3 RCPT, DATA with a 1 KiB body, QUIT (7 commands).
//!
//! Prints ns per command and heap allocations per transaction, counted by
//! a counting global allocator, then runs the criterion benchmarks.
//!
//! `cargo bench -p postern-session --bench transaction -- --warm-up-time 1 --measurement-time 3`
#![allow(unsafe_code)] // the counting allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use postern_session::{Config, ConnectionInfo, Event, Notice, Session};

/// Counts allocations (and reallocations) made through the system
/// allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this function's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as this function's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as this function's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const COMMANDS: u64 = 7;

fn body() -> Vec<u8> {
    let mut body =
        b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bench\r\n\r\n".to_vec();
    while body.len() < 1024 - 2 {
        body.extend_from_slice(b"The quick brown fox jumps over the lazy dog. 0123456789\r\n");
    }
    body.truncate(1024 - 2);
    body.extend_from_slice(b"\r\n");
    body
}

/// The client's reads: one per command (a client without PIPELINING), or
/// the envelope in one pipelined group.
fn reads(pipelined: bool) -> Vec<Vec<u8>> {
    let mut data = body();
    data.extend_from_slice(b".\r\n");
    let envelope: [&[u8]; 5] = [
        b"MAIL FROM:<alice@example.org> SIZE=1024\r\n",
        b"RCPT TO:<bob@example.net>\r\n",
        b"RCPT TO:<carol@example.net>\r\n",
        b"RCPT TO:<dave@example.net>\r\n",
        b"DATA\r\n",
    ];
    let mut reads = vec![b"EHLO client.example.org\r\n".to_vec()];
    if pipelined {
        reads.push(envelope.concat());
    } else {
        reads.extend(envelope.iter().map(|r| r.to_vec()));
    }
    reads.push(data);
    reads.push(b"QUIT\r\n".to_vec());
    reads
}

/// Runs one session over the reads, accepting every decision at once.
/// Returns the octets written.
fn transaction(config: &Arc<Config>, reads: &[Vec<u8>]) -> usize {
    let mut session = Session::new(Arc::clone(config), ConnectionInfo::default());
    let mut written = 0;
    let mut spooled = 0;
    let mut drive = |session: &mut Session| {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Notice(Notice::BodyChunk(chunk)) => spooled += chunk.len(),
                e if e.needs_decision() => session.accept().expect("pending"),
                _ => {}
            }
        }
        written += session.output().len();
        session.consume_output(usize::MAX);
    };
    drive(&mut session);
    for read in reads {
        let taken = session.receive(read);
        debug_assert_eq!(taken, read.len());
        drive(&mut session);
    }
    assert!(session.is_closed());
    assert_eq!(spooled, 1024);
    written
}

fn report(config: &Arc<Config>, name: &str, reads: &[Vec<u8>]) {
    // Warm up, then count one transaction's allocations.
    black_box(transaction(config, reads));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(transaction(config, reads));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let rounds = 20_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(transaction(config, black_box(reads)));
    }
    let per_transaction = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!(
        "{name}: {:.0} ns per transaction, {:.0} ns per command, {allocations} heap allocations per transaction",
        per_transaction,
        per_transaction / COMMANDS as f64
    );
}

fn benches(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    let sequential = reads(false);
    let pipelined = reads(true);
    report(
        &config,
        "session/transaction (one read per command)",
        &sequential,
    );
    report(
        &config,
        "session/transaction (pipelined envelope)",
        &pipelined,
    );

    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(COMMANDS));
    group.bench_function("transaction", |b| {
        b.iter(|| transaction(&config, black_box(&sequential)));
    });
    group.bench_function("transaction_pipelined", |b| {
        b.iter(|| transaction(&config, black_box(&pipelined)));
    });
    group.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
