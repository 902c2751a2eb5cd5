//! The shapes an emitted program was verified for.
//!
//! The emitted module checks its inputs against the guard and calls the original
//! function for anything else, so it is never run on a shape it was not built for.

use crate::{Dim, DimTerm, Dtype};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputGuard {
    pub dtype: Dtype,
    /// Per axis: `Some(n)` where every trace had `n`, `None` where it varies.
    pub dims: Vec<Option<i64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    pub inputs: Vec<InputGuard>,
    /// Varying dimensions that were equal in every trace, and must stay equal.
    pub ties: Vec<(DimTerm, DimTerm)>,
    /// Forms that each explained one traced integer (the program uses the first): it holds
    /// only where they agree.
    #[serde(default)]
    pub agree: Vec<(Dim, Dim)>,
    /// `a <= b` for each pair: a slice's bounds inside its input, as in every trace (past
    /// them, Python clips the slice, and the program's shapes no longer hold).
    #[serde(default)]
    pub within: Vec<(Dim, Dim)>,
    /// Varying dims that change from one call to the next where fn runs (the harness's
    /// `STEP_DIMS`: a KV cache's length in a decode loop): nothing that follows them is compiled.
    #[serde(default)]
    pub steps: Vec<DimTerm>,
    /// Each varying dim's traced values: the program runs only between the least and the
    /// most, and on multiples of their common divisor (see [`Span`]).
    #[serde(default)]
    pub spans: Vec<Span>,
}

/// What the traces say of a varying dim. Python in fn may depend on a length in ways no
/// traced size shows: a tail dropped by `x[:, :(t // P) * P]` (a no-op, so no slice, where
/// every size was a multiple of P), a reshape into patches, a rope base that changes past a
/// threshold above the largest size. The program is held to the lengths the traces vouch
/// for best: between the least and the most traced, and multiples of every traced one's
/// common divisor (a step dim, which takes every value in a decode loop, need not be).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub term: DimTerm,
    pub lo: i64,
    pub hi: i64,
    pub multiple: i64,
}

impl Span {
    /// The span of a dim traced at `vals`.
    pub fn of(term: DimTerm, vals: &[i64]) -> Span {
        let gcd = |a: i64, b: i64| {
            let (mut a, mut b) = (a.abs(), b.abs());
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let multiple = vals.iter().fold(0, |g, v| gcd(g, *v)).max(1);
        let (lo, hi) = (vals.iter().min().copied().unwrap_or(0), vals.iter().max().copied().unwrap_or(0));
        Span { term, lo, hi, multiple }
    }

    pub fn holds(&self, n: i64) -> bool {
        self.lo <= n && n <= self.hi && n % self.multiple == 0
    }
}

impl Guard {
    /// The guard that admits exactly these input shapes and dtypes.
    pub fn exact(shapes: &[(Vec<i64>, Dtype)]) -> Guard {
        let inputs =
            shapes.iter().map(|(s, d)| InputGuard { dtype: *d, dims: s.iter().map(|n| Some(*n)).collect() }).collect();
        Guard { inputs, ties: vec![], agree: vec![], within: vec![], steps: vec![], spans: vec![] }
    }

    pub fn admits(&self, shapes: &[(Vec<i64>, Dtype)]) -> bool {
        if shapes.len() != self.inputs.len() {
            return false;
        }
        let each = self.inputs.iter().zip(shapes).all(|(g, (s, d))| {
            g.dtype == *d
                && g.dims.len() == s.len()
                && g.dims.iter().zip(s).all(|(want, got)| want.is_none_or(|w| w == *got))
        });
        let dims: Vec<Vec<i64>> = shapes.iter().map(|(s, _)| s.clone()).collect();
        each && self.ties.iter().all(|(a, b)| shapes[a.input].0[a.axis] == shapes[b.input].0[b.axis])
            && self.agree.iter().all(|(a, b)| a.eval(&dims).is_some_and(|x| b.eval(&dims) == Some(x)))
            && self.within.iter().all(|(a, b)| a.eval(&dims).zip(b.eval(&dims)).is_some_and(|(x, y)| x <= y))
            && self.spans.iter().all(|s| s.holds(shapes[s.term.input].0[s.term.axis]))
    }

    /// Sets `steps` to those of `dims` that vary here, and every dim tied to one (it must
    /// stay equal, so it changes at every call too).
    pub fn set_steps(&mut self, dims: &[DimTerm]) {
        let varying = self.varying();
        let mut steps: Vec<DimTerm> = dims.iter().filter(|t| varying.contains(t)).copied().collect();
        while let Some(t) = self.ties.iter().find_map(|(a, b)| {
            let other = if steps.contains(a) {
                b
            } else if steps.contains(b) {
                a
            } else {
                return None;
            };
            (!steps.contains(other)).then_some(*other)
        }) {
            steps.push(t);
        }
        for s in self.spans.iter_mut().filter(|s| steps.contains(&s.term)) {
            s.multiple = 1;
        }
        self.steps = steps;
    }

    /// The dimensions that vary.
    pub fn varying(&self) -> Vec<DimTerm> {
        let mut out = vec![];
        for (input, g) in self.inputs.iter().enumerate() {
            for (axis, d) in g.dims.iter().enumerate() {
                if d.is_none() {
                    out.push(DimTerm { input, axis });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_varying_dims_and_checks_fixed_ones_and_ties() {
        let g = Guard {
            inputs: vec![
                InputGuard { dtype: Dtype::Float32, dims: vec![None, Some(64)] },
                InputGuard { dtype: Dtype::Float32, dims: vec![None] },
            ],
            ties: vec![(DimTerm { input: 0, axis: 0 }, DimTerm { input: 1, axis: 0 })],
            agree: vec![],
            within: vec![],
            steps: vec![],
            spans: vec![],
        };
        let f = Dtype::Float32;
        assert!(g.admits(&[(vec![7, 64], f), (vec![7], f)]));
        assert!(!g.admits(&[(vec![7, 65], f), (vec![7], f)]), "fixed dim");
        assert!(!g.admits(&[(vec![7, 64], f), (vec![8], f)]), "tie");
        assert!(!g.admits(&[(vec![7, 64], Dtype::Float16), (vec![7], f)]), "dtype");
        assert!(!g.admits(&[(vec![7, 64, 1], f), (vec![7], f)]), "rank");
        assert_eq!(g.varying().len(), 2);
    }

    fn room_all() -> Dim {
        Dim { terms: vec![DimTerm { input: 0, axis: 0 }], num: 1, den: 1, offset: 0 }
    }

    #[test]
    fn admits_only_where_the_forms_agree_and_slices_stay_inside() {
        let held = Dim { terms: vec![DimTerm { input: 1, axis: 0 }], num: 1, den: 1, offset: 0 };
        let room = Dim { terms: vec![DimTerm { input: 0, axis: 0 }], num: 1, den: 1, offset: -256 };
        let f = Dtype::Float32;
        let g = Guard {
            inputs: vec![InputGuard { dtype: f, dims: vec![None] }, InputGuard { dtype: f, dims: vec![None] }],
            ties: vec![],
            agree: vec![(room, held.clone())],
            within: vec![(Dim { offset: 1, ..held }, Dim { offset: 0, ..room_all() })],
            steps: vec![],
            spans: vec![],
        };
        assert!(g.admits(&[(vec![512], f), (vec![256], f)]));
        assert!(!g.admits(&[(vec![512], f), (vec![300], f)]), "the forms disagree");
        let g = Guard { agree: vec![], ..g };
        assert!(g.admits(&[(vec![512], f), (vec![511], f)]));
        assert!(!g.admits(&[(vec![512], f), (vec![512], f)]), "held + 1 <= capacity");
    }

    #[test]
    fn a_step_dim_brings_the_dims_tied_to_it() {
        let f = Dtype::Float32;
        let t = |input, axis| DimTerm { input, axis };
        let mut g = Guard {
            inputs: vec![
                InputGuard { dtype: f, dims: vec![None, None] },
                InputGuard { dtype: f, dims: vec![None, Some(4)] },
            ],
            ties: vec![(t(0, 1), t(1, 0))],
            agree: vec![],
            within: vec![],
            steps: vec![],
            spans: vec![],
        };
        g.set_steps(&[t(1, 0), t(1, 1)]);
        assert_eq!(g.steps, [t(1, 0), t(0, 1)], "fixed dims never change; tied ones do");
        g.set_steps(&[t(0, 0)]);
        assert_eq!(g.steps, [t(0, 0)], "a near miss: nothing tied to it");
    }
}
