//! Prints the compilation unit of one quantized product kernel at Qwen3-30B-A3B's expert
//! dims, as MLX's CUDA backend would compile it (for NVRTC and a disassembler):
//! `cargo run -p superopt-kernel --example quantized_unit -- gate_up|down|down_combine W/R/C M`

use superopt_ir::Dtype;
use superopt_kernel::cuda;
use superopt_kernel::quantized::{mlx_function, Epilogue, Layout, Quantized};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (k, n, epilogue) = match args[0].as_str() {
        "gate_up" => (2048, 768, Epilogue::SwiGlu),
        "down" => (768, 2048, Epilogue::Product),
        _ => (768, 2048, Epilogue::Combine),
    };
    let l: Vec<u32> = args[1].split('/').map(|v| v.parse().unwrap()).collect();
    let q = Quantized::new(&args[0], (4, 64), (k, n), (epilogue, true), (Dtype::Bfloat16, Dtype::Bfloat16)).unwrap();
    let layout = Layout { warps: l[0], rows: l[1], cols: l[2] };
    print!("{}", cuda::mlx_module(&mlx_function("so_k", &q, args[2].parse().unwrap(), layout)));
}
