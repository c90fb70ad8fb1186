//! Property tests: parse(encode(x)) == x for commands, parameters and
//! replies; any chunking of the input gives the same commands; no input
//! panics the parser.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use postern_proto::params::{MailParams, Notify, Orcpt, RcptParams, Ret, UnknownParam};
use postern_proto::{
    AddressLiteral, Body, Command, CommandParser, Domain, EnhancedCode, ForwardPath, Host,
    InitialResponse, LineLimits, LocalPart, Mailbox, Mechanism, Parsed, Reply, ReplyCode,
    ReplyLimits, ReplyParse, ReversePath, SyntaxError, parse_reply,
};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

fn domain() -> impl Strategy<Value = Domain<'static>> {
    prop::collection::vec(label(), 1..4)
        .prop_map(|labels| Domain::new(labels.join(".")).expect("generated domains are valid"))
}

fn utf8_domain() -> impl Strategy<Value = Domain<'static>> {
    (label(), "[äöüé]{1,3}")
        .prop_map(|(a, u)| Domain::new(format!("{u}{a}.example")).expect("U-label domain is valid"))
}

fn host() -> impl Strategy<Value = Host<'static>> {
    prop_oneof![
        4 => domain().prop_map(Host::Domain),
        1 => any::<u32>().prop_map(|a| Host::Literal(AddressLiteral::V4(Ipv4Addr::from(a)))),
        1 => any::<u128>().prop_map(|a| Host::Literal(AddressLiteral::V6(Ipv6Addr::from(a)))),
        1 => ("x-[a-z]{1,5}", "[!-Z^-~]{1,10}").prop_map(|(tag, content)| {
            Host::Literal(AddressLiteral::General { tag: tag.into(), content: content.into() })
        }),
    ]
}

fn local_part() -> impl Strategy<Value = LocalPart<'static>> {
    prop_oneof![
        3 => prop::collection::vec("[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}", 1..4)
            .prop_map(|atoms| LocalPart::DotString(atoms.join(".").into())),
        1 => "[ -~]{0,12}".prop_map(|v| LocalPart::Quoted(v.into())),
    ]
}

fn mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    (local_part(), host()).prop_map(|(l, h)| Mailbox::new(l, h))
}

fn utf8_mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    ("[a-z]{1,4}[éü]{1,2}", utf8_domain())
        .prop_map(|(l, d)| Mailbox::new(LocalPart::DotString(l.into()), Host::Domain(d)))
}

fn xtext_value() -> impl Strategy<Value = Cow<'static, str>> {
    "[ -~é]{1,20}".prop_map(Cow::Owned)
}

fn unknown_params() -> impl Strategy<Value = Vec<UnknownParam<'static>>> {
    prop::collection::btree_map("X-[A-Z]{1,6}", prop::option::of("[!-<>-~]{1,8}"), 0..3).prop_map(
        |m| {
            m.into_iter()
                .map(|(k, v)| UnknownParam {
                    keyword: k.into(),
                    value: v.map(Cow::Owned),
                })
                .collect()
        },
    )
}

fn mail_params() -> impl Strategy<Value = MailParams<'static>> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of(prop_oneof![
            Just(Body::SevenBit),
            Just(Body::EightBitMime),
            Just(Body::BinaryMime)
        ]),
        prop::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Headers)]),
        prop::option::of("[ -~]{1,30}".prop_map(Cow::Owned)),
        prop::option::of(prop_oneof![
            Just(Cow::Borrowed("<>")),
            mailbox().prop_map(|m| Cow::Owned(m.to_string()))
        ]),
        any::<bool>(),
        prop::option::of(-9i8..=9),
        unknown_params(),
    )
        .prop_map(
            |(size, body, ret, envid, auth, requiretls, mt_priority, unknown)| MailParams {
                size,
                body,
                smtputf8: false,
                ret,
                envid,
                auth,
                requiretls,
                mt_priority,
                unknown,
            },
        )
}

fn rcpt_params() -> impl Strategy<Value = RcptParams<'static>> {
    (
        prop::option::of(prop_oneof![
            Just(Notify::Never),
            (any::<bool>(), any::<bool>(), any::<bool>())
                .prop_filter("at least one", |(a, b, c)| *a || *b || *c)
                .prop_map(|(success, failure, delay)| Notify::On {
                    success,
                    failure,
                    delay
                }),
        ]),
        prop::option::of(("rfc822|utf-8", xtext_value()).prop_map(|(t, a)| Orcpt {
            addr_type: t.into(),
            address: a,
        })),
        unknown_params(),
    )
        .prop_map(|(notify, orcpt, unknown)| RcptParams {
            notify,
            orcpt,
            unknown,
        })
}

fn text() -> impl Strategy<Value = Cow<'static, str>> {
    "[!-~][ -~]{0,20}".prop_map(Cow::Owned)
}

fn mechanism() -> impl Strategy<Value = Mechanism<'static>> {
    prop_oneof![
        Just(Mechanism::Plain),
        Just(Mechanism::Login),
        Just(Mechanism::CramMd5),
        Just(Mechanism::ScramSha256),
        Just(Mechanism::XOauth2),
        Just(Mechanism::OauthBearer),
        "X-[A-Z0-9_]{1,10}".prop_map(|m| Mechanism::Other(m.into())),
    ]
}

fn command() -> impl Strategy<Value = Command<'static>> {
    prop_oneof![
        host().prop_map(Command::Ehlo),
        host().prop_map(Command::Helo),
        host().prop_map(Command::Lhlo),
        (
            prop_oneof![
                Just(ReversePath::Null),
                mailbox().prop_map(ReversePath::Mailbox)
            ],
            mail_params()
        )
            .prop_map(|(from, params)| Command::Mail { from, params }),
        (utf8_mailbox(), mail_params()).prop_map(|(m, mut params)| {
            params.smtputf8 = true;
            Command::Mail {
                from: ReversePath::Mailbox(m),
                params,
            }
        }),
        (
            prop_oneof![
                Just(ForwardPath::Postmaster),
                mailbox().prop_map(ForwardPath::Mailbox)
            ],
            rcpt_params()
        )
            .prop_map(|(to, params)| Command::Rcpt { to, params }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        prop::option::of(text()).prop_map(Command::Noop),
        Just(Command::Quit),
        text().prop_map(Command::Vrfy),
        text().prop_map(Command::Expn),
        prop::option::of(text()).prop_map(Command::Help),
        Just(Command::StartTls),
        (
            mechanism(),
            prop::option::of(prop_oneof![
                Just(InitialResponse::Empty),
                prop::collection::vec(any::<u8>(), 1..40)
                    .prop_map(|b| InitialResponse::Base64(postern_proto::encode_base64(&b).into())),
            ])
        )
            .prop_map(|(mechanism, initial_response)| Command::Auth {
                mechanism,
                initial_response
            }),
    ]
}

/// Parses a whole buffer at once, collecting commands (owned) and errors.
fn parse_all(buf: &[u8], limits: LineLimits) -> Vec<Result<Command<'static>, SyntaxError>> {
    let mut parser = CommandParser::new(limits);
    let mut rest = buf;
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

/// Feeds `buf` in the given chunks, as a server reading a socket would.
fn parse_chunked(
    buf: &[u8],
    cuts: &[usize],
    limits: LineLimits,
) -> Vec<Result<Command<'static>, SyntaxError>> {
    let mut parser = CommandParser::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
    points.sort_unstable();
    points.push(buf.len());
    for p in points {
        pending.extend_from_slice(&buf[last..p]);
        last = p;
        loop {
            match parser.parse(&pending) {
                Parsed::Command { command, consumed } => {
                    out.push(Ok(command.into_owned()));
                    pending.drain(..consumed);
                }
                Parsed::Error { error, consumed } => {
                    out.push(Err(error));
                    pending.drain(..consumed);
                }
                Parsed::Incomplete { consumed } => {
                    pending.drain(..consumed);
                    break;
                }
            }
        }
        assert!(
            pending.len() <= limits.auth.max(limits.command),
            "never buffers past the limit"
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn command_round_trip(cmd in command()) {
        let wire = cmd.to_vec().expect("generated commands encode");
        prop_assert!(wire.ends_with(b"\r\n"));
        let parsed = Command::parse(&wire[..wire.len() - 2]);
        prop_assert_eq!(parsed, Ok(cmd.clone()), "wire: {:?}", String::from_utf8_lossy(&wire));
        // And through the incremental parser.
        let all = parse_all(&wire, LineLimits::new(4096, 4096));
        prop_assert_eq!(all, vec![Ok(cmd)]);
    }

    #[test]
    fn reply_round_trip(
        code in (2u16..=5, 0u16..=5, 0u16..=9).prop_map(|(a, b, c)| a * 100 + b * 10 + c),
        enhanced in prop::option::of((0u16..=999, 0u16..=999)),
        lines in prop::collection::vec("([A-Za-z][ -~]{0,30})?", 1..5),
    ) {
        let code = ReplyCode::new(code).expect("valid code");
        let class = code.class();
        let enhanced = enhanced
            .filter(|_| matches!(class, 2 | 4 | 5))
            .and_then(|(s, d)| EnhancedCode::new(class, s, d));
        let reply = Reply::new(code, enhanced, lines.clone()).expect("valid reply");
        let wire = reply.to_vec();
        match parse_reply(&wire, &ReplyLimits::default()) {
            Ok(ReplyParse::Complete(parsed, used)) => {
                prop_assert_eq!(used, wire.len());
                prop_assert_eq!(parsed, reply);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        // Every strict prefix is incomplete, never an error.
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_reply(&wire[..cut], &ReplyLimits::default()), Ok(ReplyParse::Incomplete));
        }
    }

    #[test]
    fn any_chunking_gives_the_same_commands(
        cmds in prop::collection::vec(command(), 1..8),
        junk in prop::collection::vec(prop_oneof![
            Just(b"NOOP\n".to_vec()),
            Just(b"NO\rOP\r\n".to_vec()),
            Just(b"FOO bar\r\n".to_vec()),
            Just(vec![b'x'; 700]),
            Just(b"\r\n".to_vec()),
            Just(b"MAIL FROM:<\xff@x>\r\n".to_vec()),
        ], 0..3),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut buf = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            buf.extend(c.to_vec().expect("encodes"));
            if let Some(j) = junk.get(i) {
                buf.extend_from_slice(j);
            }
        }
        let limits = LineLimits::new(512, 2048);
        let whole = parse_all(&buf, limits);
        let chunked = parse_chunked(&buf, &cuts, limits);
        prop_assert_eq!(&whole, &chunked);
        let byte_by_byte = parse_chunked(&buf, &(0..buf.len()).collect::<Vec<_>>(), limits);
        prop_assert_eq!(&whole, &byte_by_byte);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let results = parse_all(&bytes, LineLimits::default());
        for r in results {
            match r {
                Ok(c) => {
                    // Whatever parsed must encode and parse back to itself.
                    let wire = c.to_vec().expect("parsed commands encode");
                    prop_assert_eq!(Command::parse(&wire[..wire.len() - 2]), Ok(c));
                }
                Err(e) => {
                    let reply = e.reply();
                    prop_assert!(reply.is_permanent(), "{:?}", e);
                }
            }
        }
        let _ = parse_reply(&bytes, &ReplyLimits::default());
    }

    #[test]
    fn invalid_utf8_is_an_error_never_replaced(
        prefix in "(MAIL FROM:<|RCPT TO:<|EHLO |VRFY )[a-z]{0,5}",
        bad in prop_oneof![Just(vec![0xffu8]), Just(vec![0xc3u8]), Just(vec![0xed, 0xa0, 0x80]), Just(vec![0xe2, 0x28, 0xa1])],
    ) {
        let mut line = prefix.into_bytes();
        line.extend(bad);
        line.extend_from_slice(b"@example.com>");
        prop_assert_eq!(Command::parse(&line), Err(SyntaxError::InvalidUtf8));
    }

    #[test]
    fn over_long_lines_are_refused_and_the_next_line_survives(
        len in 513usize..3000,
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut buf = vec![b'a'; len];
        buf.extend_from_slice(b"\r\nQUIT\r\n");
        let got = parse_chunked(&buf, &cuts, LineLimits::default());
        prop_assert_eq!(got, vec![Err(SyntaxError::LineTooLong { limit: 512 }), Ok(Command::Quit)]);
    }
}

#[test]
fn limits_are_exact() {
    let limits = LineLimits::default();
    let ok = format!("NOOP {}\r\n", "a".repeat(512 - 7));
    assert_eq!(ok.len(), 512);
    assert!(matches!(
        parse_all(ok.as_bytes(), limits).as_slice(),
        [Ok(Command::Noop(_))]
    ));
    let long = format!("NOOP {}\r\n", "a".repeat(512 - 6));
    assert_eq!(
        parse_all(long.as_bytes(), limits),
        vec![Err(SyntaxError::LineTooLong { limit: 512 })]
    );
    let auth_ok = format!("AUTH XOAUTH2 {}\r\n", "A".repeat(12 * 1024 - 15));
    assert_eq!(auth_ok.len(), 12 * 1024);
    assert!(matches!(
        parse_all(auth_ok.as_bytes(), limits).as_slice(),
        [Ok(Command::Auth { .. })]
    ));
    let auth_long = format!("AUTH XOAUTH2 {}\r\n", "A".repeat(12 * 1024 - 14));
    assert_eq!(
        parse_all(auth_long.as_bytes(), limits),
        vec![Err(SyntaxError::LineTooLong { limit: 12 * 1024 })]
    );
}
