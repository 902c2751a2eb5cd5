//! MLX's affine quantized products in the field: `gather_qmm` and `quantized_matmul` with
//! `transpose=True`, and the generated quantized kernels (`crates/kernel/src/quantized.rs`)
//! as the products and SwiGLU they stand for.
//!
//! A weight is dequantized as `q * scale + bias` (scale and bias per group of the row).
//! Taking `q`, a value's bits out of its packed word, has no field meaning: `q` is an
//! uninterpreted function of the packed word that holds the value's first bit and of the
//! value's place in the row, the same on both sides. So a program that reads other
//! weights, scales or biases (gate and up swapped, another group size) computes another
//! polynomial, while one that reorders the products agrees.

use super::arith::{mix, Elem};
use super::eval::{Data, Interp, Tensor, Unfit};
use superopt_ir::{Arg, Dtype, Node, Op};
use superopt_kernel::quantized::{Epilogue, Quantized};

/// How one product reads its operands.
pub(super) struct Packing {
    pub group: usize,
    pub bits: usize,
}

/// `x[lhs] @ dequantize(w[rhs])^T` (`indices` given), else `x @ dequantize(w)^T`.
pub(super) fn product(
    me: &mut Interp,
    x: &Tensor,
    (w, scales, biases): (&Tensor, &Tensor, &Tensor),
    indices: Option<(&Tensor, &Tensor)>,
    p: Packing,
) -> Result<Tensor, Unfit> {
    me.uf_used("dequantize");
    let Data::Num(words) = &w.data else { return Err("packed weights of field values".into()) };
    let (s, b) = (scales.field()?, biases.field()?);
    let rank = w.shape.len();
    let (n, kp) = (w.shape[rank - 2], w.shape[rank - 1]);
    let k = *x.shape.last().ok_or("a quantized product of a scalar")?;
    if kp * 32 != k * p.bits || p.group == 0 || k % p.group != 0 {
        return Err(format!("packed rows of {kp} words for {k} values of {} bits", p.bits));
    }
    let experts = w.shape[..rank - 2].iter().product::<usize>().max(1);
    let groups = k / p.group;
    let weight = |e: usize, j: usize, i: usize| -> Elem {
        let bit = i * p.bits;
        let word = words[(e * n + j) * kp + bit / 32] as u64;
        let q = Elem::from_u64_pair(mix(word ^ mix(i as u64)) % 1024, mix(word ^ mix(i as u64)) % 1024).uf(0x9e37);
        let g = (e * n + j) * groups + i / p.group;
        q.mul(s[g]).map_or(Elem::ZERO, |v| v.add(b[g]))
    };
    let xs = x.field()?;
    let m = if indices.is_some() { x.shape[x.shape.len() - 2] } else { 1 };
    let rows_of_x = xs.len() / (m * k).max(1);
    let (pairs, shape): (Vec<(usize, usize)>, Vec<usize>) = match indices {
        Some((lhs, rhs)) => {
            let (Data::Num(l), Data::Num(r)) = (&lhs.data, &rhs.data) else {
                return Err("a gather by input-dependent indices".into());
            };
            let at = |v: f64, len: usize| (v >= 0.0 && (v as usize) < len).then_some(v as usize);
            let pairs =
                l.iter().zip(r).map(|(a, c)| Some((at(*a, rows_of_x)?, at(*c, experts)?))).collect::<Option<_>>();
            let pairs = pairs.ok_or("a quantized product's index out of range")?;
            (pairs, [lhs.shape.clone(), vec![m, n]].concat())
        }
        None => ((0..rows_of_x).map(|r| (r, 0)).collect(), [x.shape[..x.shape.len() - 1].to_vec(), vec![n]].concat()),
    };
    let mut cache: Vec<Option<Vec<Elem>>> = vec![None; experts];
    let mut out = Vec::with_capacity(pairs.len() * m * n);
    for (row, e) in pairs {
        let we = cache[e].get_or_insert_with(|| (0..n * k).map(|t| weight(e, t / k, t % k)).collect());
        for r in 0..m {
            let xr = &xs[(row * m + r) * k..(row * m + r + 1) * k];
            for j in 0..n {
                let mut acc = Elem::ZERO;
                for (i, xv) in xr.iter().enumerate() {
                    acc = acc.add(xv.mul(we[j * k + i]).ok_or("a quantized product with -inf")?);
                }
                out.push(acc);
            }
        }
    }
    Ok(Tensor { shape, dtype: x.dtype, data: Data::Field(out) })
}

/// A quantized kernel node on `ins` (x, [lhs, rhs], then each product's weights, scales
/// and biases, then the combine's weights): its products, then SwiGLU as
/// `gate * sigmoid(gate) * up`, or the combine as the weighted sum over the top-k pairs.
pub(super) fn kernel(
    me: &mut Interp,
    q: &Quantized,
    ins: &[&Tensor],
    shapes: &[Vec<i64>],
) -> Result<Vec<Tensor>, Unfit> {
    let first = if q.gathered { 3 } else { 1 };
    let indices = q.gathered.then(|| (ins[1], ins[2]));
    let packing = || Packing { group: q.group_size as usize, bits: q.bits as usize };
    let mut outs = vec![];
    for p in 0..q.epilogue.products() {
        let w = &ins[first + 3 * p..first + 3 * p + 3];
        outs.push(product(me, ins[0], (w[0], w[1], w[2]), indices, packing())?);
    }
    let value = match q.epilogue {
        Epilogue::Product => outs.remove(0),
        Epilogue::Combine => combined(&outs[0], ins.last().ok_or("a combine without weights")?)?,
        Epilogue::SwiGlu => {
            let mut run = |op: Op, xs: &[&Tensor]| -> Result<Tensor, Unfit> {
                let node = Node { op, args: vec![], inputs: vec![], outputs: vec![] };
                Ok(me.apply(&node, xs, Dtype::Float32, shapes)?.remove(0))
            };
            let sig = run(Op::Sigmoid, &[&outs[0]])?;
            let silu = run(Op::Multiply, &[&outs[0], &sig])?;
            run(Op::Multiply, &[&silu, &outs[1]])?
        }
    };
    let cast = Node { op: Op::AsType, args: vec![Arg::Dtype(q.dtype)], inputs: vec![], outputs: vec![] };
    Ok(vec![me.apply(&cast, &[&value], q.dtype, shapes)?.remove(0)])
}

/// `sum_k weights[..., k] * y[..., k, :, :]`: y of shape `P + [1, N]` (one row per pair),
/// the weights of shape `P`; the result `P[:-1] + [1, N]`.
fn combined(y: &Tensor, weights: &Tensor) -> Result<Tensor, Unfit> {
    let (ys, ws) = (y.field()?, weights.field()?);
    let top = *weights.shape.last().ok_or("a combine over no axis")?;
    let n = *y.shape.last().ok_or("a combine of a scalar")?;
    if top == 0 || ys.len() != ws.len() * n {
        return Err(format!("a combine of {:?} by {:?}", y.shape, weights.shape));
    }
    let tokens = ws.len() / top;
    let mut out = vec![Elem::ZERO; tokens * n];
    for (pair, w) in ws.iter().enumerate() {
        for j in 0..n {
            let term = w.mul(ys[pair * n + j]).ok_or("a combine with -inf")?;
            out[(pair / top) * n + j] = out[(pair / top) * n + j].add(term);
        }
    }
    let shape = [&weights.shape[..weights.shape.len() - 1], &[1, n]].concat();
    Ok(Tensor { shape, dtype: y.dtype, data: Data::Field(out) })
}
