use super::*;

// The examples of RFC 8461 §3.1 and §3.2.
const RFC_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

#[test]
fn the_rfc_examples_parse() {
    let r = StsRecord::parse("v=STSv1; id=20160831085700Z;").unwrap();
    assert_eq!(r.id(), "20160831085700Z");
    assert_eq!(r.to_string(), "v=STSv1; id=20160831085700Z;");
    let p = StsPolicy::parse(RFC_POLICY.as_bytes()).unwrap();
    assert_eq!(p.mode(), StsMode::Enforce);
    assert_eq!(p.max_age().as_secs(), 604_800);
    assert_eq!(p.mx().len(), 3);
    // LF-only lines, no final terminator, trailing white space: the same.
    let lf = "version: STSv1\nmode: enforce\nmx: mail.example.com \nmx: *.example.net\nmx: backupmx.example.com\nmax_age:604800";
    assert_eq!(StsPolicy::parse(lf.as_bytes()).unwrap(), p);
    // Printing gives a policy that parses to the same value.
    assert_eq!(StsPolicy::parse(p.to_string().as_bytes()).unwrap(), p);
}

#[test]
fn records_follow_the_grammar() {
    for ok in [
        "v=STSv1;id=1",
        "v=STSv1; id=abc123",
        "v=STSv1 ; id=abc;",
        "v=STSv1; id=abc; ext=value",
        "v=STSv1; x.y-z_1=%{}; id=Z",
    ] {
        assert!(StsRecord::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "v=STSv2; id=1",
        "v=STSv1",
        "v=STSv1;",
        "v=STSv1; id=",
        "v=STSv1; id=abc-def",
        "v=STSv1; id=123456789012345678901234567890123",
        "v=STSv1; id=1; id=2",
        "v=STSv1; id=1;; x=y",
        "v=STSv1; id=1; x",
        "v=STSv1; id=1; -x=y",
        "v=STSv1; id=1; x=a=b",
        "v=STSv1; id=1; x=a b",
        "v=STSv1id=1",
        " v=STSv1; id=1",
    ] {
        assert!(StsRecord::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn exactly_one_record_must_announce_a_policy() {
    // Others are discarded (SPF, verification records).
    let one = StsRecord::select(["v=spf1 -all", "v=STSv1; id=x1;", "google-site=abc"]).unwrap();
    assert_eq!(one.unwrap().id(), "x1");
    assert_eq!(StsRecord::select(["v=spf1 -all"]).unwrap(), None);
    assert_eq!(StsRecord::select([]).unwrap(), None);
    assert_eq!(
        StsRecord::select(["v=STSv1; id=a;", "v=STSv1; id=b;"]),
        Err(RecordError::Several(2))
    );
    assert!(StsRecord::select(["v=STSv1; id=;"]).is_err());
}

#[test]
fn malformed_policies_are_no_policy() {
    let cases: &[(&str, &str)] = &[
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version"),
        (
            "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            "version is not",
        ),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode"),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            "no max_age",
        ),
        (
            "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
            "mode is not",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
            "above",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
            "digits",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
            "digits",
        ),
        (
            "version: STSv1\nmode: enforce\nmax_age: 86400\n",
            "needs at least one mx",
        ),
        (
            "version: STSv1\nmode: testing\nmax_age: 86400\n",
            "needs at least one mx",
        ),
        (
            "version: STSv1\nmode: enforce\nmode: none\nmx: a\nmax_age: 1\n",
            "mode given twice",
        ),
        (
            "version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n",
            "version given twice",
        ),
        (
            "version: STSv1\nmode: none\nmax_age: 1\nmax_age: 2\n",
            "max_age given twice",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
            "mx is not",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
            "mx is not",
        ),
        (
            "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n",
            "mx is not",
        ),
        (
            "version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n",
            "mx is not",
        ),
        (
            "version: STSv1\rmode: enforce\nmx: a\nmax_age: 1\n",
            "bare CR",
        ),
        ("<html>not a policy</html>\n", "not key: value"),
        (
            "version: STSv1\nmode: none\nmax_age: 1\n-bad: x\n",
            "extension",
        ),
    ];
    for (body, why) in cases {
        let err = StsPolicy::parse(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(why), "{body:?}: {err}");
    }
    assert_eq!(StsPolicy::parse(&[0xff, 0xfe]), Err(PolicyError::NotText));
    let big = vec![b'x'; MAX_POLICY_SIZE + 1];
    assert_eq!(StsPolicy::parse(&big), Err(PolicyError::TooLarge));
}

#[test]
fn none_needs_no_mx_and_unknown_fields_are_ignored() {
    let p = StsPolicy::parse(b"version: STSv1\nmode: none\nmax_age: 0\n").unwrap();
    assert_eq!(p.mode(), StsMode::None);
    assert!(p.allows_mx("anything.example"));
    let p = StsPolicy::parse(
        b"version: STSv1\n\nmode: testing\nx-vendor: some value\nmx: mx.example.org\nmax_age: 31557600\n",
    )
    .unwrap();
    assert_eq!(p.mode(), StsMode::Testing);
    assert_eq!(p.max_age().as_secs(), 31_557_600);
}

#[test]
fn mx_matching_follows_section_4_1() {
    let p = StsPolicy::parse(RFC_POLICY.as_bytes()).unwrap();
    assert!(p.allows_mx("mail.example.com"));
    assert!(p.allows_mx("MAIL.Example.COM."));
    assert!(p.allows_mx("mx1.example.net"));
    // The wildcard covers exactly one label.
    assert!(!p.allows_mx("example.net"));
    assert!(!p.allows_mx("a.b.example.net"));
    assert!(!p.allows_mx(".example.net"));
    assert!(!p.allows_mx("evilexample.net"));
    assert!(!p.allows_mx("mail.example.com.evil"));
    assert!(!p.allows_mx("other.example.com"));
    // Hosts from DNS may hold any octets; matching never panics.
    assert!(!p.allows_mx("é.example.net.x"));
    assert!(p.allows_mx("é.example.net"));
    let w = MxPattern::parse("*.Example.NET.").unwrap();
    assert!(w.is_wildcard());
    assert_eq!(w.to_string(), "*.example.net");
}

fn enforce(mx: &str, max_age: u32) -> StsPolicy {
    StsPolicy::parse(
        format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: {max_age}\n").as_bytes(),
    )
    .unwrap()
}

fn record(id: &str) -> TxtAnswer {
    TxtAnswer::Record(StsRecord::parse(&format!("v=STSv1; id={id};")).unwrap())
}

const DAY: u64 = 86_400;

// The cases of postfix-mta-sts-resolver's tests that concern the cache,
// as decisions (the fetches themselves are the driver's).
#[test]
fn a_fresh_cached_policy_with_the_same_id_is_used_without_fetching() {
    let cached = CachedPolicy::new("v1", enforce("mx.a.example", 7 * DAY as u32), 1_000);
    assert_eq!(
        Refresh::step(Some(&cached), record("v1"), 1_000 + DAY),
        CacheStep::Use(cached.policy.clone())
    );
}

#[test]
fn a_policy_changed_under_the_same_id_is_not_picked_up_until_max_age() {
    // The publisher changed the file but not the id: the cached policy
    // stays until it comes close to expiry, then is refreshed.
    let cached = CachedPolicy::new("v1", enforce("mx.a.example", 7 * DAY as u32), 0);
    assert!(matches!(
        Refresh::step(Some(&cached), record("v1"), 3 * DAY),
        CacheStep::Use(_)
    ));
    let near_expiry = 7 * DAY - 3_600;
    assert_eq!(
        Refresh::step(Some(&cached), record("v1"), near_expiry),
        CacheStep::Fetch {
            id: "v1".into(),
            fallback: Some(cached.clone())
        }
    );
}

#[test]
fn a_new_id_fetches_and_the_new_policy_replaces_the_old() {
    let cached = CachedPolicy::new("v1", enforce("mx.a.example", 7 * DAY as u32), 0);
    let step = Refresh::step(Some(&cached), record("v2"), DAY);
    let CacheStep::Fetch { id, fallback } = step else {
        panic!("{step:?}")
    };
    assert_eq!(id, "v2");
    let new = enforce("mx.b.example", 7 * DAY as u32);
    let (apply, store) = Refresh::on_fetch(&id, Some(new.clone()), fallback, DAY);
    assert_eq!(apply, Some(new.clone()));
    assert_eq!(store, Some(CachedPolicy::new("v2", new, DAY)));
}

#[test]
fn a_failed_fetch_keeps_enforcing_the_cached_policy_until_it_expires() {
    let cached = CachedPolicy::new("v1", enforce("mx.a.example", 7 * DAY as u32), 0);
    let (apply, store) = Refresh::on_fetch("v2", None, Some(cached.clone()), DAY);
    assert_eq!(apply, Some(cached.policy.clone()));
    assert_eq!(store, None, "the cache is left as it was");
    // Past max_age nothing is left.
    assert_eq!(
        Refresh::on_fetch("v2", None, Some(cached), 8 * DAY),
        (None, None)
    );
}

#[test]
fn dns_failure_or_a_removed_record_does_not_drop_a_fresh_policy() {
    let cached = CachedPolicy::new("v1", enforce("mx.a.example", 7 * DAY as u32), 0);
    for txt in [TxtAnswer::Failed, TxtAnswer::NoPolicy] {
        assert_eq!(
            Refresh::step(Some(&cached), txt, DAY),
            CacheStep::Use(cached.policy.clone())
        );
    }
    assert_eq!(
        Refresh::step(Some(&cached), TxtAnswer::NoPolicy, 8 * DAY),
        CacheStep::NoPolicy
    );
    assert_eq!(
        Refresh::step(None, TxtAnswer::Failed, 0),
        CacheStep::NoPolicy
    );
    assert_eq!(
        Refresh::step(None, record("x"), 0),
        CacheStep::Fetch {
            id: "x".into(),
            fallback: None
        }
    );
}

#[test]
fn the_stored_form_survives_a_restart_and_refuses_damage() {
    let cached = CachedPolicy::new(
        "20160831085700Z",
        enforce("*.a.example", 604_800),
        1_764_600_000,
    );
    let text = cached.to_stored();
    assert_eq!(CachedPolicy::from_stored(&text), Some(cached.clone()));
    // After a restart, before any fetch: the same id and a fresh entry
    // mean the stored policy is enforced at once.
    let restored = CachedPolicy::from_stored(&text).unwrap();
    assert!(matches!(
        Refresh::step(Some(&restored), record("20160831085700Z"), 1_764_600_000 + 60),
        CacheStep::Use(p) if p.mode() == StsMode::Enforce
    ));
    for bad in [
        "",
        "postern-sts-cache 2 id 1\nversion: STSv1\nmode: none\nmax_age: 1\n",
        "postern-sts-cache 1 bad-id 1\nversion: STSv1\nmode: none\nmax_age: 1\n",
        "postern-sts-cache 1 id x\nversion: STSv1\nmode: none\nmax_age: 1\n",
        "postern-sts-cache 1 id 1 extra\nversion: STSv1\nmode: none\nmax_age: 1\n",
        "postern-sts-cache 1 id 1\nversion: STSv1\nmode: enforce\nmax_age: 1\n",
    ] {
        assert_eq!(CachedPolicy::from_stored(bad), None, "{bad:?}");
    }
}
