//! `trace.csv`, appended to as a run goes: one row per iteration from iteration 0 (or per
//! `trace: {every: k}` iterations, see `solve::Executor::run_every`), columns
//! `iter, objective, train_loss, test_loss, seconds, stationarity` and then each solver metric.
//! Numbers are written in Rust's shortest round-trip form; a missing value (no test split, no
//! metric at row 0) is empty.

use std::io::Write;

use crate::solve::Row;

/// The CSV text of `rows` with the solver's `metrics` as extra columns (a metric named
/// `objective` is not repeated: the row's objective already is that metric).
pub fn trace_csv(rows: &[Row], metrics: &[String]) -> Vec<u8> {
    let mut s = header(metrics);
    s.push('\n');
    for r in rows {
        s.push_str(&line(r, metrics));
        s.push('\n');
    }
    s.into_bytes()
}

/// The header line (without its newline): the fixed columns, then each metric but `objective`.
pub fn header(metrics: &[String]) -> String {
    let mut s = String::from("iter,objective,train_loss,test_loss,seconds,stationarity");
    for m in metrics.iter().filter(|m| *m != "objective") {
        s.push(',');
        s.push_str(m);
    }
    s
}

/// The column of metric `name` in the lines of [`line`] (`None`: not a column).
pub fn column(metrics: &[String], name: &str) -> Option<usize> {
    let kept: Vec<&String> = metrics.iter().filter(|m| *m != "objective").collect();
    kept.iter().position(|m| *m == name).map(|i| 6 + i)
}

/// The line of one row (without its newline), in the columns of [`header`].
pub fn line(r: &Row, metrics: &[String]) -> String {
    let mut buf = Vec::new();
    write_line(&mut buf, r, metrics);
    // Only ASCII digits, signs, points, commas and `inf` are written.
    String::from_utf8(buf).unwrap_or_default()
}

/// [`line`] appended to `buf` (a row written without allocating).
pub fn write_line(buf: &mut Vec<u8>, r: &Row, metrics: &[String]) {
    push_u64(buf, r.iter);
    let mut floats = ryu::Buffer::new();
    // The bits of the last field and where its text starts.
    let mut previous: Option<(u64, usize)> = None;
    let keep = metrics.iter().map(|m| m != "objective");
    let extra = r
        .metrics
        .iter()
        .zip(keep.chain(std::iter::repeat(true)))
        .filter(|(_, k)| *k)
        .map(|(m, _)| Some(*m));
    for v in [
        Some(r.objective),
        Some(r.train_loss),
        r.test_loss,
        Some(r.seconds),
        Some(r.stationarity),
    ]
    .into_iter()
    .chain(extra)
    {
        buf.push(b',');
        if let Some(v) = v.filter(|v| !v.is_nan()) {
            // A value equal to the one before (a solver's `grad_norm` metric is its
            // stationarity measure) is copied, not formatted again.
            let start = buf.len();
            match previous {
                Some((bits, at)) if bits == v.to_bits() => buf.extend_from_within(at..start - 1),
                _ => push_f64(buf, v, &mut floats),
            }
            previous = Some((v.to_bits(), start));
        } else {
            previous = None;
        }
    }
}

/// `v` as Rust's `{}` writes it — the shortest digits that read back as `v`, in positional
/// notation (`0.00001`, `1000000000000000000000`, `-0`, `inf`) — from ryu's shortest digits,
/// several times faster. Both pick, among the shortest digit strings, the one nearest to `v`;
/// they differ only when two are equally near (ryu then takes the even one, Rust the larger),
/// which needs `v`'s exact decimal expansion to be at most 18 digits long: those values (few,
/// such as 2⁻²⁵) are written by Rust's own formatting.
fn push_f64(buf: &mut Vec<u8>, v: f64, ryu: &mut ryu::Buffer) {
    if !v.is_finite() || short_expansion(v) {
        // Writing to a Vec cannot fail.
        let _ = write!(buf, "{v}");
        return;
    }
    if v.is_sign_negative() {
        buf.push(b'-');
    }
    // ryu writes `1.0`, `0.001`, `123.45`, `1e-7` or `1.2345e30`.
    let text = ryu.format_finite(v.abs()).as_bytes();
    if !text.contains(&b'e') {
        // Positional already, with the same digits: only `{}` leaves out a fraction `.0`.
        buf.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
        return;
    }
    let (mantissa, exp) = match text.iter().position(|&c| c == b'e') {
        Some(i) => (&text[..i], parse_exp(&text[i + 1..])),
        None => (text, 0),
    };
    let point = mantissa
        .iter()
        .position(|&c| c == b'.')
        .unwrap_or(mantissa.len());
    // The significant digits d₁…dₙ, and kk with v = 0.d₁…dₙ · 10^kk.
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut kk = point as i32 + exp;
    for &c in mantissa.iter().filter(|c| c.is_ascii_digit()) {
        if n == 0 && c == b'0' {
            kk -= 1;
            continue;
        }
        if n < digits.len() {
            digits[n] = c;
            n += 1;
        }
    }
    while n > 0 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n];
    if digits.is_empty() {
        buf.push(b'0');
    } else if kk <= 0 {
        buf.extend_from_slice(b"0.");
        buf.resize(buf.len() + (-kk) as usize, b'0');
        buf.extend_from_slice(digits);
    } else if kk as usize >= n {
        buf.extend_from_slice(digits);
        buf.resize(buf.len() + (kk as usize - n), b'0');
    } else {
        buf.extend_from_slice(&digits[..kk as usize]);
        buf.push(b'.');
        buf.extend_from_slice(&digits[kk as usize..]);
    }
}

/// `v` in decimal, as `{}` writes it.
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Whether the exact decimal expansion of `v` (finite) has at most 18 significant digits and
/// a fractional part. An integer (a multiple of its own spacing) never has two shortest
/// candidates equally near.
fn short_expansion(v: f64) -> bool {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = match exp {
        0 => (frac, -1074),
        _ => (frac | (1 << 52), exp - 1075),
    };
    if m == 0 {
        return false;
    }
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += zeros as i32;
    // v = m · 2^e = m · 5^(−e) · 10^e: its digits are those of m · 5^(−e).
    if !(-27..0).contains(&e) {
        return false;
    }
    u128::from(m) * 5u128.pow((-e) as u32) < 1_000_000_000_000_000_000
}

/// The exponent after ryu's `e` (`-7`, `30`).
fn parse_exp(t: &[u8]) -> i32 {
    let (neg, t) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    let e = t
        .iter()
        .fold(0i32, |e, &c| e * 10 + i32::from(c.wrapping_sub(b'0')));
    if neg {
        -e
    } else {
        e
    }
}

/// The numbers of a line written by [`line`], by column (an empty field is `None`); `None`
/// when a field is not a number.
pub fn parse_line(text: &str) -> Option<Vec<Option<f64>>> {
    text.split(',')
        .map(|f| {
            if f.is_empty() {
                Some(None)
            } else {
                f.parse::<f64>().ok().map(Some)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_rows_with_empty_missing_values() {
        let rows = vec![
            Row {
                iter: 0,
                objective: 1.5,
                train_loss: 1.0,
                test_loss: None,
                seconds: 0.0,
                stationarity: f64::NAN,
                metrics: vec![f64::NAN],
            },
            Row {
                iter: 1,
                objective: 0.1 + 0.2,
                train_loss: 0.25,
                test_loss: Some(2.0),
                seconds: 0.5,
                stationarity: 1e-3,
                metrics: vec![4.0],
            },
        ];
        let text = String::from_utf8(trace_csv(&rows, &["grad_norm".into()])).unwrap();
        assert_eq!(
            text,
            "iter,objective,train_loss,test_loss,seconds,stationarity,grad_norm\n\
             0,1.5,1,,0,,\n\
             1,0.30000000000000004,0.25,2,0.5,0.001,4\n"
        );
        let back = parse_line(&line(&rows[1], &["grad_norm".into()])).unwrap();
        assert_eq!(back[1], Some(0.1 + 0.2));
        assert_eq!(
            back[column(&["grad_norm".into()], "grad_norm").unwrap()],
            Some(4.0)
        );
        assert_eq!(parse_line("0,1.5,,x"), None);
    }

    #[test]
    fn a_value_equal_to_the_one_before_is_written_again() {
        let g = 5.38314533881545;
        let r = Row {
            iter: 12,
            objective: 0.25,
            train_loss: 0.25,
            test_loss: None,
            seconds: 1e-6,
            stationarity: g,
            metrics: vec![g, -0.0, 0.0, f64::NAN, f64::NAN, 2.5e-8, 2.5e-8],
        };
        let names: Vec<String> = ["a", "b", "c", "d", "e", "f", "g"].map(String::from).into();
        assert_eq!(
            line(&r, &names),
            format!("12,0.25,0.25,,0.000001,{g},{g},-0,0,,,0.000000025,0.000000025")
        );
    }

    /// The trace's numbers are Rust's `{}` of each value, bit pattern by bit pattern.
    #[test]
    fn numbers_are_written_as_display_writes_them() {
        let mut special = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.1 + 0.2,
            1e-5,
            1e-7,
            1.5e-7,
            123.456,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            1e23,
            2f64.powi(53),
            2f64.powi(54) + 4.0,
            9007199254740993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 3.0,
            f64::from_bits(1),
            f64::EPSILON,
            std::f64::consts::PI * 1e-300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.000189445,
            6.271483253326634,
        ];
        for k in -1074..=1023 {
            special.push(2f64.powi(k));
            special.push(-(2f64.powi(k) * 3.0));
        }
        for k in -330..=310 {
            let p = format!("1e{k}").parse::<f64>().unwrap();
            special.extend([p, 5.0 * p, 0.5 * p + p, 123456789.0 * p]);
        }
        // Random bit patterns over every exponent, and random short decimals.
        let mut rng = crate::rng::Rng::new(20);
        let n = if cfg!(debug_assertions) {
            200_000
        } else {
            2_000_000
        };
        for _ in 0..n {
            let bits = rng.next_u64();
            special.push(f64::from_bits(bits));
            let digits = (bits >> 12) % 100_000;
            let exp = (bits % 40) as i32 - 20;
            special.push(digits as f64 * 10f64.powi(exp));
        }
        let mut ryu = ryu::Buffer::new();
        let mut buf = Vec::new();
        for k in (0..64)
            .flat_map(|s| [(1u64 << s) - 1, 1 << s, 10u64.pow(s % 20)])
            .chain([u64::MAX])
        {
            buf.clear();
            push_u64(&mut buf, k);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), k.to_string());
        }
        for v in special.into_iter().filter(|v| !v.is_nan()) {
            buf.clear();
            push_f64(&mut buf, v, &mut ryu);
            assert_eq!(
                std::str::from_utf8(&buf).unwrap(),
                v.to_string(),
                "{:#x}",
                v.to_bits()
            );
        }
    }
}
