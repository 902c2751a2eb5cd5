//! Prints a Python module with the unit lower-triangular solve kernels of chunked linear
//! attention (64 x 64, `(I - L)^-1` whole, float32 and bfloat16), for timing them on a
//! device by hand: `cargo run -p superopt-kernel --example solve -- cuda > s.py`, then
//! `python scripts/gpu-solve-check.py s.py`.

use superopt_ir::Dtype;
use superopt_kernel::solve::{launcher, Rest, Sign, Solve};
use superopt_kernel::{launch, Target};

fn main() {
    let target = match std::env::args().nth(1).as_deref() {
        Some("metal") => Target::Metal,
        Some("mlx") => Target::Mlx,
        _ => Target::Cuda,
    };
    print!("import mlx.core as mx\n\n{}", launch::preamble(target));
    let mut names = vec![];
    for (i, dtype) in [Dtype::Float32, Dtype::Bfloat16].into_iter().enumerate() {
        let s = Solve::new(&format!("solve_{}", dtype.name()), 64, dtype, (Sign::Minus, Rest::Identity))
            .expect("a valid solve");
        print!("{}", launcher(&s, i, target));
        names.push(format!("({:?}, _k{i})", dtype.name()));
    }
    println!("KERNELS = [{}]", names.join(", "));
}
