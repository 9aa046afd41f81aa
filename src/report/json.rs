//! JSON of certificates (`mcopt stationarity`) and validations (`mcopt validate`).

use serde_json::{json, Map, Value};

use super::Validation;
use crate::stationarity::{Certificate, Form, Verdict};
use crate::vars::{ShapeKind, VarSpec};

/// A direction in the form of a direction file: one entry per variable, scalars as numbers,
/// vectors as lists, matrices as lists of rows (`values` column-major, in spec order).
pub fn direction(specs: &[VarSpec], values: &[f64]) -> Value {
    let mut map = Map::new();
    let mut off = 0;
    for s in specs {
        let v = &values[off..off + s.len()];
        off += s.len();
        let entry = match s.kind {
            ShapeKind::Scalar => json!(v[0]),
            ShapeKind::Vector => json!(v),
            ShapeKind::Matrix => Value::Array(
                (0..s.rows)
                    .map(|r| json!((0..s.cols).map(|c| v[r + c * s.rows]).collect::<Vec<_>>()))
                    .collect(),
            ),
        };
        map.insert(s.name.clone(), entry);
    }
    Value::Object(map)
}

/// One verdict: `status`, `method`, `active_kinks`, `seconds`, and `direction`, `slope`,
/// `curvature`, `reason` where they apply.
pub fn verdict(v: &Verdict, specs: &[VarSpec]) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), json!(v.status.as_str()));
    m.insert("method".into(), json!(v.method));
    m.insert("active_kinks".into(), json!(v.active_kinks));
    if let Some(d) = &v.direction {
        m.insert("direction".into(), direction(specs, d));
    }
    if let Some(s) = v.slope {
        m.insert("slope".into(), json!(s));
    }
    if let Some(c) = v.curvature {
        m.insert("curvature".into(), json!(c));
    }
    if let Some(r) = &v.reason {
        m.insert("reason".into(), json!(r));
    }
    m.insert("seconds".into(), json!(v.seconds));
    Value::Object(m)
}

/// `{"form", "first_order", "second_order" (with order 2), "tol", "ztol", "seconds"}`.
pub fn certificate(form: Form, c: &Certificate, specs: &[VarSpec]) -> Value {
    let mut m = Map::new();
    m.insert("form".into(), json!(form.as_str()));
    m.insert("first_order".into(), verdict(&c.first, specs));
    if let Some(s) = &c.second {
        m.insert("second_order".into(), verdict(s, specs));
    }
    m.insert("tol".into(), json!(c.tol));
    m.insert("ztol".into(), json!(c.ztol));
    m.insert("seconds".into(), json!(c.seconds));
    Value::Object(m)
}

/// `{"passed": bool, "checks": [{"name", "status", "message", "seconds"}]}`.
pub fn validation(v: &Validation) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Pretty JSON bytes with a final newline.
pub fn to_bytes(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
