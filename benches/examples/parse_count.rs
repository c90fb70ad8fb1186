//! Runs one bench workload many times, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a busy machine):
//!
//! ```text
//! cargo build --release -p postern-benches --example parse_count
//! valgrind --tool=callgrind target/release/examples/parse_count WORKLOAD [ROUNDS]
//! ```
//!
//! WORKLOAD is `postern` or `smtp-proto` (the command transcript, parsed
//! command by command) or `data-postern` or `data-smtp-proto` (the 16 MiB
//! dot-stuffed body in 8 KiB reads). The workloads are the criterion
//! bench's, from `postern_benches`.

use std::hint::black_box;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "postern".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut n = 0usize;
    match which.as_str() {
        "postern" | "smtp-proto" => {
            let buf = postern_benches::transcript();
            for _ in 0..rounds {
                n += if which == "postern" {
                    postern_benches::postern_commands(black_box(&buf))
                } else {
                    postern_benches::smtp_proto_commands(black_box(&buf))
                };
            }
            println!("{which}: {n} commands");
        }
        "data-postern" | "data-smtp-proto" => {
            let body = postern_benches::stuffed_body();
            for _ in 0..rounds {
                n += if which == "data-postern" {
                    postern_benches::postern_data(black_box(&body))
                } else {
                    postern_benches::smtp_proto_data(black_box(&body))
                };
            }
            println!("{which}: {n} body octets");
        }
        other => {
            eprintln!(
                "unknown workload {other:?}: postern | smtp-proto | data-postern | data-smtp-proto"
            );
            std::process::exit(2);
        }
    }
}
