//! Job files for the cluster engines users already have: a Slurm job-array script and a
//! Kubernetes indexed Job. Each task runs `mcopt sweep run DIR`, which reads its index from
//! `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`. Bytes only: nothing here submits.

use std::fmt::Write as _;
use std::path::Path;

use crate::diag::{Diag, Diags};

/// Options of the Slurm script.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Time limit per task, in Slurm's syntax (`10:00`, `1-00:00:00`).
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// At most this many tasks at once (`%K` of `--array`).
    pub max_parallel: Option<u32>,
    pub job_name: String,
}

/// An sbatch script running entry `$SLURM_ARRAY_TASK_ID` of the sweep in `dir` (absolute)
/// with the mcopt executable `exe` (absolute), for `entries` entries.
///
/// No value can add a directive or a command: control characters (a newline would start a
/// new `#SBATCH` line) are refused in every value, and whitespace or quotes in the options
/// (sbatch reads several options from one directive line); paths are double-quoted in the
/// directives and single-quoted for the shell; the job name keeps only safe characters.
pub fn slurm_script(
    exe: &Path,
    dir: &Path,
    entries: usize,
    o: &SlurmOptions,
) -> Result<String, Diags> {
    let mut diags = Diags::new();
    for (option, value) in [("--partition", &o.partition), ("--time", &o.time)] {
        if let Some(v) = value {
            if let Err(d) = directive_word(option, v) {
                diags.push(d);
            }
        }
    }
    let exe_text = exe.display().to_string();
    let dir_text = dir.display().to_string();
    for (what, v) in [
        ("the mcopt executable's path", &exe_text),
        ("the sweep directory", &dir_text),
    ] {
        if let Err(d) = no_control(what, v) {
            diags.push(d);
        }
    }
    let logs = format!("{dir_text}/slurm/%A_%a.out");
    if logs.contains(['"', '\\']) {
        let msg = format!(
            "the sweep directory `{}` holds a quote or a backslash, which an #SBATCH directive cannot carry",
            crate::text::clip(&dir_text)
        );
        diags.push(
            Diag::new("mcopt::sweep::slurm", msg)
                .in_file(dir_text.clone())
                .help("plan the sweep into a directory without quotes or backslashes"),
        );
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let job_name: String = o
        .job_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/bash");
    let _ = writeln!(
        s,
        "# written by `mcopt sweep slurm`: one array task per sweep entry"
    );
    let _ = writeln!(s, "#SBATCH --job-name={job_name}");
    let array = match o.max_parallel {
        Some(k) => format!("0-{}%{k}", entries.saturating_sub(1)),
        None => format!("0-{}", entries.saturating_sub(1)),
    };
    let _ = writeln!(s, "#SBATCH --array={array}");
    let _ = writeln!(s, "#SBATCH --output=\"{logs}\"");
    if let Some(p) = &o.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if let Some(t) = &o.time {
        let _ = writeln!(s, "#SBATCH --time={t}");
    }
    if let Some(c) = o.cpus_per_task {
        let _ = writeln!(s, "#SBATCH --cpus-per-task={c}");
    }
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(
        s,
        "exec {} sweep run {}",
        shell_quote(&exe_text),
        shell_quote(&dir_text)
    );
    Ok(s)
}

/// A value written into the job files may not hold control characters (a newline would start
/// a new line of the file): a diagnostic naming `what`.
pub fn no_control(what: &str, value: &str) -> Result<(), Diag> {
    match value.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => {
            let msg = format!(
                "{what} holds the control character {:?}, which cannot be written into a job file",
                c
            );
            Err(Diag::new("mcopt::sweep::value", msg)
                .help("remove newlines and other control characters from the value"))
        }
    }
}

/// An option's value in an `#SBATCH` line: one word without control characters, whitespace or
/// quotes.
fn directive_word(option: &str, value: &str) -> Result<(), Diag> {
    no_control(&format!("`{option}`"), value)?;
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || "\"'\\#".contains(c)) {
        let msg = format!(
            "`{option}` must be one word without spaces, quotes or `#`, found `{}`",
            crate::text::clip(value)
        );
        return Err(Diag::new("mcopt::sweep::value", msg)
            .help("sbatch reads every word of an #SBATCH line as an option"));
    }
    Ok(())
}

/// Options of the Kubernetes Job.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    pub image: String,
    pub parallelism: u32,
    pub name: String,
    /// The PersistentVolumeClaim that holds the sweep directory.
    pub claim: String,
    /// Where the claim is mounted in the container.
    pub mount: String,
    /// The sweep directory inside the container (under `mount`).
    pub dir_in_pod: String,
    /// Retries of one index before it counts as failed.
    pub backoff_limit_per_index: u32,
}

/// A `batch/v1` Job with `completionMode: Indexed`, one completion per sweep entry. Every
/// text value is written as a JSON string (a valid YAML double-quoted scalar, so no value can
/// add a key); control characters are refused.
pub fn k8s_job(entries: usize, o: &K8sOptions) -> Result<String, Diags> {
    let mut diags = Diags::new();
    for (what, v) in [
        ("`--image`", &o.image),
        ("`--claim`", &o.claim),
        ("`--mount`", &o.mount),
        ("the sweep directory in the pod", &o.dir_in_pod),
        ("the job name", &o.name),
    ] {
        if let Err(d) = no_control(what, v) {
            diags.push(d);
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# written by `mcopt sweep k8s`: one completion index per sweep entry"
    );
    let _ = writeln!(s, "apiVersion: batch/v1");
    let _ = writeln!(s, "kind: Job");
    let _ = writeln!(s, "metadata:");
    let _ = writeln!(s, "  name: {}", q(&o.name));
    let _ = writeln!(s, "spec:");
    let _ = writeln!(s, "  completionMode: Indexed");
    let _ = writeln!(s, "  completions: {entries}");
    let _ = writeln!(s, "  parallelism: {}", o.parallelism);
    let _ = writeln!(s, "  backoffLimitPerIndex: {}", o.backoff_limit_per_index);
    let _ = writeln!(s, "  template:");
    let _ = writeln!(s, "    spec:");
    let _ = writeln!(s, "      restartPolicy: Never");
    let _ = writeln!(s, "      containers:");
    let _ = writeln!(s, "        - name: mcopt");
    let _ = writeln!(s, "          image: {}", q(&o.image));
    let _ = writeln!(
        s,
        "          command: [\"mcopt\", \"sweep\", \"run\", {}]",
        q(&o.dir_in_pod)
    );
    let _ = writeln!(s, "          volumeMounts:");
    let _ = writeln!(s, "            - name: sweeps");
    let _ = writeln!(s, "              mountPath: {}", q(&o.mount));
    let _ = writeln!(s, "      volumes:");
    let _ = writeln!(s, "        - name: sweeps");
    let _ = writeln!(s, "          persistentVolumeClaim:");
    let _ = writeln!(s, "            claimName: {}", q(&o.claim));
    Ok(s)
}

/// Single-quote a word for a POSIX shell.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
