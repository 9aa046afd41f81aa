//! mcopt's standard plugin: activations, penalties and the solvers `gd`, `adam` and `srpa`.
//!
//! Linked into the mcopt binary through [`descriptor`], and built as a shared library exporting
//! the same descriptor through the SDK's entry symbol; either way the host sees one
//! [`PluginDescriptor`].

pub mod activations;
pub mod penalties;
pub mod solvers;

use activations::{Elu, LeakyRelu, Relu, Sigmoid, Softplus, Tanh, L1};
use mcopt_plugin_sdk::abi::PluginDescriptor;
use mcopt_plugin_sdk::{function, piecewise, smooth, solver};
use penalties::{CappedL1, EvenQuadraticFn, Huber, Mcp, Scad};
use solvers::srpa::SrpaSolver;
use solvers::{Adam, GradientDescent};

mcopt_plugin_sdk::export_plugin! {
    name: "std",
    version: env!("CARGO_PKG_VERSION"),
    functions: [
        function::<Relu>(),
        function::<LeakyRelu>(),
        piecewise::<Elu>(),
        smooth::<Tanh>(),
        smooth::<Sigmoid>(),
        smooth::<Softplus>(),
        function::<L1>(),
        piecewise::<EvenQuadraticFn<Huber>>(),
        piecewise::<EvenQuadraticFn<Mcp>>(),
        piecewise::<EvenQuadraticFn<Scad>>(),
        piecewise::<EvenQuadraticFn<CappedL1>>(),
    ],
    solvers: [solver::<GradientDescent>(), solver::<Adam>(), solver::<SrpaSolver>()],
}

/// The standard plugin's descriptor, for linking it in-process.
pub fn descriptor() -> &'static PluginDescriptor {
    &PLUGIN_DESCRIPTOR
}
