//! YAML plumbing for the config module: a plain value tree, serde_norway errors turned into
//! diagnostics, and "probes" that find the span of a node by re-reading the text.
//!
//! serde_norway gives positions only through errors: when a `Deserialize` impl fails, the
//! error carries the mark of the event being read. A probe walks the document down a
//! [`Seg`] path and fails on purpose at the node it wants, so the error's location is the
//! node's start. That costs one re-parse per located node, so it is used only for the
//! (few) nodes that diagnostics point at.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::diag::{Diag, SourceFile, Span};
use crate::text::plural;

/// A YAML value, in document order, without positions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    /// An integer as written (YAML `3`, `-7`, `0x1f`).
    Int(i128),
    /// A floating-point number as written (YAML `1.5`, `1e-3`, `.nan`).
    Num(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A short description for "expected ..., found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (null)".to_string(),
            Node::Bool(b) => format!("the boolean `{b}`"),
            Node::Int(i) => format!("the integer {i}"),
            Node::Num(x) => format!("the number {x}"),
            Node::Str(s) if is_out_of_range_number(s) => {
                format!("{}, out of range (not a finite number)", shorten(s))
            }
            Node::Str(s) => format!("the text `{}`", shorten(s)),
            Node::Seq(items) => format!("a list of {}", plural(items.len(), "entry", "entries")),
            Node::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A plain scalar written as a number too large for a double (`1e309`, `-2e400`): YAML
/// resolves it as text, so it is named for what the user wrote, not as "a string".
pub(crate) fn is_out_of_range_number(s: &str) -> bool {
    let t = s.trim();
    t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E' | b'_'))
        && t.replace('_', "")
            .parse::<f64>()
            .is_ok_and(f64::is_infinite)
}

fn shorten(s: &str) -> String {
    crate::text::clip_to(s, 24).into_owned()
}

/// Parse YAML text into a [`Node`]; an empty document is `Node::Null`.
pub(crate) fn parse_node(source: &Arc<SourceFile>, code: &'static str) -> Result<Node, Diag> {
    if source.text.trim().is_empty() {
        return Ok(Node::Null);
    }
    check_depth(source)?;
    serde_norway::from_str::<Node>(&source.text).map_err(|e| serde_error(source, &e, code))
}

/// The deepest nesting of lists and mappings a YAML file may have (documented in
/// `docs/run-files.md`); point and run files need four or five levels.
pub const MAX_YAML_DEPTH: usize = 64;

/// Refuse nesting deeper than [`MAX_YAML_DEPTH`] before parsing, in one linear pass: the
/// parser's cost grows faster than linearly with depth. The depth is estimated from above:
/// open flow brackets, plus the block indentation levels, plus `- ` entries that open on the
/// same line.
fn check_depth(source: &Arc<SourceFile>) -> Result<(), Diag> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut offset = 0;
    for line in source.text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start_matches(' ').len();
        let rest = &body[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        let mut dashes = 0;
        let mut r = rest;
        while let Some(tail) = r.strip_prefix("- ").or_else(|| (r == "-").then_some("")) {
            dashes += 1;
            r = tail.trim_start_matches(' ');
        }
        let base = indents.len() + dashes;
        let crossed = flow_crossing(body, &mut flow, base);
        if crossed.is_some() || base + flow > MAX_YAML_DEPTH {
            let at = start + crossed.unwrap_or(indent);
            return Err(Diag::new(
                "mcopt::config::too_deep",
                format!("lists and mappings nest more than {MAX_YAML_DEPTH} levels deep"),
            )
            .at(source, Span::new(at, at), "nesting limit crossed here")
            .help(
                "point and run files need only a few levels; the limit is in docs/run-files.md",
            ));
        }
    }
    Ok(())
}

/// Track open flow brackets (`[`, `{`) outside quotes and comments through one line; returns
/// the byte where `base` plus the open brackets first exceeds [`MAX_YAML_DEPTH`], if it does.
fn flow_crossing(line: &str, flow: &mut usize, base: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') if i == 0 || !bytes[i - 1].is_ascii_alphanumeric() => {
                quote = Some(b)
            }
            (None, b'#') if i == 0 || bytes[i - 1] == b' ' => break,
            (None, b'[' | b'{') => {
                *flow += 1;
                if base + *flow > MAX_YAML_DEPTH {
                    return Some(i);
                }
            }
            (None, b']' | b'}') => *flow = flow.saturating_sub(1),
            _ => {}
        }
    }
    None
}

impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v as i128))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v as i128))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Int(v as i128))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Num(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Node::Map(entries))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        // A tagged value (`!tag x`): keep the value, drop the tag.
        let (tag, variant) = data.variant::<String>()?;
        let value = de::VariantAccess::newtype_variant::<Node>(variant)?;
        Ok(Node::Map(vec![(Node::Str(format!("!{tag}")), value)]))
    }
}

/// Turn a serde_norway error into a diagnostic pointing at its location (or the file start).
pub(crate) fn serde_error(
    source: &Arc<SourceFile>,
    e: &serde_norway::Error,
    code: &'static str,
) -> Diag {
    let message = strip_positions(&e.to_string());
    let span = match e.location() {
        Some(loc) => token_span(
            source,
            offset_of(source, loc.index(), loc.line(), loc.column()),
        ),
        None => Span::new(0, 0),
    };
    Diag::new(code, lowercase_first(&message)).at(source, span, "here")
}

/// The message without its " at line L column C" parts (the span shows the place).
fn strip_positions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let skip = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ' ' || "column".contains(c)))
            .unwrap_or(tail.len());
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// A byte offset from a libyaml mark: its byte index if that is a valid position, else line/column.
fn offset_of(source: &SourceFile, index: usize, line: usize, column: usize) -> usize {
    if index <= source.text.len() && source.text.is_char_boundary(index) {
        return index;
    }
    let start = source.line_span(line).start;
    let rest = &source.text[start..];
    start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

pub(crate) fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() && !chars.clone().next().is_some_and(char::is_uppercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_string(),
    }
}

/// The span of the YAML token starting at `start`: a bracketed flow collection, a quoted
/// scalar, a block-sequence line, or a plain scalar up to the next separator.
pub(crate) fn token_span(source: &SourceFile, start: usize) -> Span {
    let text = &source.text;
    let start = start.min(text.len());
    let bytes = &text.as_bytes()[start..];
    let len = match bytes.first() {
        Some(b'[') | Some(b'{') => flow_len(bytes),
        Some(q @ (b'"' | b'\'')) => quoted_len(bytes, *q),
        Some(b'-') if matches!(bytes.get(1), Some(b' ' | b'\n' | b'\r') | None) => line_len(bytes),
        _ => plain_len(bytes),
    };
    Span::new(start, start + len)
}

fn line_len(bytes: &[u8]) -> usize {
    let n = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    trim_end(bytes, n)
}

fn trim_end(bytes: &[u8], mut n: usize) -> usize {
    while n > 0 && matches!(bytes[n - 1], b' ' | b'\t' | b'\r') {
        n -= 1;
    }
    n
}

fn flow_len(bytes: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[' | b'{') => depth += 1,
            (None, b']' | b'}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    line_len(bytes)
}

fn quoted_len(bytes: &[u8], q: u8) -> usize {
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
        } else if b == b'\\' && q == b'"' {
            escaped = true;
        } else if b == q {
            return i + 1;
        } else if b == b'\n' {
            break;
        }
    }
    line_len(bytes)
}

fn plain_len(bytes: &[u8]) -> usize {
    let mut n = 0;
    while n < bytes.len() {
        let b = bytes[n];
        let next = bytes.get(n + 1).copied();
        let sep = matches!(b, b'\n' | b',' | b']' | b'}')
            || (b == b':' && matches!(next, Some(b' ' | b'\n' | b'\r' | b'\t') | None))
            || (b == b' ' && next == Some(b'#'));
        if sep {
            break;
        }
        n += 1;
    }
    trim_end(bytes, n)
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    /// The `nth` (0-based) key equal to this string in a mapping: the key itself. Last in a path.
    Key(String, usize),
    /// The value of the `nth` key equal to this string.
    Val(String, usize),
    /// The i-th entry of a sequence.
    Idx(usize),
}

impl Seg {
    pub(crate) fn val(name: &str) -> Seg {
        Seg::Val(name.to_string(), 0)
    }
    pub(crate) fn key(name: &str) -> Seg {
        Seg::Key(name.to_string(), 0)
    }
}

const PROBE: &str = "\u{0}mcopt-probe";

/// The span of the node at `path`, or `None` if the path does not exist in the document.
pub(crate) fn locate(source: &SourceFile, path: &[Seg]) -> Option<Span> {
    let mut de = serde_norway::Deserializer::from_str(&source.text);
    let first = de.next()?;
    match (Probe { path }).deserialize(first) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(PROBE) => {
            let loc = e.location()?;
            Some(token_span(
                source,
                offset_of(source, loc.index(), loc.line(), loc.column()),
            ))
        }
        Err(_) => None,
    }
}

/// The span of the node at `path`, else of its closest located ancestor, else the first line.
pub(crate) fn locate_or_parent(source: &SourceFile, path: &[Seg]) -> Span {
    for n in (0..=path.len()).rev() {
        if let Some(span) = locate(source, &path[..n]) {
            if n > 0 || !path.is_empty() || span.end > span.start {
                return span;
            }
        }
    }
    source.line_span(1)
}

/// The span of key `name` in the mapping at `path` (its line, if there is one), else of the mapping.
pub(crate) fn locate_key(source: &SourceFile, path: &[Seg], name: &str) -> Span {
    let mut p = path.to_vec();
    p.push(Seg::key(name));
    match locate(source, &p) {
        Some(span) => span,
        None => locate_or_parent(source, path),
    }
}

/// The spans of the keys of the block mapping at `path`, in document order, from one probe
/// (for `first_key`) and one scan of the lines below it: linear, where locating every key
/// would re-parse the document once per key. `None` when the mapping is not in plain block
/// style (its first key does not start a line); callers then locate keys one by one.
pub(crate) fn block_key_spans(
    source: &SourceFile,
    path: &[Seg],
    first_key: &str,
) -> Option<Vec<(String, Span)>> {
    let mut p = path.to_vec();
    p.push(Seg::key(first_key));
    let first = locate(source, &p)?;
    let text = &source.text;
    let line_start = text[..first.start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..first.start].bytes().all(|b| b == b' ') {
        return None;
    }
    let indent = first.start - line_start;
    let mut keys = Vec::new();
    let mut pos = line_start;
    for line in text[line_start..].split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let ind = body.len() - body.trim_start_matches(' ').len();
        let rest = &body[ind..];
        if rest.is_empty() || rest.starts_with('#') || ind > indent {
            continue;
        }
        if ind < indent || rest.starts_with('-') || rest.starts_with("...") {
            break;
        }
        let span = token_span(source, start + ind);
        let token = &text[span.start..span.end];
        let key = token
            .strip_prefix(['"', '\''])
            .and_then(|t| t.strip_suffix(['"', '\'']))
            .unwrap_or(token);
        keys.push((key.to_string(), span));
    }
    Some(keys)
}

struct Probe<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (Some(Seg::Idx(i)), rest) = split(self.path) else {
            return self.leaf();
        };
        for _ in 0..*i {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: rest })?;
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (name, nth, want_key, rest) = match split(self.path) {
            (Some(Seg::Key(n, k)), rest) => (n.as_str(), *k, true, rest),
            (Some(Seg::Val(n, k)), rest) => (n.as_str(), *k, false, rest),
            _ => return self.leaf(),
        };
        let mut seen = 0;
        while let Some(hit) = map.next_key_seed(KeyProbe {
            name,
            fail: want_key && seen == nth,
        })? {
            if hit && seen == nth {
                return map.next_value_seed(Probe { path: rest });
            }
            seen += usize::from(hit);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

impl Probe<'_> {
    fn leaf<E: de::Error>(self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(PROBE))
        } else {
            Ok(())
        }
    }
}

fn split(path: &[Seg]) -> (Option<&Seg>, &[Seg]) {
    match path.split_first() {
        Some((first, rest)) => (Some(first), rest),
        None => (None, path),
    }
}

/// Reads a mapping key; says whether it equals `name`, and fails there if `fail`.
#[derive(Clone, Copy)]
struct KeyProbe<'a> {
    name: &'a str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v == self.name)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(v.to_string() == self.name)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(v.to_string() == self.name)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(v.to_string() == self.name)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(self, hit: bool) -> Result<bool, E> {
        if hit && self.fail {
            Err(E::custom(PROBE))
        } else {
            Ok(hit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(src: &SourceFile, path: &[Seg]) -> Option<String> {
        locate(src, path).map(|s| src.text[s.start..s.end].to_string())
    }

    #[test]
    fn probes_find_keys_values_and_entries() {
        let src = SourceFile::new(
            "t.yaml",
            "a: 1\nb:\n  - [1, 2]\n  - [3, 4.5]\nc: {x: 7}\na: 2\n",
        );
        assert_eq!(snippet(&src, &[Seg::key("b")]).as_deref(), Some("b"));
        assert_eq!(snippet(&src, &[Seg::val("a")]).as_deref(), Some("1"));
        assert_eq!(
            snippet(&src, &[Seg::Val("a".into(), 1)]).as_deref(),
            Some("2")
        );
        assert_eq!(snippet(&src, &[Seg::Key("a".into(), 1)]), Some("a".into()));
        assert_eq!(
            src.line_of(locate(&src, &[Seg::Key("a".into(), 1)]).unwrap().start),
            6
        );
        assert_eq!(
            snippet(&src, &[Seg::val("b"), Seg::Idx(1)]).as_deref(),
            Some("[3, 4.5]")
        );
        let p = [Seg::val("b"), Seg::Idx(1), Seg::Idx(1)];
        assert_eq!(snippet(&src, &p).as_deref(), Some("4.5"));
        assert_eq!(
            snippet(&src, &[Seg::val("c"), Seg::val("x")]).as_deref(),
            Some("7")
        );
        assert_eq!(snippet(&src, &[Seg::val("zz")]), None);
        assert_eq!(snippet(&src, &[Seg::val("b"), Seg::Idx(5)]), None);
    }

    #[test]
    fn block_key_spans_agree_with_probes() {
        let src = SourceFile::new(
            "t.yaml",
            "solver:\n  name: gd\n  options:\n    lr: 0.1\n    # note\n    'momentum': 0.9\n    steps:\n      - 1\n    last: {a: 1}\nseed: 3\n",
        );
        let path = [Seg::val("solver"), Seg::val("options")];
        let keys = block_key_spans(&src, &path, "lr").unwrap_or_default();
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["lr", "momentum", "steps", "last"]);
        for (k, span) in &keys {
            let mut p = path.to_vec();
            p.push(Seg::key(k));
            assert_eq!(locate(&src, &p), Some(*span), "{k}");
        }
        let flow = SourceFile::new("f.yaml", "o: {a: 1, b: 2}\n");
        assert_eq!(block_key_spans(&flow, &[Seg::val("o")], "a"), None);
    }

    #[test]
    fn positions_are_stripped_from_messages() {
        let m = "did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 4";
        assert_eq!(
            strip_positions(m),
            "did not find expected ',' or ']', while parsing a flow sequence"
        );
        assert_eq!(strip_positions("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn nodes_keep_order_and_numbers() {
        let src = SourceFile::new("t.yaml", "z: 1\na: [1.5, -2, .nan]\n");
        let Node::Map(entries) = parse_node(&src, "t").unwrap() else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0, Node::Str("z".into()));
        let Node::Seq(items) = &entries[1].1 else {
            panic!("not a seq")
        };
        assert_eq!(items[1], Node::Int(-2));
        assert!(matches!(items[2], Node::Num(x) if x.is_nan()));
    }
}
