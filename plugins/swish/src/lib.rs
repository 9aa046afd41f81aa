//! Example mcopt plugin: the swish and mish activations, each written once, generic over the
//! number type; the SDK derives φ′ and φ″ with dual numbers. The SDK guide walks through it.

use mcopt_plugin_sdk::{smooth, Num, Smooth};

/// swish(x) = x · sigmoid(x) = x / (1 + e⁻ˣ).
pub struct Swish;

impl Smooth for Swish {
    const NAME: &'static str = "swish";

    fn phi<D: Num>(x: D, _params: &[f64]) -> D {
        x * ((-x).exp() + 1.0).recip()
    }
}

/// mish(x) = x · tanh(softplus(x)) = x · tanh(ln(1 + eˣ)).
pub struct Mish;

impl Smooth for Mish {
    const NAME: &'static str = "mish";

    fn phi<D: Num>(x: D, _params: &[f64]) -> D {
        x * x.exp().ln_1p().tanh()
    }
}

mcopt_plugin_sdk::export_plugin! {
    name: "swish",
    version: env!("CARGO_PKG_VERSION"),
    functions: [smooth::<Swish>(), smooth::<Mish>()],
    solvers: [],
}
