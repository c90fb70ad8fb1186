//! Text operators: exact, list, wildcard and regex matching, compiled once.
//!
//! Every comparison is ASCII case-insensitive because the things rules test
//! (domains, HELO names, mailbox addresses as operators write them, cipher
//! and listener names) are compared that way in SMTP practice: an operator who
//! writes `MyDomain.com` means `mydomain.com`. Matching never allocates.

use std::cmp::Ordering;
use std::fmt;

use crate::error::PatternError;

/// An operator applied to a text fact.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TextMatch {
    /// Equal to the text.
    Is(String),
    /// Not equal to the text (an unknown fact still does not match).
    IsNot(String),
    /// Equal to one of the texts.
    In(TextList),
    /// Matches a `*`/`?` wildcard such as `*.example.com`.
    Wildcard(Wildcard),
    /// Matches a regular expression anywhere (anchor it with `^…$`).
    Regex(Pattern),
}

impl TextMatch {
    /// `is`.
    pub fn is(text: impl Into<String>) -> TextMatch {
        TextMatch::Is(text.into())
    }

    /// `is not`.
    pub fn is_not(text: impl Into<String>) -> TextMatch {
        TextMatch::IsNot(text.into())
    }

    /// `in [..]`.
    pub fn one_of<I, S>(texts: I) -> TextMatch
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TextMatch::In(TextList::new(texts))
    }

    /// A wildcard; fails on an empty pattern.
    pub fn wildcard(pattern: &str) -> Result<TextMatch, PatternError> {
        Wildcard::new(pattern).map(TextMatch::Wildcard)
    }

    /// A regular expression; fails when it does not compile.
    pub fn regex(pattern: &str) -> Result<TextMatch, PatternError> {
        Pattern::new(pattern).map(TextMatch::Regex)
    }

    /// Whether `value` satisfies the operator.
    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextMatch::Is(t) => t.eq_ignore_ascii_case(value),
            TextMatch::IsNot(t) => !t.eq_ignore_ascii_case(value),
            TextMatch::In(list) => list.contains(value),
            TextMatch::Wildcard(w) => w.matches(value),
            TextMatch::Regex(r) => r.matches(value),
        }
    }

    /// The operator's name as written in configuration.
    pub fn operator(&self) -> &'static str {
        match self {
            TextMatch::Is(_) => "is",
            TextMatch::IsNot(_) => "is_not",
            TextMatch::In(_) => "in",
            TextMatch::Wildcard(_) => "wildcard",
            TextMatch::Regex(_) => "regex",
        }
    }
}

impl fmt::Display for TextMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextMatch::Is(t) => write!(f, "is {t:?}"),
            TextMatch::IsNot(t) => write!(f, "is not {t:?}"),
            TextMatch::In(list) => write!(f, "in {list}"),
            TextMatch::Wildcard(w) => write!(f, "matches wildcard {:?}", w.source),
            TextMatch::Regex(r) => write!(f, "matches regex {:?}", r.source()),
        }
    }
}

/// A list of texts, kept sorted case-insensitively so that membership is a
/// binary search without lower-casing the value.
#[derive(Debug, Clone)]
pub struct TextList {
    written: Vec<String>,
    sorted: Vec<String>,
}

impl TextList {
    /// A list of the given texts.
    pub fn new<I, S>(texts: I) -> TextList
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let written: Vec<String> = texts.into_iter().map(Into::into).collect();
        let mut sorted: Vec<String> = written.iter().map(|t| t.to_ascii_lowercase()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        TextList { written, sorted }
    }

    /// Whether `value` equals one of the texts.
    #[inline]
    pub fn contains(&self, value: &str) -> bool {
        self.sorted
            .binary_search_by(|probe| cmp_ignore_ascii_case(probe, value))
            .is_ok()
    }

    /// The texts as written.
    pub fn texts(&self) -> &[String] {
        &self.written
    }
}

impl fmt::Display for TextList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.written).finish()
    }
}

fn cmp_ignore_ascii_case(lower: &str, value: &str) -> Ordering {
    lower
        .bytes()
        .cmp(value.bytes().map(|b| b.to_ascii_lowercase()))
}

/// A shell-style wildcard: `*` matches any run of characters (dots
/// included), `?` exactly one character.
#[derive(Debug, Clone)]
pub struct Wildcard {
    source: String,
    lower: Vec<u8>,
    shape: Shape,
}

/// The common shapes get a direct comparison instead of the general
/// matcher: `*.example.com` is a suffix test, `mx*` a prefix test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Literal,
    Suffix,
    Prefix,
    General,
}

impl Wildcard {
    /// Compiles a wildcard; the empty pattern is refused because it can only
    /// match an empty value, which is never what was meant.
    pub fn new(pattern: &str) -> Result<Wildcard, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::EmptyWildcard);
        }
        let lower = pattern.to_ascii_lowercase().into_bytes();
        let wild = |b: &u8| *b == b'*' || *b == b'?';
        let inner = |s: &[u8]| !s.iter().any(wild);
        let shape = match lower.as_slice() {
            l if inner(l) => Shape::Literal,
            [b'*', rest @ ..] if inner(rest) => Shape::Suffix,
            [rest @ .., b'*'] if inner(rest) => Shape::Prefix,
            _ => Shape::General,
        };
        Ok(Wildcard {
            source: pattern.to_owned(),
            lower,
            shape,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `value` matches. Iterative with a single backtrack point, so
    /// linear in practice and never exponential.
    pub fn matches(&self, value: &str) -> bool {
        let pat = &self.lower[..];
        let val = value.as_bytes();
        match self.shape {
            Shape::Literal => return val.eq_ignore_ascii_case(pat),
            Shape::Suffix => {
                let lit = &pat[1..];
                return val.len() >= lit.len()
                    && val[val.len() - lit.len()..].eq_ignore_ascii_case(lit);
            }
            Shape::Prefix => {
                let lit = &pat[..pat.len() - 1];
                return val.len() >= lit.len() && val[..lit.len()].eq_ignore_ascii_case(lit);
            }
            Shape::General => {}
        }
        let (mut p, mut v) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while v < val.len() {
            if p < pat.len() && (pat[p] == b'?' || pat[p] == val[v].to_ascii_lowercase()) {
                p += 1;
                v += 1;
            } else if p < pat.len() && pat[p] == b'*' {
                star = Some((p, v));
                p += 1;
            } else if let Some((sp, sv)) = star {
                p = sp + 1;
                v = sv + 1;
                star = Some((sp, sv + 1));
            } else {
                return false;
            }
        }
        pat[p..].iter().all(|&b| b == b'*')
    }
}

/// A compiled, case-insensitive regular expression.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`; the size limit keeps a hostile or careless rule
    /// file from making the engine slow or large.
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        regex::RegexBuilder::new(source)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map(|regex| Pattern { regex })
            // The regex crate's message spans lines (pattern, caret, error);
            // rule errors are one line so they read well in logs.
            .map_err(|e| {
                let msg = e.to_string();
                let parts: Vec<&str> = msg
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                PatternError::Regex(parts.join(" "))
            })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether the expression matches somewhere in `value`.
    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_and_in_ignore_ascii_case() {
        assert!(TextMatch::is("MyDomain.com").matches("mydomain.COM"));
        assert!(!TextMatch::is("mydomain.com").matches("mydomain.com.evil"));
        assert!(TextMatch::is_not("a").matches("b"));
        assert!(!TextMatch::is_not("a").matches("A"));
        let list = TextMatch::one_of(["b.org", "A.com", "c.net"]);
        assert!(list.matches("a.COM"));
        assert!(list.matches("c.net"));
        assert!(!list.matches("d.net"));
        assert!(!list.matches(""));
    }

    #[test]
    fn wildcard_semantics() {
        let w = Wildcard::new("*.example.com").unwrap();
        assert!(w.matches("mx.example.com"));
        assert!(w.matches("a.b.EXAMPLE.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("mx.example.com.evil"));
        let q = Wildcard::new("mx?.example.*").unwrap();
        assert!(q.matches("mx1.example.org"));
        assert!(!q.matches("mx.example.org"));
        assert!(Wildcard::new("*").unwrap().matches(""));
        assert!(Wildcard::new("MX*").unwrap().matches("mx1.example"));
        assert!(!Wildcard::new("mx*").unwrap().matches("m"));
        assert!(
            Wildcard::new("Exact.example")
                .unwrap()
                .matches("exact.EXAMPLE")
        );
        assert!(Wildcard::new("**.b").unwrap().matches("a.b"));
        assert!(Wildcard::new("a*b*c").unwrap().matches("aXbYbZc"));
        assert!(!Wildcard::new("a*b*c").unwrap().matches("aXbYbZ"));
        assert_eq!(Wildcard::new("").unwrap_err(), PatternError::EmptyWildcard);
    }

    #[test]
    fn regex_is_case_insensitive_and_validated() {
        let r = TextMatch::regex(r"^mx\d+\.example\.com$").unwrap();
        assert!(r.matches("MX12.example.com"));
        assert!(!r.matches("mx.example.com"));
        assert!(matches!(
            TextMatch::regex("(unclosed").unwrap_err(),
            PatternError::Regex(_)
        ));
    }

    #[test]
    fn display_says_what_is_tested() {
        assert_eq!(TextMatch::is("a").to_string(), r#"is "a""#);
        assert_eq!(
            TextMatch::one_of(["x", "y"]).to_string(),
            r#"in ["x", "y"]"#
        );
        assert_eq!(
            TextMatch::wildcard("*.a").unwrap().to_string(),
            r#"matches wildcard "*.a""#
        );
    }
}
