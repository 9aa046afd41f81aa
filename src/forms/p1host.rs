//! The host side of the (P1) structure: a lifted graph, its penalized objective and its
//! linearizer behind the SDK's [`P1Problem`] trait, which SRPA drives.

use mcopt_plugin_sdk::p1::{Linearization, P1Problem, P1Structure, RowGroup};

use super::linearize::{LinearizeError, Linearizer};
use super::{Betas, Lifted};
use crate::eval::{EvalOptions, Evaluator};
use crate::graph::Graph;
use crate::registry::{Order, Registry};

/// (P1) of one model and data set, for SRPA.
pub struct P1Host<'g> {
    structure: P1Structure,
    lin: Linearizer<'g>,
    penalized: Evaluator<'g>,
    train: Evaluator<'g>,
    n_theta: usize,
}

impl<'g> P1Host<'g> {
    /// `penalized` must be `lifted.penalized(betas)`; `train` is the original graph (its loss
    /// is the training loss of a forward pass of θ).
    pub fn new(
        lifted: &'g Lifted,
        penalized: &'g Graph,
        betas: &Betas,
        train: &'g Graph,
        registry: &'g Registry,
    ) -> Result<Self, LinearizeError> {
        let lin = Linearizer::new(lifted, registry)?;
        let layout = &lifted.layout;
        let m = layout.n_z - layout.n_theta;
        let mut beta = vec![0.0; m];
        let mut groups = Vec::new();
        for g in &layout.groups {
            let b = betas.of(&g.name);
            let mut rows = Vec::new();
            let mut per_step = 1;
            for &k in &g.blocks {
                let blk = &layout.blocks[k];
                let r = blk.offset - layout.n_theta..blk.offset - layout.n_theta + blk.len();
                beta[r.clone()].iter_mut().for_each(|v| *v = b);
                rows.push(r);
                per_step = blk.cols.max(1);
            }
            groups.push(RowGroup {
                name: g.name.clone(),
                scale: 1.0 / (per_step * g.blocks.len().max(1)) as f64,
                rows,
            });
        }
        let pattern = lin.pattern();
        let structure = P1Structure {
            n_theta: layout.n_theta,
            n_z: layout.n_z,
            row_ptr: pattern.row_ptr.clone(),
            col_idx: pattern.col_idx.clone(),
            beta,
            groups,
        };
        Ok(P1Host {
            structure,
            lin,
            penalized: Evaluator::new(penalized, registry, Order::Zero)?,
            train: Evaluator::new(train, registry, Order::Zero)?,
            n_theta: layout.n_theta,
        })
    }

    /// The linearizer (its tie tolerance and multiplier threshold can be set).
    pub fn linearizer(&mut self) -> &mut Linearizer<'g> {
        &mut self.lin
    }
}

impl P1Problem for P1Host<'_> {
    fn structure(&self) -> &P1Structure {
        &self.structure
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
        out: &mut Linearization,
    ) -> Result<(), String> {
        self.lin
            .linearize(z, multipliers, out)
            .map_err(|e| e.to_string())
    }

    fn losses(&mut self, theta: &[f64]) -> Result<(f64, f64), String> {
        self.train
            .value(&theta[..self.n_theta], EvalOptions::default())
            .map_err(|e| format!("{:?}", e.kind))?;
        Ok((self.train.loss(), f64::NAN))
    }
}
