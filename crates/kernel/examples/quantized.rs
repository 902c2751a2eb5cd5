//! Prints a Python module with the quantized product kernels at Qwen3-30B-A3B's expert dims
//! (gate/up with SwiGLU: K 2048, N 768; down: K 768, N 2048, alone and with the top-k
//! combine) and Llama-3-8B's dense MLP
//! (K 4096, N 14336 and back), 4-bit in groups of 64, for bfloat16 and float32, for timing
//! them on a device by hand:
//! `cargo run -p superopt-kernel --example quantized -- cuda > q.py`, then
//! `python scripts/gpu-quantized-check.py q.py`.

use superopt_ir::Dtype;
use superopt_kernel::quantized::{launcher, Epilogue, Quantized};
use superopt_kernel::{launch, Target};

fn main() {
    let target = match std::env::args().nth(1).as_deref() {
        Some("metal") => Target::Metal,
        Some("mlx") => Target::Mlx,
        _ => Target::Cuda,
    };
    print!("import mlx.core as mx\n\n{}", launch::preamble(target));
    let mut names = vec![];
    for dtype in [Dtype::Bfloat16, Dtype::Float32] {
        for (name, k, n, epilogue, gathered) in [
            ("gate_up", 2048, 768, Epilogue::SwiGlu, true),
            ("down", 768, 2048, Epilogue::Product, true),
            ("down_combine", 768, 2048, Epilogue::Combine, true),
            ("dense_gate_up", 4096, 14336, Epilogue::SwiGlu, false),
            ("dense_down", 14336, 4096, Epilogue::Product, false),
        ] {
            let kind = (epilogue, gathered);
            let q = Quantized::new(name, (4, 64), (k, n), kind, (dtype, dtype)).expect("a valid product");
            print!("{}", launcher(&q, names.len(), target, &Default::default()));
            names.push(format!("({name:?}, {:?}, {k}, {n}, _k{})", dtype.name(), names.len()));
        }
    }
    println!("KERNELS = [{}]", names.join(", "));
}
