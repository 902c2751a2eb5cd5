//! Static figures of a standard kernel's CUDA without a GPU: ptxas's registers and the PTX
//! instruction count per thread, compiled with NVRTC (requirements-dev.txt) for sm_90 as
//! MLX would compile it. Instruction counts compare emitter changes; only the device's
//! timings say what they are worth.
//!
//! `SUPEROPT_PYTHON=.venv/bin/python cargo run --release -p superopt-kernel --example ptx -- softmax bfloat16 8192 256`

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use superopt_ir::Dtype;
use superopt_kernel::{cuda, library, Params};

/// NVRTC's reply for `source` compiled for `arch` (crates/kernel/tests/nvrtc.py).
fn nvrtc(source: &str, arch: &str) -> serde_json::Value {
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nvrtc.py");
    let mut child =
        Command::new(python).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::json!({"source": source, "arch": arch}).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "NVRTC did not run");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(reply["ok"].as_bool().unwrap(), "{}", reply["log"]);
    reply
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kernel, dtype, n, threads] = &args[..] else {
        panic!("usage: ptx rms_norm|layer_norm|softmax|swiglu DTYPE N THREADS");
    };
    let dtype = Dtype::parse(dtype).expect("a dtype: float32, float16 or bfloat16");
    let make = match kernel.as_str() {
        "rms_norm" => library::rms_norm_kernel,
        "layer_norm" => library::layer_norm_kernel,
        "softmax" => library::softmax_kernel,
        _ => library::swiglu_kernel,
    };
    let k = make(dtype).unwrap();
    let (n, threads): (i64, u32) = (n.parse().unwrap(), threads.parse().unwrap());
    let vec = (16 / dtype.size_bytes()) as u32;
    let source = cuda::mlx_module(&cuda::mlx_function(
        "k",
        &k,
        dtype,
        n,
        &Params { vec, threads, rows_per_block: 1, unroll: 1 },
    ));
    let log = nvrtc(&source, "sm_90")["log"].as_str().unwrap().to_string();
    println!("{}", log.lines().find(|l| l.contains("registers")).unwrap_or("no ptxas report").trim());
    let ptx = nvrtc(&source, "compute_90")["ptx"].as_str().unwrap().to_string();
    let body = &ptx[ptx.find(".entry").expect("one entry")..];
    let mut ops: BTreeMap<String, usize> = BTreeMap::new();
    for line in body.lines().map(str::trim).filter(|l| l.ends_with(';') && !l.starts_with(['.', '/'])) {
        let op = if line.starts_with('@') { line.split_whitespace().nth(1).unwrap_or("") } else { line };
        *ops.entry(op.split(['.', ' ', '\t']).next().unwrap_or("").to_string()).or_default() += 1;
    }
    let mut by_count: Vec<(&String, &usize)> = ops.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = by_count.iter().take(12).map(|(o, c)| format!("{o} {c}")).collect();
    println!("{} PTX instructions: {}", ops.values().sum::<usize>(), top.join(", "));
}
