//! The generated source of the standard kernels, CUDA and Metal from the same kernel IR,
//! and the Python that launches them. Review changes with `cargo insta review`.

use std::collections::BTreeMap;
use superopt_ir::Dtype;
use superopt_kernel::{cuda, launch, library, metal, reference, Kernel, Params, Target};

fn standard() -> Vec<(&'static str, Kernel)> {
    vec![
        ("rms_norm", library::rms_norm_kernel(Dtype::Float32).unwrap()),
        ("layer_norm", library::layer_norm_kernel(Dtype::Float32).unwrap()),
        ("softmax", library::softmax_kernel(Dtype::Float32).unwrap()),
        ("swiglu", library::swiglu_kernel(Dtype::Bfloat16).unwrap()),
    ]
}

#[test]
fn cuda_sources() {
    for (name, k) in standard() {
        insta::assert_snapshot!(format!("cuda_{name}"), cuda::source(&k));
    }
}

#[test]
fn metal_sources() {
    for (name, k) in standard() {
        insta::assert_snapshot!(format!("metal_{name}"), metal::source(&k));
    }
}

#[test]
fn cuda_launcher_with_tuned_parameters() {
    let k = library::rms_norm_kernel(Dtype::Bfloat16).unwrap();
    let tuned = BTreeMap::from([((8192, 8192), Params { vec: 8, threads: 512, rows_per_block: 1, unroll: 1 })]);
    insta::assert_snapshot!(launch::launcher(&k, 0, Target::Cuda, &tuned));
}

#[test]
fn elementwise_launcher_for_metal() {
    let k = library::swiglu_kernel(Dtype::Float32).unwrap();
    insta::assert_snapshot!(launch::launcher(&k, 1, Target::Metal, &BTreeMap::new()));
}

#[test]
fn reference_launcher() {
    let k = library::layer_norm_kernel(Dtype::Bfloat16).unwrap();
    insta::assert_snapshot!(reference::launcher(&k, 0));
}

#[test]
fn headers() {
    insta::assert_snapshot!("cuda_header", cuda::HEADER);
    insta::assert_snapshot!("metal_header", metal::HEADER);
}

/// MLX reuses a compiled kernel by name and template alone: another eps must be another name.
#[test]
fn kernels_with_other_sources_get_other_names() {
    use superopt_kernel::ir::{Builder, Form, Layout};
    let rms = |eps: f64| {
        let mut b = Builder::new("rms_norm", Form::Rows);
        let x = b.input("x", Layout::Full);
        let y = library::rms_norm(&mut b, x, None, eps);
        b.output("out", Layout::Full, Dtype::Float32, y);
        b.finish().unwrap()
    };
    let name = |k: &Kernel, t: Target| {
        let text = launch::launcher(k, 0, t, &BTreeMap::new());
        text.lines().find(|l| l.contains("name=")).unwrap().trim().to_string()
    };
    for t in [Target::Cuda, Target::Metal] {
        assert_eq!(name(&rms(1e-5), t), name(&rms(1e-5), t));
        assert_ne!(name(&rms(1e-5), t), name(&rms(1e-6), t));
    }
}

/// Qwen3-30B-A3B's experts: 4-bit gate/up with SwiGLU, gathered, and the down projection
/// with the top-k combine; a dense 8-bit product.
#[test]
fn quantized_sources_and_launchers() {
    use superopt_kernel::quantized::{self, Epilogue, Quantized};
    let moe = (Dtype::Bfloat16, Dtype::Bfloat16);
    let gate_up = Quantized::new("gate_up", (4, 64), (2048, 768), (Epilogue::SwiGlu, true), moe).unwrap();
    let combine = Quantized::new("down", (4, 64), (768, 2048), (Epilogue::Combine, true), moe).unwrap();
    let f32 = (Dtype::Float32, Dtype::Float32);
    let dense = Quantized::new("down", (8, 32), (768, 2048), (Epilogue::Product, false), f32).unwrap();
    for (name, q) in [("gate_up", &gate_up), ("dense", &dense), ("combine", &combine)] {
        insta::assert_snapshot!(format!("quantized_cuda_{name}"), quantized::cuda_source(q));
        insta::assert_snapshot!(format!("quantized_metal_{name}"), quantized::metal_source(q));
    }
    insta::assert_snapshot!(
        "quantized_cuda_launcher",
        quantized::launcher(&gate_up, 0, Target::Cuda, &Default::default())
    );
    insta::assert_snapshot!(
        "quantized_cuda_combine_launcher",
        quantized::launcher(&combine, 2, Target::Cuda, &Default::default())
    );
    insta::assert_snapshot!("quantized_mlx_launcher", quantized::launcher(&dense, 1, Target::Mlx, &Default::default()));
    insta::assert_snapshot!(
        "quantized_mlx_combine_launcher",
        quantized::launcher(&combine, 3, Target::Mlx, &Default::default())
    );
}

/// The unit lower-triangular solve of chunked linear attention (64 x 64 matrices):
/// `(I + L)^-1` whole in bfloat16, and `(I - L)^-1` below the diagonal with the input's
/// entries elsewhere (an in-place substitution) in float32.
#[test]
fn solve_sources_and_launchers() {
    use superopt_kernel::solve::{self, Rest, Sign, Solve};
    let whole = Solve::new("s0", 64, Dtype::Bfloat16, (Sign::Plus, Rest::Identity)).unwrap();
    let in_place = Solve::new("s1", 64, Dtype::Float32, (Sign::Minus, Rest::Input)).unwrap();
    for (name, s) in [("whole", &whole), ("in_place", &in_place)] {
        insta::assert_snapshot!(format!("solve_cuda_{name}"), solve::cuda_source(s));
        insta::assert_snapshot!(format!("solve_metal_{name}"), solve::metal_source(s));
    }
    insta::assert_snapshot!("solve_cuda_launcher", solve::launcher(&whole, 0, Target::Cuda));
    insta::assert_snapshot!("solve_mlx_launcher", solve::launcher(&in_place, 1, Target::Mlx));
}

/// One step of the delta rule on a state `[4, 128]` (lines of 128 along axis 1, 8 threads
/// each): `s = s * a_t; p = sum(s * k_t); s += k_t * (v_t - p)`, `p` written every step as
/// bfloat16.
#[test]
fn scan_sources_and_launchers() {
    use superopt_kernel::ir::{Inst, Op};
    use superopt_kernel::scan::{self, Access, Scan, StepOut};
    use superopt_kernel::{Binary, Reduce};
    let i = |op: Op, args: &[usize]| Inst { op, args: args.to_vec() };
    let access = |dtype, step, strides: &[i64]| Access { dtype, offset: 0, step, strides: strides.to_vec() };
    let s = Scan {
        name: "scan0".into(),
        shape: vec![4, 128],
        dtype: Dtype::Float32,
        axis: 1,
        steps: 32,
        operands: vec![
            access(Dtype::Float32, 0, &[128, 1]),
            access(Dtype::Bfloat16, 1, &[32, 0]),
            access(Dtype::Bfloat16, 128, &[4096, 1]),
            access(Dtype::Float32, 1, &[32, 0]),
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
            i(Op::Cast(Dtype::Bfloat16), &[5]),
        ],
        next: 9,
        outputs: vec![StepOut { value: 10, dtype: Dtype::Bfloat16, shape: vec![4], strides: vec![1, 0] }],
    };
    insta::assert_snapshot!("scan_cuda", scan::cuda_source(&s));
    insta::assert_snapshot!("scan_metal", scan::metal_source(&s));
    insta::assert_snapshot!("scan_cuda_launcher", scan::launcher(&s, 0, Target::Cuda));
    insta::assert_snapshot!("scan_mlx_launcher", scan::launcher(&s, 1, Target::Mlx));
}
