//! The host side of the (P1) structure: a lifted graph, its penalized objective and its
//! linearizer behind the SDK's [`P1Problem`] trait, which SRPA drives (in-process, or through
//! the SDK's `P1Table` across the plugin boundary).

use mcopt_plugin_sdk::p1::{Linearization, P1Problem, P1Structure, ParamShape};

use super::linearize::{Jacobian, LinearizeError, Linearizer};
use super::{Betas, Lifted};
use crate::eval::{EvalOptions, Evaluator};
use crate::graph::Graph;
use crate::registry::{Order, Registry};

/// (P1) of one model and data set, for SRPA.
pub struct P1Host<'g> {
    structure: P1Structure,
    lifted: &'g Lifted,
    lin: Linearizer<'g>,
    penalized: Evaluator<'g>,
    original: Evaluator<'g>,
}

impl<'g> P1Host<'g> {
    /// `penalized` must be `lifted.penalized(betas)` and `original` the graph `lifted` was
    /// lifted from. J is stored ([`Jacobian::Stored`]).
    pub fn new(
        lifted: &'g Lifted,
        penalized: &'g Graph,
        betas: &Betas,
        original: &'g Graph,
        registry: &'g Registry,
    ) -> Result<Self, LinearizeError> {
        Self::with_jacobian(
            lifted,
            penalized,
            betas,
            original,
            registry,
            Jacobian::Stored,
        )
    }

    /// [`P1Host::new`] with J stored or reached only through the products
    /// ([`P1Structure::stored`] says which); the products are offered either way.
    pub fn with_jacobian(
        lifted: &'g Lifted,
        penalized: &'g Graph,
        betas: &Betas,
        original: &'g Graph,
        registry: &'g Registry,
        jacobian: Jacobian,
    ) -> Result<Self, LinearizeError> {
        let lin = Linearizer::with_jacobian(lifted, registry, jacobian)?;
        let layout = &lifted.layout;
        let m = layout.n_z - layout.n_theta;
        let mut beta = vec![0.0; m];
        let mut group_of_row = vec![0; m];
        let mut group_scale = Vec::new();
        for (gi, g) in layout.groups.iter().enumerate() {
            let b = betas.of(&g.name);
            let mut per_step = 1;
            for &k in &g.blocks {
                let blk = &layout.blocks[k];
                let start = blk.offset - layout.n_theta;
                for r in start..start + blk.len() {
                    beta[r] = b;
                    group_of_row[r] = gi;
                }
                per_step = blk.cols.max(1);
            }
            group_scale.push(1.0 / (per_step * g.blocks.len().max(1)) as f64);
        }
        let pattern = lin.pattern();
        let structure = P1Structure {
            stored: lin.stored(),
            n_theta: layout.n_theta,
            n_z: layout.n_z,
            n_pieces: lin.sites(),
            row_ptr: pattern.row_ptr.clone(),
            col_idx: pattern.col_idx.clone(),
            beta,
            group_of_row,
            group_scale,
            params: theta_shapes(lifted),
        };
        Ok(P1Host {
            structure,
            lifted,
            lin,
            penalized: Evaluator::new(penalized, registry, Order::Zero)?,
            original: Evaluator::new(original, registry, Order::Zero)?,
        })
    }

    /// The linearizer (its tie tolerance and multiplier threshold can be set).
    pub fn linearizer(&mut self) -> &mut Linearizer<'g> {
        &mut self.lin
    }
}

/// The parameters of θ with their shapes, in θ's order (the lifted graph's parameters below
/// n_θ; the others are the lifted layers' leaves), for solvers that precondition θ by its
/// structure.
fn theta_shapes(lifted: &Lifted) -> Vec<ParamShape> {
    let mut shapes: Vec<ParamShape> = lifted
        .graph
        .params
        .iter()
        .filter(|p| p.offset < lifted.layout.n_theta)
        .map(|p| ParamShape {
            offset: p.offset,
            rows: p.shape.rows,
            cols: p.shape.cols,
        })
        .collect();
    shapes.sort_by_key(|p| p.offset);
    shapes
}

impl P1Problem for P1Host<'_> {
    fn structure(&self) -> &P1Structure {
        &self.structure
    }

    fn complete(&mut self, theta: &[f64], z: &mut [f64]) -> Result<(), String> {
        let full = self
            .lifted
            .complete(&mut self.original, theta)
            .map_err(|e| format!("{:?}", e.kind))?;
        z.copy_from_slice(&full);
        Ok(())
    }

    fn penalized(&mut self, z: &[f64]) -> Result<f64, String> {
        self.penalized
            .value(z, EvalOptions::default())
            .map_err(|e| format!("{:?}", e.kind))
    }

    fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        pieces: &mut [u32],
        out: &mut Linearization,
    ) -> Result<(), String> {
        self.lin
            .linearize(z, multipliers, pieces, out)
            .map_err(|e| e.to_string())
    }

    fn jac_mul(&mut self, s: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.lin.jac_mul(s, out).map_err(|e| e.to_string())
    }

    fn jac_tmul(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.lin.jac_tmul(y, out).map_err(|e| e.to_string())
    }

    fn lifted_solve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.lin.lifted_solve(y, x).map_err(|e| e.to_string())
    }

    fn lifted_tsolve(&mut self, y: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.lin.lifted_tsolve(y, x).map_err(|e| e.to_string())
    }

    fn lifted_solve_theta(&mut self, input: &[f64], x: &mut [f64]) -> Result<(), String> {
        self.lin
            .lifted_solve_theta(input, x)
            .map_err(|e| e.to_string())
    }

    fn lifted_tsolve_theta(&mut self, y: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.lin
            .lifted_tsolve_theta(y, out)
            .map_err(|e| e.to_string())
    }
}
