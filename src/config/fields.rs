//! Reading typed settings out of a YAML [`Node`] tree, collecting every problem as a
//! diagnostic that points at the offending key or value.
//!
//! A [`Fields`] is one YAML mapping checked against its allowed keys (unknown and duplicate
//! keys are reported with their line); its values are read by the typed getters of [`Reader`].

use std::sync::Arc;

use super::yaml::{locate, locate_or_parent, Node, Seg};
use super::{list_names, suggest};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::text::clip;

/// One value in the tree, with its path (for spans) and its dotted name (for messages).
#[derive(Debug, Clone)]
pub(crate) struct Val<'n> {
    pub node: &'n Node,
    pub path: Vec<Seg>,
    pub name: String,
}

/// A mapping whose keys were checked.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    pub path: Vec<Seg>,
    pub name: String,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<Val<'n>> {
        let (_, node) = self.entries.iter().find(|(k, _)| *k == key)?;
        let mut path = self.path.clone();
        path.push(Seg::val(key));
        let name = if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        };
        Some(Val { node, path, name })
    }

    /// Every entry, in file order (for free-form maps).
    pub fn all(&self) -> Vec<(&'n str, Val<'n>)> {
        self.entries
            .iter()
            .filter_map(|(k, _)| self.get(k).map(|v| (*k, v)))
            .collect()
    }
}

/// Collects diagnostics while reading one YAML file.
pub(crate) struct Reader<'a> {
    pub source: &'a Arc<SourceFile>,
    pub diags: Diags,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a Arc<SourceFile>) -> Reader<'a> {
        Reader {
            source,
            diags: Diags::new(),
        }
    }

    /// The span of the value at `path` (or its nearest ancestor).
    pub fn span(&self, path: &[Seg]) -> Span {
        locate_or_parent(self.source, path)
    }

    /// The span of the key that holds the value at `path`.
    pub fn key_span(&self, path: &[Seg]) -> Span {
        match path.split_last() {
            Some((Seg::Val(k, n), parent)) => {
                let mut p = parent.to_vec();
                p.push(Seg::Key(k.clone(), *n));
                locate(self.source, &p).unwrap_or_else(|| self.span(path))
            }
            _ => self.span(path),
        }
    }

    /// The value of a required key, or a diagnostic at the mapping's key (line 1 for the top level).
    pub fn required<'n>(&mut self, fields: &Fields<'n>, key: &str, what: &str) -> Option<Val<'n>> {
        let v = fields.get(key);
        if v.is_none() {
            let (span, place) = if fields.path.is_empty() {
                (self.source.line_span(1), "at the top level".to_string())
            } else {
                (self.key_span(&fields.path), format!("in `{}`", fields.name))
            };
            let msg = format!("missing key `{key}` {place}");
            let d = Diag::new("mcopt::config::missing_key", msg)
                .at(self.source, span, format!("`{key}` expected"))
                .help(format!("add `{key}:` with {what}"));
            self.diags.push(d);
        }
        v
    }

    /// `v` as JSON (integers stay integers); non-finite numbers and duplicate keys are refused.
    pub fn json(&mut self, v: &Val) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match v.node {
            Node::Null => J::Null,
            Node::Bool(b) => J::Bool(*b),
            Node::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(x), _) => J::from(x),
                (_, Ok(x)) => J::from(x),
                _ => J::from(*i as f64),
            },
            Node::Num(_) => J::from(self.f64(v)?),
            Node::Str(s) if super::yaml::is_out_of_range_number(s) => {
                let msg = format!(
                    "expected `{}` to be a finite number, found {}",
                    v.name,
                    v.node.describe()
                );
                self.error("mcopt::config::value", v, msg, "out of range", None);
                return None;
            }
            Node::Str(s) => J::String(s.clone()),
            Node::Seq(items) => J::Array(
                (0..items.len())
                    .map(|i| self.json(&v.item(i)))
                    .collect::<Option<_>>()?,
            ),
            Node::Map(_) => {
                let f = self.free_fields(v)?;
                let mut m = serde_json::Map::new();
                for (k, val) in f.all() {
                    m.insert(k.to_string(), self.json(&val)?);
                }
                J::Object(m)
            }
        })
    }

    /// Report a problem with the value `v`.
    pub fn error(
        &mut self,
        code: &'static str,
        v: &Val,
        message: String,
        label: &str,
        help: Option<String>,
    ) {
        let span = self.span(&v.path);
        let mut d = Diag::new(code, message).at(self.source, span, label);
        d.help = help;
        self.diags.push(d);
    }

    /// Check that `v` is a mapping with only `allowed` keys (a missing or null value is an empty mapping).
    pub fn fields<'n>(&mut self, v: Option<&Val<'n>>, allowed: &[&str]) -> Option<Fields<'n>> {
        let Some(v) = v else {
            return Some(Fields {
                path: Vec::new(),
                name: String::new(),
                entries: Vec::new(),
            });
        };
        let entries = match v.node {
            Node::Map(entries) => entries,
            Node::Null => {
                return Some(Fields {
                    path: v.path.clone(),
                    name: v.name.clone(),
                    entries: Vec::new(),
                })
            }
            other => {
                let what = if v.name.is_empty() {
                    "the file".to_string()
                } else {
                    format!("`{}`", v.name)
                };
                let msg = format!(
                    "expected {what} to be a mapping of settings, found {}",
                    other.describe()
                );
                let help = format!("allowed keys: {}", list_names(allowed));
                self.error("mcopt::config::type", v, msg, "not a mapping", Some(help));
                return None;
            }
        };
        let checked = self.check_keys(v, entries, Some(allowed));
        Some(Fields {
            path: v.path.clone(),
            name: v.name.clone(),
            entries: checked,
        })
    }

    /// Like [`Reader::fields`] for a free-form mapping (any string keys).
    pub fn free_fields<'n>(&mut self, v: &Val<'n>) -> Option<Fields<'n>> {
        match v.node {
            Node::Map(entries) => {
                let checked = self.check_keys(v, entries, None);
                Some(Fields {
                    path: v.path.clone(),
                    name: v.name.clone(),
                    entries: checked,
                })
            }
            Node::Null => Some(Fields {
                path: v.path.clone(),
                name: v.name.clone(),
                entries: Vec::new(),
            }),
            other => {
                let msg = format!(
                    "expected `{}` to be a mapping, found {}",
                    v.name,
                    other.describe()
                );
                self.error("mcopt::config::type", v, msg, "not a mapping", None);
                None
            }
        }
    }

    /// Keep the string keys; report non-string, duplicate and (with `allowed`) unknown keys.
    fn check_keys<'n>(
        &mut self,
        v: &Val,
        entries: &'n [(Node, Node)],
        allowed: Option<&[&str]>,
    ) -> Vec<(&'n str, &'n Node)> {
        let mut out: Vec<(&'n str, &'n Node)> = Vec::new();
        for (key, value) in entries {
            let Node::Str(k) = key else {
                let msg = format!("expected a setting name as key, found {}", key.describe());
                self.error("mcopt::config::bad_key", v, msg, "in this mapping", None);
                continue;
            };
            let nth = out.iter().filter(|(seen, _)| *seen == k.as_str()).count();
            if nth > 0 {
                self.key_error(
                    v,
                    k,
                    nth,
                    "mcopt::config::duplicate_key",
                    format!("`{}` is given more than once", dotted(&v.name, k)),
                    None,
                );
                continue;
            }
            if let Some(allowed) = allowed {
                if !allowed.contains(&k.as_str()) {
                    let help = format!(
                        "{}allowed keys {}: {}",
                        suggest(k, allowed),
                        where_(&v.name),
                        list_names(allowed)
                    );
                    let msg = format!("unknown key `{}`", dotted(&v.name, k));
                    self.key_error(v, k, 0, "mcopt::config::unknown_key", msg, Some(help));
                    continue;
                }
            }
            out.push((k.as_str(), value));
        }
        out
    }

    fn key_error(
        &mut self,
        v: &Val,
        key: &str,
        nth: usize,
        code: &'static str,
        msg: String,
        help: Option<String>,
    ) {
        let mut path = v.path.clone();
        path.push(Seg::Key(key.to_string(), nth));
        let span = locate(self.source, &path).unwrap_or_else(|| self.span(&v.path));
        let label = if nth > 0 {
            "given again here"
        } else {
            "unknown key"
        };
        let mut d = Diag::new(code, msg).at(self.source, span, label);
        d.help = help;
        self.diags.push(d);
    }

    /// A number (integers accepted), finite.
    pub fn f64(&mut self, v: &Val) -> Option<f64> {
        match v.node {
            Node::Num(x) if x.is_finite() => Some(*x),
            Node::Int(i) => Some(*i as f64),
            other => {
                let msg = format!(
                    "expected `{}` to be a finite number, found {}",
                    v.name,
                    other.describe()
                );
                self.error("mcopt::config::type", v, msg, "not a finite number", None);
                None
            }
        }
    }

    /// A number that satisfies `ok`, else the error `need` ("a positive number").
    pub fn f64_where(&mut self, v: &Val, need: &str, ok: impl Fn(f64) -> bool) -> Option<f64> {
        let x = self.f64(v)?;
        if ok(x) {
            return Some(x);
        }
        // An integer is shown as written, not rounded to a double (18446744073709551615).
        let found = match v.node {
            Node::Int(i) => i.to_string(),
            _ => x.to_string(),
        };
        let msg = format!("expected `{}` to be {need}, found {found}", v.name);
        self.error("mcopt::config::value", v, msg, "out of range", None);
        None
    }

    /// A non-negative integer.
    pub fn u64(&mut self, v: &Val) -> Option<u64> {
        match v.node {
            Node::Int(i) if (0..=i128::from(u64::MAX)).contains(i) => Some(*i as u64),
            other => {
                let msg = format!(
                    "expected `{}` to be a non-negative integer, found {}",
                    v.name,
                    other.describe()
                );
                self.error(
                    "mcopt::config::type",
                    v,
                    msg,
                    "not a non-negative integer",
                    None,
                );
                None
            }
        }
    }

    /// A non-negative integer that fits a usize.
    pub fn usize(&mut self, v: &Val) -> Option<usize> {
        self.u64(v).and_then(|n| usize::try_from(n).ok())
    }

    /// A text (a YAML string; numbers and booleans are not converted).
    pub fn string(&mut self, v: &Val) -> Option<String> {
        match v.node {
            Node::Str(s) => Some(s.clone()),
            other => {
                let msg = format!(
                    "expected `{}` to be text, found {}",
                    v.name,
                    other.describe()
                );
                self.error("mcopt::config::type", v, msg, "not text", None);
                None
            }
        }
    }

    /// A boolean.
    pub fn bool(&mut self, v: &Val) -> Option<bool> {
        match v.node {
            Node::Bool(b) => Some(*b),
            other => {
                let msg = format!(
                    "expected `{}` to be `true` or `false`, found {}",
                    v.name,
                    other.describe()
                );
                self.error("mcopt::config::type", v, msg, "not a boolean", None);
                None
            }
        }
    }

    /// One of `choices` (as text).
    pub fn choice(&mut self, v: &Val, choices: &[&str]) -> Option<String> {
        let s = self.string(v)?;
        if choices.contains(&s.as_str()) {
            return Some(s);
        }
        let msg = format!(
            "expected `{}` to be one of {}, found `{}`",
            v.name,
            list_names(choices),
            clip(&s)
        );
        let help = format!(
            "{}the choices are {}",
            suggest(&s, choices),
            list_names(choices)
        );
        self.error("mcopt::config::value", v, msg, "unknown choice", Some(help));
        None
    }

    /// A list of texts.
    pub fn strings(&mut self, v: &Val) -> Option<Vec<String>> {
        let Node::Seq(items) = v.node else {
            let msg = format!(
                "expected `{}` to be a list, found {}",
                v.name,
                v.node.describe()
            );
            self.error("mcopt::config::type", v, msg, "not a list", None);
            return None;
        };
        let vals: Vec<Option<String>> = (0..items.len()).map(|i| self.string(&v.item(i))).collect();
        vals.into_iter().collect()
    }
}

impl<'n> Val<'n> {
    /// The i-th entry of a sequence value (the caller checked it is one).
    pub fn item(&self, i: usize) -> Val<'n> {
        let node = match self.node {
            Node::Seq(items) => &items[i],
            other => other,
        };
        let mut path = self.path.clone();
        path.push(Seg::Idx(i));
        Val {
            node,
            path,
            name: format!("{}[{i}]", self.name),
        }
    }

    /// The top of a document.
    pub fn root(node: &'n Node) -> Val<'n> {
        Val {
            node,
            path: Vec::new(),
            name: String::new(),
        }
    }
}

fn dotted(parent: &str, key: &str) -> String {
    let key = clip(key);
    if parent.is_empty() {
        key.into_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn where_(name: &str) -> String {
    if name.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{name}`")
    }
}
