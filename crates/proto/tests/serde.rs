//! The `serde` forms: SMTP text, read back through the wire grammar.
#![cfg(feature = "serde")]

use postern_proto::{
    Body, EnhancedCode, ForwardPath, Host, Mailbox, Mechanism, Notify, Orcpt, Reply, ReplyCode,
    Ret, ReversePath, TlsVersion,
};
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T, json: &str) {
    let text = serde_json::to_string(v).unwrap();
    assert_eq!(text, json);
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, v);
}

#[test]
fn vocabulary_is_stored_in_its_smtp_text_form() {
    round_trip(&TlsVersion::Tls12, r#""TLSv1.2""#);
    round_trip(&EnhancedCode::new(5, 7, 1).unwrap(), r#""5.7.1""#);
    round_trip(&Body::EightBitMime, r#""8BITMIME""#);
    round_trip(&Ret::Headers, r#""HDRS""#);
    round_trip(&Notify::Never, r#""NEVER""#);
    round_trip(
        &Notify::On {
            success: true,
            failure: false,
            delay: true,
        },
        r#""SUCCESS,DELAY""#,
    );
    round_trip(&Mechanism::ScramSha256, r#""SCRAM-SHA-256""#);
    round_trip(
        &Mailbox::parse("\"john doe\"@example.org")
            .unwrap()
            .into_owned(),
        r#""\"john doe\"@example.org""#,
    );
    round_trip(&ReversePath::Null, r#""<>""#);
    round_trip(
        &ReversePath::Mailbox(Mailbox::parse("a@[192.0.2.1]").unwrap().into_owned()),
        r#""<a@[192.0.2.1]>""#,
    );
    round_trip(&ForwardPath::Postmaster, r#""<Postmaster>""#);
    round_trip(
        &Host::parse("[IPv6:2001:db8::1]").unwrap().into_owned(),
        r#""[IPv6:2001:db8::1]""#,
    );
    round_trip(
        &Orcpt {
            addr_type: "rfc822".into(),
            address: "bob@example.com".into(),
        },
        r#"{"addr_type":"rfc822","address":"bob@example.com"}"#,
    );
    let reply = Reply::new(
        ReplyCode::new(451).unwrap(),
        EnhancedCode::new(4, 3, 0),
        ["try", "later"],
    )
    .unwrap()
    .into_owned();
    round_trip(
        &reply,
        r#"{"code":451,"enhanced":"4.3.0","lines":["try","later"]}"#,
    );
}

#[test]
fn stored_values_go_through_the_strict_grammar() {
    for bad in [
        r#""TLSv1.4""#,
        r#""not a mailbox""#,
        r#""6.0.0""#,
        r#""5.7.1 trailing""#,
        r#""9BIT""#,
        r#""NEVER,SUCCESS""#,
        r#""SUCCESS,SUCCESS""#,
    ] {
        assert!(serde_json::from_str::<TlsVersion>(bad).is_err());
        assert!(serde_json::from_str::<Mailbox<'static>>(bad).is_err());
        assert!(serde_json::from_str::<EnhancedCode>(bad).is_err());
        assert!(serde_json::from_str::<Body>(bad).is_err());
        assert!(serde_json::from_str::<Notify>(bad).is_err());
    }
    // A reply whose text would inject a second line is refused on load.
    let injected = r#"{"code":250,"lines":["ok\r\n250 forged"]}"#;
    assert!(serde_json::from_str::<Reply<'static>>(injected).is_err());
    // Class mismatch between the reply code and the enhanced code.
    let mismatch = r#"{"code":250,"enhanced":"5.0.0","lines":["x"]}"#;
    assert!(serde_json::from_str::<Reply<'static>>(mismatch).is_err());
    let err = serde_json::from_str::<ReversePath<'static>>(r#""alice@example.org""#).unwrap_err();
    assert!(err.to_string().contains("invalid reverse path"), "{err}");
}
