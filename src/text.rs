//! Small text helpers for messages, one copy each: plurals, clipping of echoed tokens, and
//! nearest-name suggestions ("did you mean `tanh`?").

use std::borrow::Cow;

/// `1 row`, `3 rows`; `1 entry`, `2 entries` (give both forms).
pub fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The most characters of a token (a name, a number, a CSV field) a message echoes.
pub const ECHO_CHARS: usize = 48;

/// `s` as echoed in a message: at most [`ECHO_CHARS`] characters; a longer token keeps its
/// head and says how many characters were left out.
pub fn clip(s: &str) -> Cow<'_, str> {
    clip_to(s, ECHO_CHARS)
}

/// [`clip`] with an explicit limit (in characters).
pub fn clip_to(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => {
            let more = s[cut..].chars().count();
            Cow::Owned(format!("{}… ({more} more characters)", &s[..cut]))
        }
    }
}

/// The name in `names` nearest to `name`, if it is close enough to be a likely typo: case is
/// ignored, one-letter names need an exact match, longer ones may be a third of their length away.
pub fn nearest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    let limit = match name.chars().count() {
        0 | 1 => 0,
        n if n > 64 => return None,
        n => (n / 3).max(1),
    };
    let lower = name.to_lowercase();
    names
        .iter()
        .filter(|n| n.chars().count() <= 64)
        .map(|n| (edit_distance(&lower, &n.to_lowercase()), *n))
        .filter(|(d, n)| *d <= limit && *n != name)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// "did you mean `x`? " when one of `names` is close to `name`, else an empty string.
pub fn did_you_mean(name: &str, names: &[&str]) -> String {
    nearest(name, names).map_or_else(String::new, |n| format!("did you mean `{n}`? "))
}

/// Edit distance over chars, counting an insertion, a deletion, a substitution or a swap of
/// two neighbours (`tahn` → `tanh`) as one edit (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows: [Vec<usize>; 3] = [Vec::new(), Vec::new(), (0..=b.len()).collect()];
    for i in 1..=a.len() {
        rows.rotate_left(1);
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = rows[1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut d = sub.min(rows[1][j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[0][j - 2] + 1);
            }
            cur[j] = d;
        }
        rows[2] = cur;
    }
    rows[2][b.len()]
}

/// Names as a readable list: `a`, `b`, `c` (at most 16, then "and N more").
pub fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    const MAX: usize = 16;
    let shown: Vec<String> = names
        .iter()
        .take(MAX)
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    let more = names.len().saturating_sub(MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "entry", "entries"), "1 entry");
        assert_eq!(plural(0, "row", "rows"), "0 rows");
    }

    #[test]
    fn clipping_keeps_short_tokens_and_counts_the_rest() {
        assert_eq!(clip("abc"), "abc");
        let long = "7".repeat(1_000_000);
        let c = clip(&long);
        assert!(c.len() < 100, "{c}");
        assert!(c.ends_with(&format!("({} more characters)", 1_000_000 - ECHO_CHARS)));
        assert_eq!(clip_to("héllo", 2), "hé… (3 more characters)");
    }

    #[test]
    fn suggestions_are_close_names_only() {
        assert_eq!(did_you_mean("W1", &["W", "V", "b"]), "did you mean `W`? ");
        assert_eq!(
            did_you_mean("ep", &["DP", "EP", "MKT"]),
            "did you mean `EP`? "
        );
        assert_eq!(did_you_mean("zzzz", &["DP", "EP"]), "");
        assert_eq!(did_you_mean("z", &["x", "y"]), "");
        assert_eq!(did_you_mean("B", &["A", "b"]), "did you mean `b`? ");
        assert_eq!(nearest("tahn", &["relu", "tanh", "exp"]), Some("tanh"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tahn", "tanh"), 1);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
