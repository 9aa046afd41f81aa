//! The standard solvers: gradient descent (momentum, Nesterov, clipping, optional Armijo
//! backtracking) and Adam. SRPA comes from its own module. One step is one epoch: a pass over
//! every minibatch the host offers (one, for the full batch), through the SDK's
//! `Problem::epoch`.

pub mod adam;
pub mod gd;
pub mod srpa;

pub use adam::Adam;
pub use gd::GradientDescent;

#[cfg(test)]
mod tests {
    use super::{Adam, GradientDescent};
    use mcopt_plugin_sdk::testing::{check_resume, run, TestProblem};

    /// Two minibatches of a smooth nonconvex function of three variables.
    fn batched() -> TestProblem {
        TestProblem::batched(3, 2, |k, x, g| {
            let c = [1.0, -0.5][k];
            let mut f = 0.0;
            for i in 0..3 {
                let u = x[i] - c * (i as f64);
                f += u * u + 0.1 * (3.0 * x[i]).sin();
                g[i] = 2.0 * u + 0.3 * (3.0 * x[i]).cos();
            }
            f
        })
    }

    #[test]
    fn adam_and_gd_resume_bit_for_bit_through_their_blobs() {
        let x0 = [0.5, -1.0, 2.0];
        check_resume::<Adam>(&mut batched(), &[("lr", "0.05")], &x0, 8).unwrap();
        let gd = [("lr", "0.1"), ("momentum", "0.5"), ("nesterov", "true")];
        check_resume::<GradientDescent>(&mut batched(), &gd, &x0, 8).unwrap();
        let mut full = TestProblem::new(3, |x, g| {
            g.copy_from_slice(x);
            0.5 * x.iter().map(|v| v * v).sum::<f64>()
        });
        let armijo = [("lr", "4"), ("armijo", "true"), ("clip", "1")];
        check_resume::<GradientDescent>(&mut full, &armijo, &x0, 6).unwrap();
    }

    #[test]
    fn one_epoch_takes_one_update_per_minibatch() {
        let mut p = batched();
        let r = run::<GradientDescent>(&mut p, &[("lr", "0.1")], &[0.0; 3], 3).unwrap();
        assert_eq!(p.evaluations(), 6);
        assert_eq!(r.steps.len(), 3);
        // grad_norm and step are set by name, in declaration order.
        assert_eq!(r.steps[0].1[1], 0.1);
        assert!(r.steps[0].1[0] > 0.0);
    }
}
