//! Recurrence kernels in the field (`crates/kernel/src/scan.rs`): the steps one after
//! another, each instruction as the primitive it stands for, on whole arrays in the
//! state's frame.

use super::arith::Elem;
use super::eval::{Data, Interp, Tensor, Unfit};
use superopt_ir::Dtype;
use superopt_kernel::scan::{Access, Scan};

/// The kernel on `ins` (the initial state's array, then each operand's): the final state
/// and each step output stacked over the steps.
pub(super) fn kernel(me: &mut Interp, s: &Scan, ins: &[&Tensor], shapes: &[Vec<i64>]) -> Result<Vec<Tensor>, Unfit> {
    for (a, x) in s.operands.iter().zip(ins) {
        let last = a.offset
            + (s.steps - 1) * a.step
            + (0..s.shape.len()).map(|d| (s.shape[d] - 1) * a.strides[d]).sum::<i64>();
        let numel: usize = x.shape.iter().product();
        if a.offset < 0 || last as usize >= numel {
            return Err("a recurrence operand read outside its array".into());
        }
    }
    let shape: Vec<usize> = s.shape.iter().map(|d| *d as usize).collect();
    let read = |j: usize, t: i64| read(s, &s.operands[j], ins[j], t);
    let mut state = read(0, 0).broadcast_to(&shape);
    let mut stacked: Vec<Vec<Option<Elem>>> =
        s.outputs.iter().map(|o| vec![None; (s.steps * size(&o.shape)) as usize]).collect();
    for t in 0..s.steps {
        let input = |i: usize| if i == 0 { state.clone() } else { read(i, t) };
        let vals = me.insts(&s.insts, &input, s.axis, s.line() as f64, shapes)?;
        for (o, out) in s.outputs.iter().zip(stacked.iter_mut()) {
            let full: Vec<usize> = (0..shape.len()).map(|d| if o.strides[d] != 0 { shape[d] } else { 1 }).collect();
            let v = vals[o.value].broadcast_to(&full).field()?;
            let base = t * size(&o.shape);
            for (i, e) in v.into_iter().enumerate() {
                let at = base + flat_at(i, &full, &o.strides);
                out[at as usize] = Some(e);
            }
        }
        state = vals[s.next].broadcast_to(&shape);
    }
    let mut outs = vec![state];
    for (o, out) in s.outputs.iter().zip(stacked) {
        let data = out.into_iter().collect::<Option<Vec<Elem>>>().ok_or("a recurrence output left unwritten")?;
        let mut dims = vec![s.steps as usize];
        dims.extend(o.shape.iter().map(|d| *d as usize));
        outs.push(Tensor { shape: dims, dtype: Dtype::Float32, data: Data::Field(data) });
    }
    Ok(outs)
}

fn size(shape: &[i64]) -> i64 {
    shape.iter().product()
}

/// The offset `strides` give element `i` of an array of `shape` (row-major).
fn flat_at(mut i: usize, shape: &[usize], strides: &[i64]) -> i64 {
    let mut at = 0;
    for d in (0..shape.len()).rev() {
        at += (i % shape[d]) as i64 * strides[d];
        i /= shape[d];
    }
    at
}

/// Operand `a` at step `t`, in the state's frame (extent 1 where it does not vary), float32.
fn read(s: &Scan, a: &Access, x: &Tensor, t: i64) -> Tensor {
    let frame: Vec<usize> =
        (0..s.shape.len()).map(|d| if a.strides[d] != 0 { s.shape[d] as usize } else { 1 }).collect();
    let strides: Vec<i64> = (0..s.shape.len()).map(|d| if a.strides[d] != 0 { a.strides[d] } else { 0 }).collect();
    let start = a.offset + t * a.step;
    let picked =
        x.remap(frame, |c| (start + c.iter().zip(&strides).map(|(i, st)| *i as i64 * st).sum::<i64>()) as usize);
    Tensor { dtype: Dtype::Float32, ..picked }
}
