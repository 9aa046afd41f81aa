//! Text scanning before and around pest: statement splitting, the nesting limit, and a small
//! lexer that error messages use to name the token they point at.

use crate::diag::Span;

/// The statement keywords; a line starting with one always starts a new statement.
pub(super) const STATEMENT_KEYWORDS: [&str; 6] =
    ["param", "const", "let", "layer", "data", "minimize"];

/// All reserved words.
pub(super) const KEYWORDS: [&str; 11] = [
    "param", "const", "let", "layer", "data", "minimize", "real", "vec", "mat", "seq", "batch",
];

/// One statement's text: `start..end` into the source.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub start: usize,
    pub end: usize,
}

/// Split `text` into statements: at each newline outside brackets that does not follow an
/// operator, `,` or `=`, and at each newline followed by a statement keyword (so an unclosed
/// bracket or a dangling operator does not swallow the rest of the file). Chunks holding only
/// blanks and comments are dropped.
pub(super) fn split(text: &str) -> Vec<Chunk> {
    let b = text.as_bytes();
    let mut chunks = Vec::new();
    let (mut start, mut depth, mut content) = (0usize, 0usize, false);
    // The last byte that is not a blank or in a comment.
    let mut last = b'\n';
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'\n' if (depth == 0 && !continues(last)) || starts_statement(&text[i + 1..]) => {
                if content {
                    chunks.push(Chunk { start, end: i });
                }
                (start, depth, content, last) = (i + 1, 0, false, b'\n');
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        content = true;
        last = b[i];
        i += 1;
    }
    if content {
        chunks.push(Chunk {
            start,
            end: b.len(),
        });
    }
    chunks
}

/// Whether a line whose last token ends in `last` continues on the next line.
fn continues(last: u8) -> bool {
    matches!(last, b'+' | b'-' | b'*' | b'/' | b'^' | b',' | b'=')
}

/// Whether `rest` (the text after a newline) starts, after blanks, with a statement keyword.
fn starts_statement(rest: &str) -> bool {
    let rest = rest.trim_start_matches([' ', '\t', '\r']);
    let word_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
        .count();
    STATEMENT_KEYWORDS.contains(&&rest[..word_len])
}

/// What kind of token the lexer saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokKind {
    Ident,
    Number,
    /// Operators and punctuation, including the two-character `.*`.
    Punct,
    /// Any other character.
    Other,
}

/// A token of a chunk, with its span relative to the chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tok<'a> {
    pub kind: TokKind,
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
}

impl Tok<'_> {
    pub fn is_keyword(&self) -> bool {
        self.kind == TokKind::Ident && KEYWORDS.contains(&self.text)
    }
}

/// A lexer mirroring the grammar's tokens closely enough for messages and the nesting scan.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str, pos: usize) -> Lexer<'a> {
        Lexer { text, pos }
    }

    fn skip_blanks(&mut self) {
        let b = self.text.as_bytes();
        while self.pos < b.len() {
            match b[self.pos] {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => {
                    while self.pos < b.len() && b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        self.skip_blanks();
        let b = self.text.as_bytes();
        let start = self.pos;
        let first = *b.get(start)?;
        let (kind, end) = if first.is_ascii_alphabetic() || first == b'_' {
            let n = b[start..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (TokKind::Ident, start + n)
        } else if first.is_ascii_digit() {
            (TokKind::Number, number_end(b, start))
        } else if first == b'.' && b.get(start + 1) == Some(&b'*') {
            (TokKind::Punct, start + 2)
        } else if b"()[]+-*/^,=:.".contains(&first) {
            (TokKind::Punct, start + 1)
        } else {
            let len = self.text[start..].chars().next().map_or(1, char::len_utf8);
            (TokKind::Other, start + len)
        };
        self.pos = end;
        Some(Tok {
            kind,
            text: &self.text[start..end],
            start,
            end,
        })
    }
}

/// The end of the number starting at `start`, following the grammar's `number` rule.
fn number_end(b: &[u8], start: usize) -> usize {
    let digits = |i: usize| {
        b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut end = start + digits(start);
    if b.get(end) == Some(&b'.') && digits(end + 1) > 0 {
        end += 1 + digits(end + 1);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let n = digits(end + 1 + sign);
        if n > 0 {
            end += 1 + sign + n;
        }
    }
    end
}

/// Whether a `-` after `prev` is a unary minus.
fn unary_context(prev: Option<&Tok<'_>>) -> bool {
    match prev {
        None => true,
        Some(t) => match t.kind {
            TokKind::Punct => !matches!(t.text, ")" | "]"),
            TokKind::Ident => t.text == "minimize",
            _ => false,
        },
    }
}

/// Find where `chunk` nests deeper than `limit`, counting what makes the parser recurse: open
/// brackets, and at each bracket level the unary minuses and `^` since the last looser operator.
/// Returns the span (relative to the chunk) of the token that crosses the limit.
pub(super) fn nesting_violation(chunk: &str, limit: usize) -> Option<Span> {
    let mut saved: Vec<usize> = Vec::new();
    let (mut saved_sum, mut pending) = (0usize, 0usize);
    let mut prev: Option<Tok<'_>> = None;
    for tok in Lexer::new(chunk, 0) {
        let grows = match tok.text {
            "(" | "[" => {
                saved.push(pending);
                saved_sum += pending;
                pending = 0;
                true
            }
            ")" | "]" => {
                pending = saved.pop().unwrap_or(0);
                saved_sum -= pending;
                false
            }
            "-" if unary_context(prev.as_ref()) => {
                pending += 1;
                true
            }
            "^" => {
                pending += 1;
                true
            }
            "+" | "-" | "*" | "/" | ".*" | "," | "=" => {
                pending = 0;
                false
            }
            _ => false,
        };
        if grows && saved.len() + saved_sum + pending > limit {
            return Some(Span::new(tok.start, tok.end));
        }
        prev = Some(tok);
    }
    None
}

/// The brackets still open just before `pos` in `chunk`, innermost last, each with the token
/// before it (to tell `vec(` from a call or a group).
pub(super) fn open_brackets_before(chunk: &str, pos: usize) -> Vec<(Tok<'_>, Option<Tok<'_>>)> {
    let mut open = Vec::new();
    let mut prev = None;
    for tok in Lexer::new(chunk, 0).take_while(|t| t.start < pos) {
        match tok.text {
            "(" | "[" => open.push((tok, prev)),
            ")" | "]" => {
                open.pop();
            }
            _ => {}
        }
        prev = Some(tok);
    }
    open
}

/// The last token ending at or before `pos`.
pub(super) fn token_before(chunk: &str, pos: usize) -> Option<Tok<'_>> {
    Lexer::new(chunk, 0).take_while(|t| t.end <= pos).last()
}

/// The first token at or after `pos`, skipping blanks and comments.
pub(super) fn token_at(chunk: &str, pos: usize) -> Option<Tok<'_>> {
    Lexer::new(chunk, pos.min(chunk.len())).next()
}
