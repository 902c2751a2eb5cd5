//! `superopt kernels`: the GPU kernels superopt generates for the harness, for one target.

use crate::cli::KernelsArgs;
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;
use superopt_bench::Size;
use superopt_kernel::Target;
use superopt_run::harness_fault;
use superopt_run::output::folder_of;
use superopt_run::propose::{backend_target, lowered_for, proposals};

pub fn command(a: KernelsArgs) -> Result<ExitCode> {
    let target = Target::parse(&a.target)
        .ok_or_else(|| anyhow::anyhow!("--target must be cuda, metal or mlx; got {:?}", a.target))?;
    let mut s = superopt_run::Session::start(&a.common.session())?;
    let traces = Size::ALL.iter().map(|z| s.trace(*z)).collect::<Result<Vec<_>>>()?;
    let plan = superopt_trace::align(&traces, 1);
    let candidates = proposals(&plan, Duration::from_secs(10), s.device());
    let Some(c) = lowered_for(&candidates, target) else {
        println!(
            "no kernel: nothing in this program lowers to one (elementwise chains, row reductions, norms, softmax)"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let runs_here = backend_target(s.backend()) == Some(target) || target == Target::Mlx;
    let calls = superopt_emit::kernel_calls(&c.plan);
    let here = if runs_here {
        "this device can run them (superopt run verifies and times them)"
    } else {
        "not verified on this device"
    };
    println!("// {} kernels for {target:?} from {}; {here}", calls.len(), c.label());
    for r in c.rules.iter().filter(|r| r.starts_with("kernel")) {
        println!("// {r}");
    }
    for k in &calls {
        println!("\n// kernel {}\n{}", k.name(), k.source(target));
    }
    if let Some(out) = &a.output {
        let consts = format!("{}.safetensors", out.file_stem().map_or("kernels".into(), |x| x.to_string_lossy()));
        let notes = vec![format!("Kernels for {target:?}; launch parameters untuned.")];
        let info = superopt_emit::ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: &consts, notes };
        let e = superopt_emit::emit(&c, &info)?;
        if !e.tensors.is_empty() {
            s.save_constants(&e.tensors, &folder_of(out).join(&consts)).map_err(harness_fault)?;
        }
        std::fs::write(out, e.source)?;
        println!("\nwrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
