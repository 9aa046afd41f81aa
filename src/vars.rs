//! The variables of a problem as files and reports name them: a parameter θ (`W`) or a layer
//! value of the lifted forms (`h[3]`), with its shape and how it is written (a number, a list, a
//! list of rows). Shared by point files (`config`), certificates and reports (`report`) and the
//! stages that build them, so none of them imports another for the vocabulary.

/// How a variable is written in a point file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    /// A number (`rows == cols == 1`).
    Scalar,
    /// A list of `rows` numbers (`cols == 1`).
    Vector,
    /// A list of `rows` rows, each a list of `cols` numbers.
    Matrix,
}

/// Whether a variable is a model parameter or a layer value of the lifted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarRole {
    Param,
    Layer,
}

/// One variable a point file may give: its name (`W`, or `h[3]` for a time-indexed layer) and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarSpec {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub kind: ShapeKind,
    pub role: VarRole,
}

impl VarSpec {
    /// A variable of `rows × cols`, written as a number (1×1), a list (one column) or a list of
    /// rows (a matrix).
    pub fn new(name: impl Into<String>, rows: usize, cols: usize, role: VarRole) -> VarSpec {
        let kind = match (rows, cols) {
            (1, 1) => ShapeKind::Scalar,
            (_, 1) => ShapeKind::Vector,
            _ => ShapeKind::Matrix,
        };
        VarSpec {
            name: name.into(),
            rows,
            cols,
            kind,
            role,
        }
    }

    /// The number of values, `rows * cols`.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape in words: `a scalar`, `a vector of length 4`, `a 3×4 matrix`.
    pub fn shape_text(&self) -> String {
        match self.kind {
            ShapeKind::Scalar => "a scalar".to_string(),
            ShapeKind::Vector => format!("a vector of length {}", self.rows),
            ShapeKind::Matrix => format!("a {}×{} matrix", self.rows, self.cols),
        }
    }

    /// How the value is written, for help texts.
    pub fn form_text(&self) -> String {
        match self.kind {
            ShapeKind::Scalar => "a number".to_string(),
            ShapeKind::Vector => format!("a list of {} numbers", self.rows),
            ShapeKind::Matrix => format!("a list of {} rows of {} numbers", self.rows, self.cols),
        }
    }
}
