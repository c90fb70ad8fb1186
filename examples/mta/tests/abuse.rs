//! Abuse resistance against the real binary (issue 15; docs/adversarial.md):
//! AUTH brute force from many loopback source addresses (127.0.0.0/8),
//! connection floods above the rate limit, and a bare LF (or CR) in every
//! command position, plain and after STARTTLS.
//!
//! `measure_guess_rates` (ignored) prints the figures of the document; run
//! it with `POSTERN_MTA_BIN=<older build> POSTERN_MEASURE_BEFORE=1` to
//! measure the previous behaviour with the same attack.

mod adv_support;
mod common;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use adv_support::{Adv, Lines, RssSampler, Setup, start};
use common::TempDir;

/// Bound for the well-behaved client's `235` during the attack.
const SERVED_WITHIN: Duration = Duration::from_secs(5);

/// RSS ceiling of the server under the brute force (debug build). The
/// measured peak is in docs/adversarial.md; the counters are bounded by
/// `max_entries`, so the ceiling is the suite's usual one.
const RSS_CEILING_KIB: u64 = 150 * 1024;

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}").as_bytes())
}

/// A TCP connection to 127.0.0.1:`port` from `src` (any 127/8 address
/// works as a source on Linux loopback).
fn connect_from(src: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::from((src, 0)).into())?;
    s.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )?;
    let tcp: TcpStream = s.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(tcp)
}

/// AUTH over implicit TLS (`submissions`) from `src`: greeting and EHLO
/// read, ready for AUTH.
fn tls_session(adv: &Adv, src: Ipv4Addr) -> io::Result<Lines<adv_support::TlsStream>> {
    let tcp = connect_from(src, adv.server.ports.submissions)?;
    let mut t = adv.tls(tcp)?;
    let g = t.reply()?;
    if !g.starts_with("220 ") {
        return Err(io::Error::other(g));
    }
    let e = t.cmd("EHLO attacker.test")?;
    if !e.starts_with("250") {
        return Err(io::Error::other(e));
    }
    Ok(t)
}

/// What the attack saw.
#[derive(Debug, Default)]
struct Tally {
    connections: AtomicUsize,
    /// Wrong passwords actually checked (answered 535).
    checked: AtomicUsize,
    /// Attempts answered 454 4.7.0 (throttled, not checked).
    throttled: AtomicUsize,
    /// Attempts answered 421 4.7.0 "from your network" (banned).
    banned: AtomicUsize,
    /// Anything else (connection refused, closed, other replies).
    other: AtomicUsize,
}

impl Tally {
    fn get(&self, f: fn(&Tally) -> &AtomicUsize) -> usize {
        f(self).load(Ordering::Relaxed)
    }
}

/// `threads` attackers guess passwords of `logins` (in turn, one per
/// guess) from `sources` (in turn, one per connection), each connection
/// trying until refused, for `duration`.
fn brute_force(
    adv: &Adv,
    sources: &[Ipv4Addr],
    logins: &[&str],
    threads: usize,
    duration: Duration,
) -> Tally {
    let tally = Tally::default();
    let next = AtomicUsize::new(0);
    let next_login = AtomicUsize::new(0);
    let deadline = Instant::now() + duration;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while Instant::now() < deadline {
                    let src = sources[next.fetch_add(1, Ordering::Relaxed) % sources.len()];
                    tally.connections.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut t) = tls_session(adv, src) else {
                        tally.other.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let mut guess = 0u32;
                    while Instant::now() < deadline {
                        guess += 1;
                        let login =
                            logins[next_login.fetch_add(1, Ordering::Relaxed) % logins.len()];
                        let r = t.cmd(&format!(
                            "AUTH PLAIN {}",
                            plain(login, &format!("wrong-{guess}"))
                        ));
                        match r {
                            Ok(r) if r.starts_with("535 ") => {
                                tally.checked.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) if r.starts_with("454 4.7.0") => {
                                tally.throttled.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Ok(r) if r.starts_with("421 4.7.0") && r.contains("network") => {
                                tally.banned.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            // The session's own limit (3 failures per
                            // connection: 535 then 421): reconnect.
                            Ok(r) if r.contains("Too many authentication failures") => break,
                            Ok(_) | Err(_) => {
                                tally.other.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    tally
}

/// `n` addresses from `base` on, skipping .0 and .255.
fn addresses(base: [u8; 4], n: usize) -> Vec<Ipv4Addr> {
    let start = u32::from(Ipv4Addr::from(base));
    (0..)
        .map(|i| Ipv4Addr::from(start + i))
        .filter(|a| !matches!(a.octets()[3], 0 | 255))
        .take(n)
        .collect()
}

/// One AUTH with `login`'s correct password from `src`: the reply and how
/// long from connect to it.
fn good_auth(adv: &Adv, src: Ipv4Addr, login: &str, password: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut t = tls_session(adv, src).expect("good client connects");
    let r = t
        .cmd(&format!("AUTH PLAIN {}", plain(login, password)))
        .expect("AUTH reply");
    (r, started.elapsed())
}

/// Logins a password sprayer cycles through (alice among them).
const SPRAY: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

fn abuse_setup(abuse: &'static str) -> Setup {
    Setup {
        abuse,
        ..Setup::default()
    }
}

/// Password spraying (10 logins, alice among them) from 8 addresses of one /26 (inside 127.1.0.0/21),
/// with a small day limit and an 8-second ban so both throttles and bans
/// show within the test: each /32 is banned at its 4th failure (421 4.7.0
/// and close), the /26 is throttled at 30 a minute (454 4.7.0), so at most
/// ~30 guesses are checked; meanwhile alice from an unrelated prefix gets
/// her 235 within the bound (her login's count does not lock her out) and
/// RSS stays under the ceiling; once the ban is over a banned address is
/// no longer refused with 421.
#[test]
fn auth_brute_force_from_many_addresses_is_throttled_and_banned() {
    let dir = TempDir::new("abuse-brute");
    let adv = start(
        dir.path(),
        abuse_setup(
            "[connection_rate]\nallow = [\"127.0.0.0/8\"]\n\
             [auth_limits]\nban = \"8s\"\n\
             [[auth_limits.window]]\nipv4 = 32\nipv6 = 64\nper_minute = 10\nper_day = 4\n\
             [[auth_limits.window]]\nipv4 = 26\nipv6 = 48\nper_minute = 30\nper_day = 150\n\
             [[auth_limits.window]]\nipv4 = 21\nipv6 = 32\nper_minute = 90\nper_day = 450\n",
        ),
    );
    let pid = adv.server.pid();
    let rss = RssSampler::start(pid);
    let sources = addresses([127, 1, 0, 1], 8);
    let attack = Duration::from_secs(12);
    let good = Mutex::new(None);
    let tally = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(6));
            *good.lock().unwrap() = Some(good_auth(
                &adv,
                Ipv4Addr::new(127, 200, 0, 1),
                "alice",
                "alice-pw",
            ));
        });
        brute_force(&adv, &sources, SPRAY, 6, attack)
    });
    let peak = rss.peak();
    drop(rss);
    let (checked, throttled, banned) = (
        tally.get(|t| &t.checked),
        tally.get(|t| &t.throttled),
        tally.get(|t| &t.banned),
    );
    eprintln!(
        "brute force, 8 addresses of one /26, {attack:?}: {} connections, {checked} guesses checked, \
         {throttled} throttled (454), {banned} banned (421), {} other; RSS peak {peak} KiB",
        tally.get(|t| &t.connections),
        tally.get(|t| &t.other),
    );
    // The /26 allows 30 a minute; the sliding window lets a few more
    // through if the attack straddles a minute boundary.
    assert!(checked <= 36, "{checked} guesses checked");
    assert!(checked >= 6, "the attack did run: {checked}");
    assert!(throttled > 0, "no 454");
    assert!(banned > 0, "no 421 ban");
    let (reply, took) = good.lock().unwrap().take().expect("good client ran");
    assert!(
        reply.starts_with("235 2.7.0"),
        "alice from 127.200.0.1: {reply}"
    );
    assert!(took < SERVED_WITHIN, "alice's 235 took {took:?}");
    assert!(peak < RSS_CEILING_KIB, "RSS peak {peak} KiB");
    let log = adv.server.log_text();
    assert!(
        log.contains("network banned for AUTH failures"),
        "ban not logged"
    );
    assert!(log.contains("AUTH throttled"), "throttle not logged");
    assert!(log.contains("today=4"), "ban logged without its count");
    // After the ban (8 s) a banned address is not refused with 421 any
    // more (its /26 may still be throttled within the minute: 454).
    std::thread::sleep(Duration::from_secs(9));
    let mut t = tls_session(&adv, sources[0]).expect("connect after the ban");
    let r = t
        .cmd(&format!("AUTH PLAIN {}", plain("alice", "alice-pw")))
        .unwrap();
    assert!(!r.starts_with("421"), "still banned: {r}");
}

/// The defaults (mox's windows) against a fast guesser: one /32 is
/// throttled at 10 guesses a minute, a sprayer from 200 addresses of one
/// /21 at 90; guessing alice's password from 20 addresses of another /21
/// stops at her login's 10 a minute, and alice herself, from a third /21,
/// still logs in at once.
#[test]
fn default_limits_hold_one_address_to_10_and_a_21_to_90_guesses_a_minute() {
    let dir = TempDir::new("abuse-defaults");
    let adv = start(
        dir.path(),
        abuse_setup("[connection_rate]\nallow = [\"127.0.0.0/8\"]\n"),
    );
    let one = brute_force(
        &adv,
        &[Ipv4Addr::new(127, 2, 0, 1)],
        &["carol"],
        4,
        Duration::from_secs(8),
    );
    let checked = one.get(|t| &t.checked);
    eprintln!(
        "defaults, one address, 8 s: {checked} checked, {} throttled",
        one.get(|t| &t.throttled)
    );
    // 10, plus the guesses already being verified when the 10th failed
    // (one per attacking thread at most), plus the sliding window's give
    // if the attack straddles a minute boundary (10 x 8/60).
    assert!((10..=16).contains(&checked), "{checked}");
    assert!(one.get(|t| &t.throttled) > 0);
    let wide = brute_force(
        &adv,
        &addresses([127, 3, 0, 1], 200),
        &SPRAY[1..],
        8,
        Duration::from_secs(25),
    );
    let checked = wide.get(|t| &t.checked);
    eprintln!(
        "defaults, 200 addresses of one /21, 25 s: {checked} checked, {} throttled",
        wide.get(|t| &t.throttled)
    );
    // 90, plus at most 8 in flight, plus the sliding window's give at a
    // minute boundary (90 x 25/60 = 38).
    assert!(checked <= 136, "{checked}");
    assert!(checked >= 50, "the attack did run: {checked}");
    // alice's password from 20 addresses of another /21: her login's
    // count (10 a minute) stops it, for networks that are failing.
    let targeted = brute_force(
        &adv,
        &addresses([127, 10, 0, 1], 20),
        &["alice"],
        4,
        Duration::from_secs(8),
    );
    let checked = targeted.get(|t| &t.checked);
    eprintln!(
        "defaults, alice from 20 addresses, 8 s: {checked} checked, {} throttled",
        targeted.get(|t| &t.throttled)
    );
    assert!((10..=16).contains(&checked), "{checked}");
    // Another /21 is untouched: alice logs in from it at once.
    let (r, took) = good_auth(&adv, Ipv4Addr::new(127, 4, 0, 1), "alice", "alice-pw");
    assert!(
        r.starts_with("235 2.7.0") && took < SERVED_WITHIN,
        "{r} after {took:?}"
    );
}

/// 100 connections as fast as possible from 127.5.0.1 against a limit of
/// 30 a minute: exactly the first 30 (give or take the sliding window's
/// rounding at a minute boundary) get 220, the rest `421 4.7.0` and a
/// close; a client from another address is served meanwhile; the refusals
/// are logged with their counts.
#[test]
fn connection_flood_above_the_rate_limit_gets_421_and_close() {
    let dir = TempDir::new("abuse-rate");
    let adv = start(
        dir.path(),
        abuse_setup(
            "[connection_rate]\n[[connection_rate.window]]\nipv4 = 32\nipv6 = 64\nper_minute = 30\n",
        ),
    );
    let src = Ipv4Addr::new(127, 5, 0, 1);
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..100 {
        let tcp =
            connect_from(src, adv.server.ports.mta).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        let mut c = Lines::new(tcp.try_clone().unwrap());
        let r = c.reply().unwrap_or_else(|e| panic!("connection {i}: {e}"));
        if r.starts_with("220 ") {
            accepted += 1;
            let _ = c.cmd("QUIT");
        } else {
            assert!(r.starts_with("421 4.7.0"), "connection {i}: {r}");
            assert!(
                c.closed_within(Duration::from_secs(3), &tcp),
                "refused connection {i} left open"
            );
            refused += 1;
        }
    }
    let took = started.elapsed();
    eprintln!(
        "connection flood: 100 in {took:?} from one address, {accepted} accepted, {refused} refused"
    );
    assert!((30..=32).contains(&accepted), "{accepted} accepted");
    assert_eq!(accepted + refused, 100);
    // Another address (127.0.0.1, another /24) is served during it.
    adv.well_behaved(SERVED_WITHIN);
    let log = adv.server.log_text();
    assert!(
        log.contains("connection refused: rate limit"),
        "refusal not logged"
    );
    assert!(
        log.contains("count=30 limit=30"),
        "refusal logged without counts"
    );
}

/// The command positions a bare LF is tried in, with what puts the
/// session there first.
const POSITIONS: &[(&str, &[&str], &str)] = &[
    ("greeting", &[], "EHLO x"),
    ("HELO", &[], "HELO x"),
    ("EHLO again", &["EHLO a.test"], "EHLO x"),
    ("MAIL", &["EHLO a.test"], "MAIL FROM:<a@remote.test>"),
    (
        "RCPT",
        &["EHLO a.test", "MAIL FROM:<a@remote.test>"],
        "RCPT TO:<postmaster@localhost>",
    ),
    (
        "DATA",
        &[
            "EHLO a.test",
            "MAIL FROM:<a@remote.test>",
            "RCPT TO:<postmaster@localhost>",
        ],
        "DATA",
    ),
    (
        "BDAT",
        &[
            "EHLO a.test",
            "MAIL FROM:<a@remote.test>",
            "RCPT TO:<postmaster@localhost>",
        ],
        "BDAT 4 LAST",
    ),
    ("RSET", &["EHLO a.test"], "RSET"),
    ("NOOP", &["EHLO a.test"], "NOOP"),
    ("VRFY", &["EHLO a.test"], "VRFY postmaster"),
    ("HELP", &["EHLO a.test"], "HELP"),
    ("AUTH", &["EHLO a.test"], "AUTH PLAIN"),
    ("STARTTLS", &["EHLO a.test"], "STARTTLS"),
    ("QUIT", &["EHLO a.test"], "QUIT"),
];

/// Sends `prefix`, then `line` ending in a bare LF (or `line` with a bare
/// CR inside) followed by a smuggled `NOOP`; returns the reply and whether
/// anything followed it (the smuggled NOOP's 250).
fn bare_in_position<S: Read + Write>(
    c: &mut Lines<S>,
    prefix: &[&str],
    line: &str,
    cr: bool,
) -> (String, Option<String>) {
    for p in prefix {
        let r = c.cmd(p).unwrap();
        assert!(r.starts_with('2') || r.starts_with('3'), "{p}: {r}");
    }
    let bytes = if cr {
        format!("{line}\rNOOP\r\n")
    } else {
        format!("{line}\nNOOP\r\n")
    };
    c.send(bytes.as_bytes()).unwrap();
    let first = c.reply().unwrap_or_else(|e| format!("closed: {e}"));
    let next = c.reply().ok();
    (first, next)
}

/// A bare LF, and a bare CR, in every command position: `521 5.5.2` and
/// a close; the smuggled `NOOP` after it is never answered. Plain on the
/// `mta` listener, and over TLS after STARTTLS; nothing is stored. A
/// legacy network (bare_lf_networks) may end its lines with a bare LF.
#[test]
fn bare_lf_or_cr_in_every_command_position_gets_521_and_close() {
    let dir = TempDir::new("abuse-barelf");
    let mut setup = abuse_setup("[connection_rate]\nallow = [\"127.0.0.0/8\"]\n");
    setup.server = "bare_lf_networks = [\"127.9.0.0/16\"]";
    let mut adv = start(dir.path(), setup);
    let port = adv.server.ports.mta;
    let mut runs = 0;
    for cr in [false, true] {
        for (name, prefix, line) in POSITIONS {
            let what = format!("{name} ({})", if cr { "bare CR" } else { "bare LF" });
            // Plain.
            let mut c = Lines::plain(port).unwrap();
            assert!(c.reply().unwrap().starts_with("220 "));
            let (r, next) = bare_in_position(&mut c, prefix, line, cr);
            assert!(r.starts_with("521 5.5.2"), "{what}, plain: {r}");
            assert!(
                next.is_none(),
                "{what}, plain: answered after the 521: {next:?}"
            );
            // After STARTTLS.
            let mut c = Lines::plain(port).unwrap();
            assert!(c.reply().unwrap().starts_with("220 "));
            assert!(c.cmd("EHLO a.test").unwrap().starts_with("250"));
            assert!(c.cmd("STARTTLS").unwrap().starts_with("220 "));
            let mut t = adv.tls(c.into_tcp()).unwrap();
            let (r, next) = bare_in_position(&mut t, prefix, line, cr);
            assert!(r.starts_with("521 5.5.2"), "{what}, TLS: {r}");
            assert!(
                next.is_none(),
                "{what}, TLS: answered after the 521: {next:?}"
            );
            runs += 2;
        }
    }
    eprintln!("bare LF/CR: {runs} runs, every one 521 and closed");
    // The smuggled transaction of the issue: nothing stored.
    let mut c = Lines::plain(port).unwrap();
    c.reply().unwrap();
    c.send(b"EHLO a.test\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\nSubject: BARE-LF-SMUGGLED\r\n\r\nx\r\n.\r\n").unwrap();
    assert!(c.reply().unwrap().starts_with("521 5.5.2"));
    adv.assert_never_stored("BARE-LF-SMUGGLED");
    // A legacy network: bare LF ends its lines, bare CR still does not.
    let mut c = Lines::new(connect_from(Ipv4Addr::new(127, 9, 0, 1), port).unwrap());
    assert!(c.reply().unwrap().starts_with("220 "));
    c.send(b"EHLO legacy.test\nNOOP\n").unwrap();
    assert!(c.reply().unwrap().starts_with("250"));
    assert_eq!(c.reply().unwrap(), "250 2.0.0 OK\r\n");
    c.send(b"NO\rOP\n").unwrap();
    assert!(c.reply().unwrap().starts_with("521 5.5.2"));
    adv.assert_alive();
    adv.well_behaved(SERVED_WITHIN);
}

/// The figures of docs/adversarial.md: guesses checked per minute by the
/// same attack (8 threads, implicit TLS, PLAIN, reconnecting after each
/// refusal), from one address and from 200 addresses of one /21. With
/// `POSTERN_MEASURE_BEFORE=1` (and `POSTERN_MTA_BIN` naming the older
/// build) the configuration has no abuse tables.
#[test]
#[ignore = "measurement for docs/adversarial.md; takes two minutes"]
fn measure_guess_rates() {
    let before = std::env::var_os("POSTERN_MEASURE_BEFORE").is_some();
    let dir = TempDir::new("abuse-measure");
    let adv = start(
        dir.path(),
        abuse_setup(if before {
            ""
        } else {
            "[connection_rate]\nallow = [\"127.0.0.0/8\"]\n"
        }),
    );
    let minute = Duration::from_secs(30);
    let pid = adv.server.pid();
    let rss = RssSampler::start(pid);
    let idle = adv_support::rss_kib(pid);
    let cases: [(&str, Vec<Ipv4Addr>, &[&str]); 2] = [
        (
            "one address, one login",
            vec![Ipv4Addr::new(127, 6, 0, 1)],
            &["alice"],
        ),
        (
            "200 addresses of one /21, 9 logins",
            addresses([127, 7, 0, 1], 200),
            &SPRAY[1..],
        ),
    ];
    for (label, sources, logins) in cases {
        let t = brute_force(&adv, &sources, logins, 8, minute);
        let per_minute = t.get(|t| &t.checked) as f64 * 60.0 / minute.as_secs_f64();
        eprintln!(
            "MEASURE {} {label}: {} guesses checked in {minute:?} ({per_minute:.0}/min), {} connections, {} throttled, {} banned; RSS idle {idle} KiB, peak {} KiB",
            if before { "before" } else { "after" },
            t.get(|t| &t.checked),
            t.get(|t| &t.connections),
            t.get(|t| &t.throttled),
            t.get(|t| &t.banned),
            rss.peak(),
        );
    }
    let (r, took) = good_auth(&adv, Ipv4Addr::new(127, 8, 0, 1), "alice", "alice-pw");
    eprintln!(
        "MEASURE alice from another /21 afterwards: {} in {took:?}",
        r.trim_end()
    );
}
