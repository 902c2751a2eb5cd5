//! Prints a Python module with the standard kernels (RMSNorm, LayerNorm, softmax,
//! SwiGLU; float32 and bfloat16 outputs) and their launchers, for checking the emitters
//! on a device by hand: `cargo run -p superopt-kernel --example standard -- cuda > k.py`.

use std::collections::BTreeMap;
use superopt_ir::Dtype;
use superopt_kernel::{launch, library, Target};

fn main() {
    let target = match std::env::args().nth(1).as_deref() {
        Some("metal") => Target::Metal,
        _ => Target::Cuda,
    };
    print!("import mlx.core as mx\n\n{}", launch::preamble(target));
    type Maker = fn(Dtype) -> Result<superopt_kernel::Kernel, superopt_kernel::ir::Invalid>;
    let makers: [(&str, Maker); 4] = [
        ("rms_norm", library::rms_norm_kernel),
        ("layer_norm", library::layer_norm_kernel),
        ("softmax", library::softmax_kernel),
        ("swiglu", library::swiglu_kernel),
    ];
    let mut index = 0;
    let mut names = vec![];
    for (name, make) in makers {
        for dtype in [Dtype::Float32, Dtype::Bfloat16] {
            let k = make(dtype).expect("a standard kernel is valid");
            print!("{}", launch::launcher(&k, index, target, &BTreeMap::new()));
            names.push(format!("({name:?}, {:?}, _k{index})", dtype.name()));
            index += 1;
        }
    }
    println!("KERNELS = [{}]", names.join(", "));
}
