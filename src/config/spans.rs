//! Field paths and their lines, for the errors of `file -> validate -> Config`.
//!
//! An error names its field path (`routes[3].cluster`, 0-based indices) and
//! the line in the file. Lines come from a second, span-preserving view of
//! the same text ([`toml::de::DeTable`]): the path is walked down that tree
//! and the span of the deepest node found gives the line. A path to a key
//! that is absent (a missing action, say) therefore points at the enclosing
//! table, e.g. the `[[routes]]` header.

use std::fmt;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// 1-based line of byte `offset` in `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// A field path, rendered as `routes[3].match.host`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath(pub(super) Vec<Segment>);

impl FieldPath {
    pub(super) fn root(key: &str) -> FieldPath {
        FieldPath(vec![Segment::Key(key.to_owned())])
    }

    pub(super) fn key(&self, key: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    pub(super) fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> FieldPath {
        use serde_path_to_error::Segment as S;
        FieldPath(
            path.iter()
                .map(|s| match s {
                    S::Seq { index } => Segment::Index(*index),
                    S::Map { key } => Segment::Key(key.clone()),
                    S::Enum { variant } => Segment::Key(variant.clone()),
                    S::Unknown => Segment::Key("?".to_owned()),
                })
                .collect(),
        )
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The span-preserving view of the text, for turning field paths into lines.
#[derive(Clone, Copy)]
pub(super) struct Spans<'a> {
    text: &'a str,
    root: &'a DeTable<'a>,
}

impl<'a> Spans<'a> {
    pub(super) fn new(text: &'a str, root: &'a DeTable<'a>) -> Spans<'a> {
        Spans { text, root }
    }

    /// Line of the deepest node of `path` present in the file; `None` when
    /// not even the first key is there.
    pub(super) fn line_of(&self, path: &FieldPath) -> Option<usize> {
        let mut table = Some(self.root);
        let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
        let mut span = None;
        for seg in &path.0 {
            let next = match seg {
                Segment::Key(k) => table.and_then(|t| t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)),
                Segment::Index(i) => array.and_then(|a| a.get(*i)),
            };
            let Some(next) = next else { break };
            span = Some(next.span());
            table = next.get_ref().as_table();
            array = next.get_ref().as_array().map(|a| &a[..]);
        }
        span.map(|s| line_at(self.text, s.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_render() {
        let p = FieldPath::root("routes").index(3).key("match").key("host");
        assert_eq!(p.to_string(), "routes[3].match.host");
        let p = FieldPath::root("clusters").index(1).key("endpoints").index(2);
        assert_eq!(p.to_string(), "clusters[1].endpoints[2]");
        let p = FieldPath::root("routes").index(0).key("headers").key("a b");
        assert_eq!(p.to_string(), "routes[0].headers.\"a b\"");
    }

    #[test]
    fn lines_from_paths() {
        let text = "[server]\nshards = 2\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\n\
                    name = \"b\"\nmatch = { host = \"x\" }\n\n[[clusters]]\nname = \"c\"\n\
                    endpoints = [\n  \"127.0.0.1:1\",\n  \"127.0.0.1:2\",\n]\n";
        let doc = DeTable::parse(text).unwrap();
        let spans = Spans::new(text, doc.get_ref());
        let line = |p: FieldPath| spans.line_of(&p);
        let routes = FieldPath::root("routes");
        assert_eq!(line(FieldPath::root("server").key("shards")), Some(2));
        assert_eq!(line(routes.index(0)), Some(4));
        assert_eq!(line(routes.index(1).key("name")), Some(8));
        assert_eq!(line(routes.index(1).key("match").key("host")), Some(9));
        // Absent key: the enclosing table's line.
        assert_eq!(line(routes.index(1).key("cluster")), Some(7));
        let eps = FieldPath::root("clusters").index(0).key("endpoints");
        assert_eq!(line(eps.index(1)), Some(15));
        assert_eq!(line(FieldPath::root("listeners")), None);
        assert_eq!(line_at(text, 0), 1);
        assert_eq!(line_at(text, text.len() + 10), text.lines().count() + 1);
    }
}
