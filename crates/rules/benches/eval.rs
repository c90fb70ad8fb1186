//! Evaluation time per recipient (the RCPT stage) for rule sets of 10, 100
//! and 1000 rules. Every rule is visited: the facts match only the guide's
//! catch-all rules, so the figures are the worst case for each size.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use postern_proto::{ForwardPath, Mailbox, ReversePath};
use postern_rules::{Facts, RuleSet, Stage};

fn sender(address: &str) -> ReversePath<'_> {
    if address.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(Mailbox::parse(address).expect("valid sender"))
    }
}

fn rcpt(address: &str) -> ForwardPath<'_> {
    ForwardPath::Mailbox(Mailbox::parse(address).expect("valid recipient"))
}

/// A rule file of `n` rules in the mix a real MX carries: domain
/// requirements, relay routes, address blocks and sender checks.
fn rules(n: usize) -> RuleSet {
    let mut src = String::from(include_str!("../tests/policies/guide.rules.toml"));
    for i in 4..n {
        let rule = match i % 5 {
            0 => format!(
                "[[rule]]\nname = \"tls_for_{i}\"\nconditions = [{{ tls = false }}, {{ recipient_domain = {{ is = \"d{i}.example\" }} }}]\nactions = [{{ reject = {{ text = \"TLS required\" }} }}]\n"
            ),
            1 => format!(
                "[[rule]]\nname = \"route_{i}\"\nconditions = [{{ relaying = true }}, {{ recipient_domain = {{ wildcard = \"*.r{i}.example\" }} }}]\nactions = [{{ relay_host = \"smart{i}.example:587\" }}, {{ relay_tls = \"verified\" }}]\n"
            ),
            2 => format!(
                "[[rule]]\nname = \"block_{i}\"\nconditions = [{{ remote_ip = {{ in = [\"10.{}.0.0/16\", \"2001:db8:{i:x}::/48\"] }} }}]\nactions = [{{ reject = {{ code = 554, text = \"blocked\" }} }}]\n",
                i % 250
            ),
            3 => format!(
                "[[rule]]\nname = \"sender_{i}\"\nmatch = \"any\"\nconditions = [{{ sender_domain = {{ in = [\"s{i}.example\", \"t{i}.example\"] }} }}, {{ sender = {{ is = \"spam{i}@x.example\" }} }}]\nactions = [{{ reject = {{ text = \"sender refused\" }} }}]\n"
            ),
            _ => format!(
                "[[rule]]\nname = \"user_{i}\"\nconditions = [{{ recipient = {{ regex = \"^u{i}\\\\+.*@\" }} }}]\nactions = [{{ tempfail = {{ text = \"mailbox busy\" }} }}]\n"
            ),
        };
        writeln!(src, "{rule}").unwrap();
    }
    let set = RuleSet::from_toml_str(&src, "bench.toml").unwrap();
    assert_eq!(set.len(), n.max(4));
    set
}

fn eval(c: &mut Criterion) {
    let facts = Facts::new()
        .tls(true)
        .local_port(25)
        .remote_ip("192.0.2.77".parse().unwrap())
        .helo("mx.sender.example")
        .sender(sender("alice@sender.example"))
        .recipient(rcpt("bob@elsewhere.example"))
        .relaying(true);
    let mut group = c.benchmark_group("evaluate_rcpt");
    group.throughput(Throughput::Elements(1));
    for n in [10usize, 100, 1000] {
        let set = rules(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| {
                let out = set.evaluate(Stage::Rcpt, black_box(&facts));
                black_box(out.verdict.kind());
                black_box(out.relay.tls)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, eval);
criterion_main!(benches);
