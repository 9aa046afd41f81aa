//! Seeded generator of synthetic RNN data sets, like the authors' `syn_T10.csv`: a random
//! teacher ReLU (or tanh) Elman RNN driven by uniform inputs, plus Gaussian noise, with
//! each target column standardised. Writes CSV to stdout: `seq,x1..x{nx},y1..y{ny}`.
//!
//! docs/bench.md's large workload:
//!     cargo run --release --example gen_rnn_data -- --nh 128 --nx 16 --ny 4 --steps 1000 --sequences 8 --seed 1 > large.csv
//!
//! The teacher's weights are scaled so that the recurrence is stable over long sequences:
//! W ~ N(0, 0.9²/Nh), V ~ N(0, 1/Nx), A ~ N(0, 1/Nh), b, c ~ N(0, 0.1²); x ~ U(-1, 1);
//! noise ~ N(0, 1e-6) as in the authors' generator.

use std::io::{self, BufWriter, Write};

use mcopt::rng::Rng;

struct Options {
    nh: usize,
    nx: usize,
    ny: usize,
    steps: usize,
    sequences: usize,
    seed: u64,
    tanh: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        nh: 128,
        nx: 16,
        ny: 4,
        steps: 1000,
        sequences: 8,
        seed: 1,
        tanh: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--tanh" {
            o.tanh = true;
            i += 1;
            continue;
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{} needs a non-negative integer, found {value}", args[i]))?;
        match args[i].as_str() {
            "--nh" => o.nh = n as usize,
            "--nx" => o.nx = n as usize,
            "--ny" => o.ny = n as usize,
            "--steps" => o.steps = n as usize,
            "--sequences" => o.sequences = n as usize,
            "--seed" => o.seed = n,
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    Ok(o)
}

fn gaussian(rng: &mut Rng, n: usize, std: f64) -> Vec<f64> {
    (0..n).map(|_| std * rng.normal()).collect()
}

/// y = M x + add, M stored row-major `rows × cols`.
fn affine(m: &[f64], x: &[f64], add: &[f64]) -> Vec<f64> {
    let cols = x.len();
    add.iter()
        .enumerate()
        .map(|(i, a)| a + (0..cols).map(|j| m[i * cols + j] * x[j]).sum::<f64>())
        .collect()
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut rng = Rng::new(o.seed);
    let w = gaussian(&mut rng, o.nh * o.nh, 0.9 / (o.nh as f64).sqrt());
    let v = gaussian(&mut rng, o.nh * o.nx, 1.0 / (o.nx as f64).sqrt());
    let a = gaussian(&mut rng, o.ny * o.nh, 1.0 / (o.nh as f64).sqrt());
    let b = gaussian(&mut rng, o.nh, 0.1);
    let c = gaussian(&mut rng, o.ny, 0.1);
    let mut xs = Vec::with_capacity(o.sequences * o.steps);
    let mut ys = Vec::with_capacity(o.sequences * o.steps);
    for _ in 0..o.sequences {
        let mut h = vec![0.0; o.nh];
        for _ in 0..o.steps {
            let x: Vec<f64> = (0..o.nx).map(|_| rng.uniform_in(-1.0, 1.0)).collect();
            let u = affine(&w, &h, &affine(&v, &x, &b));
            h = u
                .iter()
                .map(|&z| if o.tanh { z.tanh() } else { z.max(0.0) })
                .collect();
            let y: Vec<f64> = affine(&a, &h, &c)
                .into_iter()
                .map(|z| z + 1e-3 * rng.normal())
                .collect();
            xs.push(x);
            ys.push(y);
        }
    }
    standardise(&mut ys, o.ny);
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    let header: Vec<String> = std::iter::once("seq".to_owned())
        .chain((1..=o.nx).map(|i| format!("x{i}")))
        .chain((1..=o.ny).map(|i| format!("y{i}")))
        .collect();
    let mut write = || -> io::Result<()> {
        writeln!(out, "{}", header.join(","))?;
        for (r, (x, y)) in xs.iter().zip(&ys).enumerate() {
            let fields: Vec<String> = x.iter().chain(y).map(|v| format!("{v}")).collect();
            writeln!(out, "{},{}", r / o.steps, fields.join(","))?;
        }
        out.flush()
    };
    if let Err(e) = write() {
        eprintln!("error: cannot write the data: {e}");
        std::process::exit(2);
    }
}

/// Each column to mean 0 and population standard deviation 1.
fn standardise(rows: &mut [Vec<f64>], cols: usize) {
    let n = rows.len() as f64;
    for j in 0..cols {
        let mean = rows.iter().map(|r| r[j]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n;
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        for r in rows.iter_mut() {
            r[j] = (r[j] - mean) / sd;
        }
    }
}
