//! Resuming a training run: the checkpoint of its outputs read and refused when it belongs to
//! other inputs (model, run file, solver, options) or another seed.

use crate::diag::{Diag, Diags};
use crate::solve::{Checkpoint, Fingerprint};

use super::outputs::Outputs;

/// `--resume` continues with the checkpoint's seed; another `--seed` is refused.
pub fn refuse_other_seed(given: Option<u64>, saved: u64, outputs: &Outputs) -> Result<(), Diags> {
    match given {
        Some(s) if s != saved => {
            let shown = checkpoint_shown(outputs);
            Err(Diag::new(
                "mcopt::train::resume",
                format!("`--seed {s}` conflicts with the checkpoint's seed {saved}"),
            )
            .in_file(shown)
            .help(format!("a resumed run keeps its seed: omit --seed (or give --seed {saved}), or start again without --resume"))
            .into())
        }
        _ => Ok(()),
    }
}

/// The checkpoint's path as shown in diagnostics.
pub fn checkpoint_shown(outputs: &Outputs) -> String {
    outputs
        .checkpoint
        .as_ref()
        .map_or(String::new(), |p| p.display().to_string())
}

/// The checkpoint to resume from, refused when it belongs to other inputs.
pub fn load_checkpoint(
    outputs: &Outputs,
    solver: &str,
    options: &[f64],
    fp: Fingerprint,
) -> Result<Checkpoint, Diags> {
    let Some(path) = &outputs.checkpoint else {
        return Err(Diag::new("mcopt::train::resume", "--resume needs a checkpoint, and none is configured")
            .help("give --out DIR (the checkpoint is DIR/checkpoint.json) or `output: {checkpoint: FILE}` in the run file")
            .into());
    };
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::train::resume",
                format!("cannot read the checkpoint: {e}"),
            )
            .in_file(&shown),
        )
    })?;
    let cp = Checkpoint::from_bytes(&bytes).map_err(|e| {
        Diags::from(Diag::new("mcopt::train::checkpoint", e.to_string()).in_file(&shown))
    })?;
    let refuse = |what: &str| -> Diags {
        Diag::new("mcopt::train::resume", format!("the checkpoint was written for a different {what}"))
            .in_file(&shown)
            .help("resume only with the model, run file, solver and options that wrote it; start again without --resume")
            .into()
    };
    if cp.fingerprint.model != fp.model {
        return Err(refuse("model (its text changed)"));
    }
    if cp.fingerprint.run != fp.run {
        return Err(refuse("run file (its text changed)"));
    }
    let same_options = cp.options.len() == options.len()
        && cp
            .options
            .iter()
            .zip(options)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    if cp.solver != solver || !same_options {
        return Err(refuse("solver or solver options"));
    }
    Ok(cp)
}
