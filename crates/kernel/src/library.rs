//! Fused operations written in kernel IR: what a fused MLX primitive (RMSNorm,
//! LayerNorm, softmax, logsumexp) lowers to, and the standard kernels the tests and
//! benchmarks name.

use crate::ir::{Binary, Builder, Form, Invalid, Kernel, Layout, Reduce, Unary};
use superopt_ir::Dtype;

/// `x * rsqrt(mean(x^2) + eps) [* w]` over each row.
pub fn rms_norm(b: &mut Builder, x: usize, w: Option<usize>, eps: f64) -> usize {
    let sq = b.unary(Unary::Square, x);
    let ss = b.reduce(Reduce::Sum, sq);
    let n = b.row_len();
    let ms = b.binary(Binary::Div, ss, n);
    let e = b.constant(eps);
    let ms = b.binary(Binary::Add, ms, e);
    let r = b.unary(Unary::Rsqrt, ms);
    let y = b.binary(Binary::Mul, x, r);
    match w {
        Some(w) => b.binary(Binary::Mul, y, w),
        None => y,
    }
}

/// `(x - mean) * rsqrt(var + eps) [* w] [+ bias]`, the variance from a second pass over
/// the centred row (in registers).
pub fn layer_norm(b: &mut Builder, x: usize, w: Option<usize>, bias: Option<usize>, eps: f64) -> usize {
    let n = b.row_len();
    let s = b.reduce(Reduce::Sum, x);
    let mean = b.binary(Binary::Div, s, n);
    let d = b.binary(Binary::Sub, x, mean);
    let sq = b.unary(Unary::Square, d);
    let ss = b.reduce(Reduce::Sum, sq);
    let var = b.binary(Binary::Div, ss, n);
    let e = b.constant(eps);
    let var = b.binary(Binary::Add, var, e);
    let r = b.unary(Unary::Rsqrt, var);
    let mut y = b.binary(Binary::Mul, d, r);
    if let Some(w) = w {
        y = b.binary(Binary::Mul, y, w);
    }
    if let Some(bias) = bias {
        y = b.binary(Binary::Add, y, bias);
    }
    y
}

/// `exp(x - max) / sum(exp(x - max))` over each row.
pub fn softmax(b: &mut Builder, x: usize) -> usize {
    let m = b.reduce(Reduce::Max, x);
    let d = b.binary(Binary::Sub, x, m);
    let e = b.unary(Unary::Exp, d);
    let s = b.reduce(Reduce::Sum, e);
    b.binary(Binary::Div, e, s)
}

/// `max + log(sum(exp(x - max)))` per row, as MLX computes it (a row of -inf gives -inf).
pub fn logsumexp(b: &mut Builder, x: usize) -> usize {
    let m = b.reduce(Reduce::Max, x);
    let d = b.binary(Binary::Sub, x, m);
    let e = b.unary(Unary::Exp, d);
    let s = b.reduce(Reduce::Sum, e);
    let l = b.unary(Unary::Log, s);
    let y = b.binary(Binary::Add, m, l);
    // An all -inf row: max is -inf and x - max is NaN; MLX gives -inf.
    let ninf = b.constant(f64::NEG_INFINITY);
    let is_ninf = b.binary(Binary::Eq, m, ninf);
    b.select(is_ninf, m, y)
}

/// `a * sigmoid(a)`.
pub fn silu(b: &mut Builder, a: usize) -> usize {
    let s = b.unary(Unary::Sigmoid, a);
    b.binary(Binary::Mul, a, s)
}

/// The standard kernels, whole: `x [rows, n]` and, where they have them, `w`/`bias` `[n]`.
pub fn rms_norm_kernel(dtype: Dtype) -> Result<Kernel, Invalid> {
    let mut b = Builder::new("rms_norm", Form::Rows);
    let x = b.input("x", Layout::Full);
    let w = b.input("w", Layout::Col);
    let y = rms_norm(&mut b, x, Some(w), 1e-5);
    b.output("out", Layout::Full, dtype, y);
    b.finish()
}

pub fn layer_norm_kernel(dtype: Dtype) -> Result<Kernel, Invalid> {
    let mut b = Builder::new("layer_norm", Form::Rows);
    let x = b.input("x", Layout::Full);
    let w = b.input("w", Layout::Col);
    let bias = b.input("bias", Layout::Col);
    let y = layer_norm(&mut b, x, Some(w), Some(bias), 1e-5);
    b.output("out", Layout::Full, dtype, y);
    b.finish()
}

pub fn softmax_kernel(dtype: Dtype) -> Result<Kernel, Invalid> {
    let mut b = Builder::new("softmax", Form::Rows);
    let x = b.input("x", Layout::Full);
    let y = softmax(&mut b, x);
    b.output("out", Layout::Full, dtype, y);
    b.finish()
}

/// `silu(a) * b`: SwiGLU's activation.
pub fn swiglu_kernel(dtype: Dtype) -> Result<Kernel, Invalid> {
    let mut b = Builder::new("swiglu", Form::Elementwise);
    let a = b.input("a", Layout::Full);
    let g = b.input("b", Layout::Full);
    let s = silu(&mut b, a);
    let y = b.binary(Binary::Mul, s, g);
    b.output("out", Layout::Full, dtype, y);
    b.finish()
}
