//! Temporary stand-in for the function registry (replaced by the plugin branch).

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FunctionId(pub u32);
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    Activation,
    Penalty,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Zero,
    One,
    Two,
}
pub struct ParamInfo {
    pub name: String,
    pub default: Option<f64>,
}
pub struct FunctionInfo {
    pub name: String,
    pub kind: FunctionKind,
    pub params: Vec<ParamInfo>,
    pub breakpoints: Vec<f64>,
}
#[derive(Debug)]
pub struct CallError(pub String);
impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
pub struct Registry {
    f: Vec<FunctionInfo>,
}
impl Registry {
    pub fn with_standard() -> Registry {
        Registry {
            f: vec![
                FunctionInfo { name: "relu".into(), kind: FunctionKind::Activation, params: vec![], breakpoints: vec![0.0] },
                FunctionInfo { name: "tanh".into(), kind: FunctionKind::Activation, params: vec![], breakpoints: vec![] },
            ],
        }
    }
    pub fn lookup(&self, name: &str) -> Option<FunctionId> {
        self.f.iter().position(|f| f.name == name).map(|i| FunctionId(i as u32))
    }
    pub fn info(&self, id: FunctionId) -> &FunctionInfo {
        &self.f[id.0 as usize]
    }
    pub fn function_names(&self) -> Vec<&str> {
        self.f.iter().map(|f| f.name.as_str()).collect()
    }
    pub fn call(&self, id: FunctionId, _params: &[f64], order: Order, _ztol: f64, a: [&[f64]; 3], f: [&mut [f64]; 3]) -> Result<usize, CallError> {
        let [a0, a1, a2] = a;
        let [f0, f1, f2] = f;
        let mut kinks = 0;
        for i in 0..a0.len() {
            if id.0 == 0 {
                let s = if a0[i] != 0.0 { a0[i] } else if order != Order::Zero && a1[i] != 0.0 { a1[i] } else if order == Order::Two { a2[i] } else { 0.0 };
                if a0[i] == 0.0 { kinks += 1; }
                let on = s > 0.0;
                f0[i] = if on { a0[i] } else { 0.0 };
                if order != Order::Zero { f1[i] = if on { a1[i] } else { 0.0 }; }
                if order == Order::Two { f2[i] = if on { a2[i] } else { 0.0 }; }
            } else {
                let t = a0[i].tanh();
                let d = 1.0 - t * t;
                f0[i] = t;
                if order != Order::Zero { f1[i] = d * a1[i]; }
                if order == Order::Two { f2[i] = -2.0 * t * d * a1[i] * a1[i] + d * a2[i]; }
            }
        }
        Ok(kinks)
    }
}
