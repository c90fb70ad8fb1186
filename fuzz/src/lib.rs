//! Fuzz target bodies, shared by the cargo-fuzz entry points in
//! `fuzz_targets/` and by the corpus replay in `tests/corpus.rs`, so CI checks
//! every committed corpus input on stable Rust without libFuzzer.
//!
//! Each function panics when an invariant breaks; a panic is a finding.
//!
//! ```
//! postern_fuzz::command(b"MAIL FROM:<a@example.org> SIZE=10\r\nQUIT\r\n");
//! postern_fuzz::data(b"\x03body\r\n.\r\nNEXT");
//! ```

mod dkim;
mod mta_sts;
mod proxy_header;
mod scram;
mod tlsa;
mod tlsrpt;

pub use dkim::dkim;
pub use mta_sts::mta_sts;
pub use proxy_header::proxy_header;
pub use scram::scram;
pub use tlsa::tlsa;
pub use tlsrpt::tlsrpt;

use bytes::BytesMut;
use postern_proto::data::{BareLineEndings, DataConfig, DataDecoder, DataStep, DataSummary};
use postern_proto::{
    Command, CommandParser, EhloResponse, LineLimits, Parsed, ReplyLimits, ReplyParse, parse_reply,
};

/// Feeds arbitrary bytes to the command parser: every command must encode
/// and parse back to itself, every error must map to a permanent reply, and
/// feeding the same bytes one at a time must give the same results.
pub fn command(data: &[u8]) {
    let limits = LineLimits::new(512, 2048);
    let whole = parse_all(data, limits);
    for result in &whole {
        match result {
            Ok(c) => {
                let wire = c.to_vec().expect("a parsed command encodes");
                assert_eq!(
                    Command::parse(&wire[..wire.len() - 2]).as_ref(),
                    Ok(c),
                    "round trip of {:?}",
                    String::from_utf8_lossy(&wire)
                );
            }
            Err(e) => assert!(e.reply().is_permanent(), "{e:?} maps to a 5xx"),
        }
    }
    let mut parser = CommandParser::new(limits);
    let mut pending = Vec::new();
    let mut stepwise = Vec::new();
    for &b in data {
        pending.push(b);
        loop {
            match parser.parse(&pending) {
                Parsed::Command { command, consumed } => {
                    stepwise.push(Ok(command.into_owned()));
                    pending.drain(..consumed);
                }
                Parsed::Error { error, consumed } => {
                    stepwise.push(Err(error));
                    pending.drain(..consumed);
                }
                Parsed::Incomplete { consumed } => {
                    pending.drain(..consumed);
                    break;
                }
            }
        }
        assert!(pending.len() <= limits.auth, "buffered past the line limit");
    }
    assert_eq!(
        whole, stepwise,
        "byte-by-byte parsing differs from one-shot"
    );
}

fn parse_all(
    data: &[u8],
    limits: LineLimits,
) -> Vec<Result<Command<'static>, postern_proto::SyntaxError>> {
    let mut parser = CommandParser::new(limits);
    let mut rest = data;
    let mut out = Vec::new();
    loop {
        match parser.parse(rest) {
            Parsed::Command { command, consumed } => {
                out.push(Ok(command.into_owned()));
                rest = &rest[consumed..];
            }
            Parsed::Error { error, consumed } => {
                out.push(Err(error));
                rest = &rest[consumed..];
            }
            Parsed::Incomplete { .. } => return out,
        }
    }
}

/// Feeds arbitrary bytes to the reply parser: a complete reply re-encodes to
/// a reply that parses to the same value, and, when it is a 250, the EHLO
/// capability set survives encode and parse.
pub fn reply(data: &[u8]) {
    let limits = ReplyLimits::new(512, 64);
    let Ok(ReplyParse::Complete(reply, used)) = parse_reply(data, &limits) else {
        return;
    };
    assert!(used <= data.len());
    let wire = reply.to_vec();
    let Ok(ReplyParse::Complete(again, used_again)) = parse_reply(&wire, &ReplyLimits::default())
    else {
        panic!(
            "re-encoded reply does not parse: {:?}",
            String::from_utf8_lossy(&wire)
        );
    };
    assert_eq!(used_again, wire.len());
    assert_eq!(again, reply);
    if let Ok(ehlo) = EhloResponse::from_reply(&reply) {
        let wire = ehlo.to_reply().to_vec();
        let Ok(ReplyParse::Complete(r, _)) = parse_reply(&wire, &ReplyLimits::default()) else {
            panic!("EHLO reply does not parse back");
        };
        let back = EhloResponse::from_reply(&r).expect("encoded EHLO reply reads back");
        assert_eq!(back, ehlo);
    }
}

/// Decodes a DATA body from arbitrary bytes, split at points chosen by the
/// first byte, and checks the result is the same as in one piece: the same
/// body, the same summary, the same bytes left after the terminator.
pub fn data(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let config = DataConfig::new(
        (control & 0x40 != 0).then_some(u64::from(control & 0x3f) * 7),
        if control & 0x80 != 0 {
            BareLineEndings::Normalize
        } else {
            BareLineEndings::Keep
        },
    );
    let step = usize::from(control & 0x0f) + 1;
    let one = decode(config, body, body.len().max(1));
    let split = decode(config, body, step);
    assert_eq!(one, split, "split at every {step} bytes changes the result");
    if let (Some(summary), body_out) = (&one.1, &one.0) {
        let limit = config.max_size.unwrap_or(u64::MAX);
        assert_eq!(summary.exceeded_limit, summary.size > limit);
        assert_eq!(body_out.len() as u64, summary.size.min(limit));
    }
}

type Decoded = (Vec<u8>, Option<DataSummary>, Vec<u8>);

fn decode(config: DataConfig, input: &[u8], step: usize) -> Decoded {
    let mut decoder = DataDecoder::new(config);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            match decoder.decode(&mut buf) {
                DataStep::Chunk(c) => out.extend_from_slice(&c),
                DataStep::NeedMore => break,
                DataStep::End(summary) => {
                    // What follows the terminator: what is buffered plus what
                    // was never fed.
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&input[fed..]);
                    return (out, Some(summary), rest);
                }
            }
        }
    }
    (out, None, buf.to_vec())
}

/// Parses one line as a command and checks the canonical form is a fixed
/// point: encode(parse(encode(parse(x)))) == encode(parse(x)).
pub fn roundtrip(data: &[u8]) {
    let line = data.strip_suffix(b"\r\n").unwrap_or(data);
    let Ok(command) = Command::parse(line) else {
        return;
    };
    let wire = command.to_vec().expect("a parsed command encodes");
    let again = Command::parse(&wire[..wire.len() - 2]).expect("canonical form parses");
    assert_eq!(again, command);
    assert_eq!(
        again.to_vec().expect("encodes"),
        wire,
        "canonical form is stable"
    );
}
