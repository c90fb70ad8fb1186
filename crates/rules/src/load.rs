//! Loading TOML files with errors that name the file, line, rule and field.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::RuleSetConfig;
use crate::error::RuleErrorKind;
use crate::model::RuleSet;

/// Why a file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadError {
    /// The file name given to the loader.
    pub file: String,
    /// One-based line of the offending text.
    pub line: u32,
    /// One-based column (in characters).
    pub column: u32,
    /// What the file holds items of: `"rule"` or `"case"`.
    pub item: &'static str,
    /// Zero-based index of the `[[rule]]` (or `[[case]]`) concerned.
    pub index: Option<usize>,
    /// Its name, when it has one.
    pub name: Option<String>,
    /// The field inside it, as a path like `conditions[1].recipient_domain`.
    pub field: Option<String>,
    /// What is wrong (boxed: errors travel up `Result`s on the cold path and
    /// should not make every `Ok` as large as a rule error).
    pub kind: Box<LoadErrorKind>,
}

/// What is wrong with a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// Not valid TOML.
    Syntax(String),
    /// Valid TOML of the wrong shape: an unknown key, a missing field, a
    /// wrong type.
    Shape(String),
    /// A rule that does not validate.
    Rule(RuleErrorKind),
    /// A policy-test case that does not validate.
    Case(String),
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadErrorKind::Syntax(m) | LoadErrorKind::Shape(m) | LoadErrorKind::Case(m) => {
                f.write_str(m)
            }
            LoadErrorKind::Rule(k) => k.fmt(f),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(i) = self.index {
            write!(f, "{} #{}", self.item, i + 1)?;
            if let Some(n) = &self.name {
                write!(f, " {n:?}")?;
            }
            f.write_str(", ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        self.kind.fmt(f)
    }
}

impl std::error::Error for LoadError {}

impl RuleSet {
    /// Loads a rules file: `[[rule]]` tables in evaluation order. `file_name`
    /// is only used in error messages.
    ///
    /// ```
    /// let err = postern_rules::RuleSet::from_toml_str(
    ///     "[[rule]]\nname = \"r\"\nconditions = [{ sender = { regex = \"(\" } }]\nactions = [{ stop = true }]\n",
    ///     "rules.toml",
    /// )
    /// .unwrap_err();
    /// assert_eq!(err.line, 3);
    /// assert_eq!(err.field.as_deref(), Some("conditions[0].sender.regex"));
    /// assert!(err.to_string().starts_with("rules.toml:3:"));
    /// ```
    pub fn from_toml_str(src: &str, file_name: &str) -> Result<RuleSet, LoadError> {
        let doc = Document::parse(src, file_name)?;
        let config: RuleSetConfig = doc.deserialize("rule")?;
        config.compile().map_err(|e| {
            let field = if e.field.is_empty() {
                None
            } else {
                Some(e.field.clone())
            };
            let mut path = Vec::new();
            if let Some(i) = e.index {
                path.push(Seg::Key("rule".into()));
                path.push(Seg::Index(i));
            }
            path.extend(parse_path(&e.field));
            doc.error(&path, None, LoadErrorKind::Rule(e.kind))
                .with_item(e.index, Some(e.rule), field)
        })
    }
}

/// A path segment into a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `conditions[1].recipient_domain.in[0]` into segments.
fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            out.push(Seg::Key(rest[..b].to_owned()));
            rest = &rest[b..];
            while let Some(r) = rest.strip_prefix('[') {
                let Some((n, after)) = r.split_once(']') else {
                    break;
                };
                if let Ok(n) = n.parse() {
                    out.push(Seg::Index(n));
                }
                rest = after;
            }
        } else {
            out.push(Seg::Key(rest.to_owned()));
        }
    }
    out
}

fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A parsed TOML source kept with its spans, to turn paths into lines.
pub(crate) struct Document<'s> {
    src: &'s str,
    file: &'s str,
    root: Spanned<DeTable<'s>>,
}

impl<'s> Document<'s> {
    pub(crate) fn parse(src: &'s str, file: &'s str) -> Result<Document<'s>, LoadError> {
        match DeTable::parse(src) {
            Ok(root) => Ok(Document { src, file, root }),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let (line, column) = line_col(src, span.start);
                Err(LoadError {
                    file: file.to_owned(),
                    line,
                    column,
                    item: "rule",
                    index: None,
                    name: None,
                    field: None,
                    kind: Box::new(LoadErrorKind::Syntax(e.message().trim().to_owned())),
                })
            }
        }
    }

    /// Deserialises the document; on error, names the `[[item_key]]` entry
    /// and the field inside it.
    pub(crate) fn deserialize<T: DeserializeOwned>(
        &self,
        item_key: &'static str,
    ) -> Result<T, LoadError> {
        let de = toml::Deserializer::parse(self.src).map_err(|e| self.syntax(e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path: Vec<Seg> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        Some(Seg::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let inner = e.into_inner();
            let mut message = inner.message().trim().to_owned();
            if message.starts_with("wanted exactly 1 element") {
                message
                    .push_str(" (each condition and each action is its own { key = value } table)");
            }
            let kind = LoadErrorKind::Shape(message);
            let (index, field) = match path.as_slice() {
                [Seg::Key(k), Seg::Index(i), rest @ ..] if k == item_key => {
                    (Some(*i), (!rest.is_empty()).then(|| render_path(rest)))
                }
                [] => (None, None),
                all => (None, Some(render_path(all))),
            };
            let name = index.and_then(|i| self.item_name(item_key, i));
            let mut err = self
                .error(&path, inner.span(), kind)
                .with_item(index, name, field);
            err.item = item_key;
            err
        })
    }

    fn syntax(&self, e: toml::de::Error) -> LoadError {
        let (line, column) = line_col(self.src, e.span().map_or(0, |s| s.start));
        LoadError {
            file: self.file.to_owned(),
            line,
            column,
            item: "rule",
            index: None,
            name: None,
            field: None,
            kind: Box::new(LoadErrorKind::Syntax(e.message().trim().to_owned())),
        }
    }

    /// The `name` of `[[item_key]]` number `index`.
    pub(crate) fn item_name(&self, item_key: &str, index: usize) -> Option<String> {
        let item = self.lookup(&[
            Seg::Key(item_key.into()),
            Seg::Index(index),
            Seg::Key("name".into()),
        ])?;
        item.get_ref().as_str().map(str::to_owned)
    }

    /// The value at `path`, or the deepest one found on the way.
    fn lookup(&self, path: &[Seg]) -> Option<&Spanned<DeValue<'s>>> {
        lookup(self.root.get_ref(), path)
    }

    /// An error at the span of `path` (or `span`, when the deserializer gave
    /// one).
    pub(crate) fn error(
        &self,
        path: &[Seg],
        span: Option<Range<usize>>,
        kind: LoadErrorKind,
    ) -> LoadError {
        let start = span
            .map(|s| s.start)
            .or_else(|| self.lookup(path).map(|v| v.span().start))
            .unwrap_or(0);
        let (line, column) = line_col(self.src, start);
        LoadError {
            file: self.file.to_owned(),
            line,
            column,
            item: "rule",
            index: None,
            name: None,
            field: None,
            kind: Box::new(kind),
        }
    }
}

impl LoadError {
    pub(crate) fn with_item(
        mut self,
        index: Option<usize>,
        name: Option<String>,
        field: Option<String>,
    ) -> LoadError {
        self.index = index;
        self.name = name;
        self.field = field;
        self
    }
}

/// The value at `path` in `root`, or the deepest one found on the way.
fn lookup<'a, 's>(root: &'a DeTable<'s>, path: &[Seg]) -> Option<&'a Spanned<DeValue<'s>>> {
    let mut found = None;
    let mut table: Option<&DeTable<'s>> = Some(root);
    let mut value: Option<&Spanned<DeValue<'s>>> = None;
    for seg in path {
        let next = match (seg, table, value) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Key(k), None, Some(v)) => v.get_ref().get(k.as_str()),
            (Seg::Index(i), _, Some(v)) => v.get_ref().get(*i),
            _ => None,
        };
        match next {
            Some(v) => {
                found = Some(v);
                value = Some(v);
                table = None;
            }
            None => break,
        }
    }
    found
}

/// A TOML text kept with its spans, for configuration files that hold
/// rule tables beside their own (the MTA's): it turns a field path into
/// the place to point an error at.
///
/// ```
/// use postern_rules::TomlSource;
///
/// let src = "[[rule]]\nname = \"r\"\nconditions = [{ tls = true }]\n";
/// let toml = TomlSource::parse(src).expect("valid TOML");
/// let span = toml.span("rule[0].conditions[0].tls").expect("found");
/// assert_eq!(TomlSource::line_col(src, span.start), (3, 23)); // the value `true`
/// assert_eq!(toml.item_name("rule", 0).as_deref(), Some("r"));
/// ```
pub struct TomlSource<'s> {
    root: Spanned<DeTable<'s>>,
}

impl fmt::Debug for TomlSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TomlSource").finish_non_exhaustive()
    }
}

impl<'s> TomlSource<'s> {
    /// Parses `src`; `None` when it is not TOML.
    pub fn parse(src: &'s str) -> Option<TomlSource<'s>> {
        DeTable::parse(src).ok().map(|root| TomlSource { root })
    }

    /// The span of the value at `path` (`rule[2].conditions[0].helo`), or
    /// of the deepest part of the path that exists.
    pub fn span(&self, path: &str) -> Option<Range<usize>> {
        lookup(self.root.get_ref(), &parse_path(path)).map(Spanned::span)
    }

    /// The `name` of the `[[key]]` table number `index`.
    pub fn item_name(&self, key: &str, index: usize) -> Option<String> {
        let path = [
            Seg::Key(key.into()),
            Seg::Index(index),
            Seg::Key("name".into()),
        ];
        let name = lookup(self.root.get_ref(), &path)?;
        name.get_ref().as_str().map(str::to_owned)
    }

    /// One-based line and column (in characters) of byte `offset` in `src`.
    pub fn line_col(src: &str, offset: usize) -> (u32, u32) {
        line_col(src, offset)
    }
}

fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (clamp(line), clamp(col))
}

/// Splits a serde path like `listener[1].mode` into the item
/// (`listener[1] "name"`, `rule #2 "name"`) and the field inside it,
/// for arrays of tables named in `keys` (`[[rule]]` items are numbered
/// from 1, as `rule #N`, others by index), for config errors that name
/// the item an operator wrote.
pub fn split_item(
    toml: Option<&TomlSource<'_>>,
    path: &str,
    keys: &[&str],
) -> (Option<String>, Option<String>) {
    if path.is_empty() || path == "." {
        return (None, None);
    }
    for &key in keys {
        if let Some(rest) = path.strip_prefix(key).and_then(|r| r.strip_prefix('['))
            && let Some((n, field)) = rest.split_once(']')
            && let Ok(i) = n.parse::<usize>()
        {
            let name = toml.and_then(|t| t.item_name(key, i));
            let label = if key == "rule" {
                format!("rule #{}", i + 1)
            } else {
                format!("{key}[{i}]")
            };
            let item = match name {
                Some(n) => format!("{label} {n:?}"),
                None => label,
            };
            let field = field.trim_start_matches('.');
            return (Some(item), (!field.is_empty()).then(|| field.to_owned()));
        }
    }
    (None, Some(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("conditions[1].recipient_domain.in[0]"),
            vec![
                Seg::Key("conditions".into()),
                Seg::Index(1),
                Seg::Key("recipient_domain".into()),
                Seg::Key("in".into()),
                Seg::Index(0)
            ]
        );
        assert_eq!(render_path(&parse_path("a[2].b")), "a[2].b");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
