//! Integers that may depend on the inputs' dimensions.
//!
//! A traced program holds concrete integers (shapes in `Reshape`, `Broadcast`,
//! `Slice`...). Tracing at several sizes shows which of them vary; each one that
//! varies is written as `prod(input dims) * num / den + offset` so the emitted
//! program reads it from the inputs' shapes at call time.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Axis `axis` of array input number `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DimTerm {
    pub input: usize,
    pub axis: usize,
}

/// `prod(terms) * num / den + offset` (integer division, exact on every trace).
/// With no terms, the constant `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dim {
    pub terms: Vec<DimTerm>,
    pub num: i64,
    pub den: i64,
    pub offset: i64,
}

impl Dim {
    pub fn constant(v: i64) -> Dim {
        Dim { terms: vec![], num: 1, den: 1, offset: v }
    }

    pub fn as_const(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.offset)
    }

    /// The value for inputs of these shapes.
    pub fn eval(&self, shapes: &[Vec<i64>]) -> Option<i64> {
        if self.terms.is_empty() {
            return Some(self.offset);
        }
        let mut p: i64 = 1;
        for t in &self.terms {
            p *= *shapes.get(t.input)?.get(t.axis)?;
        }
        let scaled = p * self.num;
        (scaled % self.den == 0).then(|| scaled / self.den + self.offset)
    }

    /// `prod(numer) / prod(denom)` as one `Dim`, where every dim is a product (no offset;
    /// a constant counts as its value) and `denom`'s terms are among `numer`'s: a reshape's
    /// `-1`, the input's dims over the others. `None` where it is not so expressible.
    pub fn quotient(numer: &[Dim], denom: &[Dim]) -> Option<Dim> {
        let parts = |d: &Dim| match d.as_const() {
            Some(v) => (v > 0).then(|| (vec![], v, 1)),
            None => (d.offset == 0).then(|| (d.terms.clone(), d.num, d.den)),
        };
        let (mut terms, mut num, mut den) = (vec![], 1i64, 1i64);
        for d in numer {
            let (t, n, dd) = parts(d)?;
            terms.extend(t);
            (num, den) = (num.checked_mul(n)?, den.checked_mul(dd)?);
        }
        for d in denom {
            let (t, n, dd) = parts(d)?;
            for x in t {
                terms.remove(terms.iter().position(|y| *y == x)?);
            }
            (num, den) = (num.checked_mul(dd)?, den.checked_mul(n)?);
        }
        let g = gcd(num, den).abs().max(1);
        (num, den) = (num / g, den / g);
        terms.sort();
        match terms.is_empty() {
            true => (num % den == 0).then(|| Dim::constant(num / den)),
            false => Some(Dim { terms, num, den, offset: 0 }),
        }
    }

    /// Finds a `Dim` equal to `values[k]` for the inputs' shapes of trace `k`.
    /// Only dimensions in `varying` may appear. Returns `None` if no form fits.
    pub fn fit(values: &[i64], shapes: &[Vec<Vec<i64>>], varying: &[DimTerm]) -> Option<Dim> {
        Dim::fits(values, shapes, varying).into_iter().next()
    }

    /// Every `Dim` that `fit` could return, simplest first. More than one means the traces
    /// cannot tell them apart: a program that uses the first holds only where all agree.
    pub fn fits(values: &[i64], shapes: &[Vec<Vec<i64>>], varying: &[DimTerm]) -> Vec<Dim> {
        if values.windows(2).all(|w| w[0] == w[1]) {
            return vec![Dim::constant(values[0])];
        }
        let mut out = vec![];
        for terms in products(varying, 3) {
            let prods: Vec<i64> = shapes.iter().map(|s| terms.iter().map(|t| s[t.input][t.axis]).product()).collect();
            out.extend(fit_affine(values, &prods, &terms));
        }
        out
    }

    /// Python source, with `dim(t)` giving the source of one input dimension.
    pub fn render(&self, dim: &dyn Fn(DimTerm) -> String) -> String {
        if self.terms.is_empty() {
            return self.offset.to_string();
        }
        let mut s = self.terms.iter().map(|t| dim(*t)).collect::<Vec<_>>().join(" * ");
        if self.num != 1 {
            s = format!("{s} * {}", self.num);
        }
        if self.den != 1 {
            s = format!("{s} // {}", self.den);
        }
        match self.offset {
            0 => s,
            o if o > 0 => format!("{s} + {o}"),
            o => format!("{s} - {}", -o),
        }
    }
}

fn fit_affine(values: &[i64], prods: &[i64], terms: &[DimTerm]) -> Option<Dim> {
    let make = |num, den, offset| Dim { terms: terms.to_vec(), num, den, offset };
    let (v0, p0) = (values[0], prods[0]);
    if p0 == 0 {
        return None;
    }
    // v = p * num / den
    let g = gcd(v0.abs(), p0.abs()).max(1);
    let (num, den) = (v0 / g, p0 / g);
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    if num != 0 && values.iter().zip(prods).all(|(v, p)| (p * num) % den == 0 && p * num / den == *v) {
        return Some(make(num, den, 0));
    }
    // v = p + offset
    let offset = v0 - p0;
    if values.iter().zip(prods).all(|(v, p)| v - p == offset) {
        return Some(make(1, 1, offset));
    }
    None
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Multisets of at most `max` terms, smallest first.
fn products(varying: &[DimTerm], max: usize) -> Vec<Vec<DimTerm>> {
    let mut out: Vec<Vec<DimTerm>> = vec![];
    let mut frontier: Vec<Vec<DimTerm>> = vec![vec![]];
    for _ in 0..max {
        let mut next = vec![];
        for base in &frontier {
            let start = base.last().map_or(0, |l| varying.iter().position(|t| t == l).unwrap());
            for t in &varying[start..] {
                let mut v = base.clone();
                v.push(*t);
                next.push(v);
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&|t| format!("in{}.shape[{}]", t.input, t.axis)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quotient_of_products_cancels_terms_and_constants() {
        let t = |axis| DimTerm { input: 0, axis };
        let d = |terms: Vec<DimTerm>, num, den| Dim { terms, num, den, offset: 0 };
        // (B * T * 4 * 32) / (B * T * 4) = 32; (T * 128) / 4 = T * 32.
        let b_t_128 = [d(vec![t(0)], 1, 1), d(vec![t(1)], 1, 1), Dim::constant(128)];
        assert_eq!(
            Dim::quotient(&b_t_128, &[d(vec![t(0)], 1, 1), d(vec![t(1)], 1, 1), Dim::constant(4)]),
            Some(Dim::constant(32))
        );
        assert_eq!(Dim::quotient(&b_t_128[1..], &[Dim::constant(4)]), Some(d(vec![t(1)], 32, 1)));
        // A term not in the numerator, an offset, or a constant that does not divide: none.
        assert_eq!(Dim::quotient(&[Dim::constant(128)], &[d(vec![t(1)], 1, 1)]), None);
        assert_eq!(Dim::quotient(&[Dim { offset: 1, ..d(vec![t(1)], 1, 1) }], &[Dim::constant(2)]), None);
        assert_eq!(Dim::quotient(&[Dim::constant(6)], &[Dim::constant(4)]), None);
    }

    fn t(input: usize, axis: usize) -> DimTerm {
        DimTerm { input, axis }
    }

    #[test]
    fn constant_when_all_traces_agree() {
        let d = Dim::fit(&[64, 64, 64], &[vec![], vec![], vec![]], &[]).unwrap();
        assert_eq!(d.as_const(), Some(64));
    }

    #[test]
    fn finds_products_quotients_and_offsets() {
        // input 0 has shape (B, T, 64) with B = 1, 2, 4 and T = 16, 32, 128.
        let shapes = vec![vec![vec![1, 16, 64]], vec![vec![2, 32, 64]], vec![vec![4, 128, 64]]];
        let varying = [t(0, 0), t(0, 1)];
        let bt = Dim::fit(&[16, 64, 512], &shapes, &varying).unwrap();
        assert_eq!(bt.to_string(), "in0.shape[0] * in0.shape[1]");
        let half = Dim::fit(&[8, 16, 64], &shapes, &varying).unwrap();
        assert_eq!(half.to_string(), "in0.shape[1] // 2");
        let last = Dim::fit(&[15, 31, 127], &shapes, &varying).unwrap();
        assert_eq!(last.to_string(), "in0.shape[1] - 1");
        let heads = Dim::fit(&[128, 256, 1024], &shapes, &varying).unwrap();
        assert_eq!(heads.to_string(), "in0.shape[1] * 8");
        for (k, s) in shapes.iter().enumerate() {
            assert_eq!(bt.eval(s), Some([16, 64, 512][k]));
        }
    }

    #[test]
    fn every_form_the_traces_cannot_tell_apart() {
        // A KV cache: positions held (input 1) and the buffer's capacity (input 0, axis 2).
        let shape = |held: i64, capacity: i64| vec![vec![1, 4, capacity, 128], vec![held]];
        let offset_256 = vec![shape(256, 512), shape(1280, 1536), shape(2560, 2816)];
        let varying = [t(0, 2), t(1, 0)];
        let both: Vec<String> =
            Dim::fits(&[256, 1280, 2560], &offset_256, &varying).iter().map(|d| d.to_string()).collect();
        assert_eq!(both, ["in0.shape[2] - 256", "in1.shape[0]"]);
        let apart = vec![shape(256, 512), shape(1124, 1280), shape(2348, 2560)];
        let one: Vec<String> = Dim::fits(&[256, 1124, 2348], &apart, &varying).iter().map(|d| d.to_string()).collect();
        assert_eq!(one, ["in1.shape[0]"]);
    }

    #[test]
    fn no_fit_for_unrelated_values() {
        let shapes = vec![vec![vec![2]], vec![vec![3]], vec![vec![5]]];
        assert!(Dim::fit(&[7, 11, 2], &shapes, &[t(0, 0)]).is_none());
    }
}
