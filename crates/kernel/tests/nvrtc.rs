//! Every kernel below, at every launch the tuner may time, compiles with NVRTC for the
//! H100 (sm_90) inside the function MLX's CUDA backend wraps around a body, and keeps its
//! rows in registers: no spills, no stack, registers enough for its block to launch.
//! NVRTC comes from PyPI (requirements-dev.txt); no GPU is needed.

use std::io::Write;
use std::process::{Command, Stdio};
use superopt_ir::Dtype;
use superopt_kernel::ir::{Binary, Builder, Form, Layout, Unary};
use superopt_kernel::params::{self, LaunchShape};
use superopt_kernel::{cuda, library, Kernel, Params};

/// Residual add and RMSNorm, both results stored.
fn residual_rms_norm(dtype: Dtype) -> Kernel {
    let mut b = Builder::new("residual_rms_norm", Form::Rows);
    let x = b.input("x", Layout::Full);
    let r = b.input("r", Layout::Full);
    let w = b.input("w", Layout::Col);
    let h = b.binary(Binary::Add, x, r);
    let y = library::rms_norm(&mut b, h, Some(w), 1e-6);
    b.output("h", Layout::Full, dtype, h);
    b.output("out", Layout::Full, dtype, y);
    b.finish().unwrap()
}

/// One value per row.
fn logsumexp(dtype: Dtype) -> Kernel {
    let mut b = Builder::new("logsumexp", Form::Rows);
    let x = b.input("x", Layout::Full);
    let y = library::logsumexp(&mut b, x);
    b.output("out", Layout::Row, dtype, y);
    b.finish().unwrap()
}

/// A per-column bias, then erf's GELU: an elementwise kernel reading a broadcast operand.
fn bias_gelu(dtype: Dtype) -> Kernel {
    let mut b = Builder::new("bias_gelu", Form::Elementwise);
    let x = b.input("x", Layout::Full);
    let bias = b.input("bias", Layout::Col);
    let h = b.binary(Binary::Add, x, bias);
    let k = b.constant(std::f64::consts::FRAC_1_SQRT_2);
    let hk = b.binary(Binary::Mul, h, k);
    let e = b.unary(Unary::Erf, hk);
    let one = b.constant(1.0);
    let s = b.binary(Binary::Add, e, one);
    let half = b.constant(0.5);
    let hh = b.binary(Binary::Mul, h, half);
    let y = b.binary(Binary::Mul, hh, s);
    b.output("out", Layout::Full, dtype, y);
    b.finish().unwrap()
}

fn kernels(dtype: Dtype) -> Vec<Kernel> {
    vec![
        library::rms_norm_kernel(dtype).unwrap(),
        library::layer_norm_kernel(dtype).unwrap(),
        library::softmax_kernel(dtype).unwrap(),
        library::swiglu_kernel(dtype).unwrap(),
        residual_rms_norm(dtype),
        logsumexp(dtype),
        bias_gelu(dtype),
    ]
}

struct Launch {
    name: String,
    what: String,
    threads_per_block: u32,
}

/// Compiles `source` with NVRTC; None where NVRTC has no wheel (not Linux x86-64).
fn compile(source: &str) -> Option<(bool, String)> {
    let python = std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nvrtc.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let req = serde_json::json!({"source": source, "arch": "sm_90"});
    child.stdin.take().unwrap().write_all(req.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(3) && !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return None;
    }
    assert!(out.status.success(), "{python} {script}: {}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some((reply["ok"].as_bool().unwrap(), reply["log"].as_str().unwrap().to_string()))
}

/// ptxas's report for entry `name`: (stack bytes, spill store bytes, spill load bytes, registers).
fn resources(log: &str, name: &str) -> (u32, u32, u32, u32) {
    let mangled = format!("{}{name}E", name.len());
    let part = log
        .split("Compiling entry function")
        .find(|p| p.contains(&mangled))
        .unwrap_or_else(|| panic!("no report for {name}:\n{log}"));
    let before = |what: &str| -> u32 {
        let at = part.find(what).unwrap_or_else(|| panic!("no '{what}' for {name}:\n{part}"));
        part[..at].split_whitespace().last().unwrap().parse().unwrap()
    };
    let used = part.split("Used ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    (before(" bytes stack frame"), before(" bytes spill stores"), before(" bytes spill loads"), used)
}

#[test]
fn every_launch_compiles_for_sm90_without_spilling() {
    for dtype in [Dtype::Float32, Dtype::Bfloat16, Dtype::Float16] {
        for k in kernels(dtype) {
            let mut launches = vec![];
            let mut functions = String::new();
            for n in [8192, 1000, 64] {
                let dtypes = vec![dtype; k.inputs.len() + k.outputs.len()];
                for p in params::space(&k, &LaunchShape { rows: 4096, n, dtypes }) {
                    let name = format!("so_check_{}", launches.len());
                    functions += &cuda::mlx_function(&name, &k, dtype, n, &p);
                    launches.push(Launch {
                        name,
                        what: format!("{} {} n={n} {p:?}", k.name, dtype.name()),
                        threads_per_block: p.threads * p.rows_per_block,
                    });
                }
            }
            let Some((ok, log)) = compile(&cuda::mlx_module(&functions)) else {
                eprintln!("NVRTC has no wheel for this platform: not checked");
                return;
            };
            assert!(ok, "{} {} does not compile:\n{log}", k.name, dtype.name());
            for l in &launches {
                let (stack, stores, loads, regs) = resources(&log, &l.name);
                assert_eq!((stack, stores, loads), (0, 0, 0), "{}: stack/spills", l.what);
                assert!(
                    regs * l.threads_per_block <= 65536,
                    "{}: {regs} registers x {} threads do not fit an SM",
                    l.what,
                    l.threads_per_block
                );
            }
        }
    }
}

/// The check fails where it should: an undeclared name does not compile, and a launch
/// outside the tuner's space (two bf16 rows of 8192 held by 32 threads) spills.
#[test]
fn the_check_fails_where_it_should() {
    let Some((ok, log)) = compile("__global__ void f(float* out) { out[0] = missing; }") else { return };
    assert!(!ok);
    assert!(log.contains("missing"), "{log}");
    let k = residual_rms_norm(Dtype::Bfloat16);
    let p = Params { vec: 8, threads: 32, rows_per_block: 1, unroll: 1 };
    let (ok, log) =
        compile(&cuda::mlx_module(&cuda::mlx_function("so_check_0", &k, Dtype::Bfloat16, 8192, &p))).unwrap();
    assert!(ok, "{log}");
    let (_, stores, _, _) = resources(&log, "so_check_0");
    assert!(stores > 0, "{log}");
}

/// The quantized products (gate/up with SwiGLU, one product, the combine; gathered and dense) compile for sm_90 at
/// every width MLX packs, in every float dtype, in every layout the launcher may pick, without spilling.
#[test]
fn quantized_products_compile_for_sm90_without_spilling() {
    use superopt_kernel::quantized::{self, Epilogue, Quantized};
    let mut functions = String::new();
    let mut names = vec![];
    for bits in Quantized::BITS {
        for (dtype, epilogue, gathered) in [
            (Dtype::Bfloat16, Epilogue::SwiGlu, true),
            (Dtype::Float32, Epilogue::Product, true),
            (Dtype::Float16, Epilogue::SwiGlu, false),
            (Dtype::Float16, Epilogue::Product, false),
            (Dtype::Bfloat16, Epilogue::Combine, true),
        ] {
            let q = Quantized::new("q", (bits, 64), (2048, 768), (epilogue, gathered), (dtype, dtype)).unwrap();
            for layout in q.layouts(4) {
                let name = format!("so_q_{}", names.len());
                functions += &quantized::mlx_function(&name, &q, 1, layout);
                let (r, nc) = (layout.rows, layout.cols);
                names.push((
                    name,
                    format!("{bits} bits {} {epilogue:?}, gathered {gathered}, R {r}, NC {nc}", dtype.name()),
                ));
            }
        }
    }
    let Some((ok, log)) = compile(&cuda::mlx_module(&functions)) else { return };
    assert!(ok, "the quantized products do not compile:\n{log}");
    for (name, what) in &names {
        let (stack, stores, loads, _) = resources(&log, name);
        assert_eq!((stack, stores, loads), (0, 0, 0), "{what}: stack/spills");
    }
}

/// The solve kernels compile for sm_90 at every matrix size a block holds, in every float
/// dtype, without spilling (each thread keeps its column of up to 64 values in registers).
#[test]
fn solves_compile_for_sm90_without_spilling() {
    use superopt_kernel::solve::{self, Rest, Sign, Solve};
    let mut functions = String::new();
    let mut names = vec![];
    for (n, dtype, form) in [
        (64, Dtype::Float32, (Sign::Minus, Rest::Input)),
        (64, Dtype::Bfloat16, (Sign::Plus, Rest::Identity)),
        (32, Dtype::Float16, (Sign::Plus, Rest::Zero)),
        (16, Dtype::Float32, (Sign::Minus, Rest::Identity)),
    ] {
        let s = Solve::new("s", n, dtype, form).unwrap();
        let name = format!("so_s_{}", names.len());
        functions += &solve::mlx_function(&name, &s);
        names.push((name, format!("{n} x {n} {} {form:?}", dtype.name()), n as u32));
    }
    let Some((ok, log)) = compile(&cuda::mlx_module(&functions)) else { return };
    assert!(ok, "the solves do not compile:\n{log}");
    for (name, what, threads) in &names {
        let (stack, stores, loads, regs) = resources(&log, name);
        assert_eq!((stack, stores, loads), (0, 0, 0), "{what}: stack/spills");
        assert!(regs * threads <= 65536, "{what}: {regs} registers");
    }
}

/// A recurrence kernel (the delta rule's step, lines of 128 shared by 8 threads, and of 16
/// kept by one) compiles for sm_90 with its lines in registers: no spills, no stack.
#[test]
fn recurrences_compile_for_sm90_without_spilling() {
    use superopt_kernel::ir::{Inst, Op};
    use superopt_kernel::scan::{self, Access, Scan, StepOut};
    use superopt_kernel::Reduce;
    let i = |op: Op, args: &[usize]| Inst { op, args: args.to_vec() };
    let mut functions = String::new();
    let mut names = vec![];
    for (line, dtype) in [(128, Dtype::Float32), (128, Dtype::Bfloat16), (16, Dtype::Float32), (1024, Dtype::Float32)] {
        let access = |step, strides: &[i64]| Access { dtype, offset: 0, step, strides: strides.to_vec() };
        let s = Scan {
            name: "scan".into(),
            shape: vec![32, line, 128],
            dtype,
            axis: 1,
            steps: 64,
            operands: vec![
                Access { dtype, offset: 0, step: 0, strides: vec![line * 128, 128, 1] },
                access(64, &[1, 0, 0]),
                access(64 * line, &[64 * line, 1, 0]),
                access(64 * 128, &[64 * 128, 0, 1]),
            ],
            insts: vec![
                i(Op::Input(0), &[]),
                i(Op::Input(1), &[]),
                i(Op::Binary(Binary::Mul), &[0, 1]),
                i(Op::Input(2), &[]),
                i(Op::Binary(Binary::Mul), &[2, 3]),
                i(Op::Reduce(Reduce::Sum), &[4]),
                i(Op::Input(3), &[]),
                i(Op::Binary(Binary::Sub), &[6, 5]),
                i(Op::Binary(Binary::Mul), &[3, 7]),
                i(Op::Binary(Binary::Add), &[2, 8]),
                i(Op::Binary(Binary::Mul), &[9, 3]),
                i(Op::Reduce(Reduce::Sum), &[10]),
            ],
            next: 9,
            outputs: vec![StepOut { value: 11, dtype, shape: vec![32, 128], strides: vec![128, 0, 1] }],
        };
        let name = format!("so_scan_{}", names.len());
        functions += &scan::mlx_function(&name, &s);
        names.push((name, format!("lines of {line} ({} per thread), {}", line / s.split(), dtype.name())));
    }
    let Some((ok, log)) = compile(&cuda::mlx_module(&functions)) else { return };
    assert!(ok, "the recurrences do not compile:\n{log}");
    for (name, what) in &names {
        let (stack, stores, loads, regs) = resources(&log, name);
        assert_eq!((stack, stores, loads), (0, 0, 0), "{what}: stack/spills ({regs} registers)");
        assert!(regs * scan::BLOCK as u32 <= 65536, "{what}: {regs} registers");
    }
}
