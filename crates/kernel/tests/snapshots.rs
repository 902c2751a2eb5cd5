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
