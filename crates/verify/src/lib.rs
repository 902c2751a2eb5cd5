//! Verification decisions: is a candidate's output close enough to `fn`'s?
//!
//! The worker measures; this crate judges. The default rule is relative to the
//! original's own accuracy: against a float64 reference, the candidate may be no
//! worse than `max(2 x the original's error, 1e-6)`, in relative L2 and in max
//! elementwise terms. Integer and boolean outputs must match exactly, and NaN/Inf
//! positions must be the original's. On an edge input that makes the original itself far
//! less accurate than on the normal seeds (ill-conditioned there: its error above
//! [`ILL_CONDITIONED`] times its worst normal-seed error and above [`ILL_FLOOR`]), or whose
//! float64 outputs move [`ILL_CONDITIONED`] times more than on the normal seeds when the
//! inputs move by one float32 rounding (`sensitivity`: a device whose float32 matmuls round
//! to TF32 makes every error large, which hides the first sign), rounding order alone
//! decides the digits, and the bound is [`ILL_FACTOR`] times its error. Short of that, where
//! the original computes coarser than float32 (its normal-seed error 100 times what
//! float32 rounding explains: TF32 matmuls, half precision), an edge input whose
//! sensitivity is `s` times the normal seeds' gets `2 s / g` times, `g` the growth of the
//! original's own error there (from 2 up to [`ILL_FACTOR`]): a rewrite rounds at other
//! places, and the input amplifies those roundings `s` times more. Where measured, the
//! original's error counts as its rounding spread where that is larger (fn's own program
//! rounding otherwise: [`SPREAD_CAP`]).

pub mod field;

use serde::Serialize;

pub use superopt_worker::protocol::{OutputFigures, SeedFigures, Variant};

/// The edge inputs checked at every size besides the normal seeds ([`Variant::EDGES`]). On
/// the finite ones the candidate may be finite where the original overflowed; NaN/Inf
/// must match everywhere else.
pub const EDGE_VARIANTS: [Variant; 6] = Variant::EDGES;

/// How close is close enough.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "lowercase")]
pub enum Tolerance {
    /// No worse than max(2 x the original's error, 1e-6) against float64.
    Relative,
    /// `|y - o| <= atol + rtol |o|` elementwise against the original's output.
    Fixed { name: &'static str, atol: f64, rtol: f64 },
}

/// The error floor below which every candidate is accepted.
pub const FLOOR: f64 = 1e-6;

/// An edge case is ill-conditioned where the original's error there exceeds this many
/// times its worst error on the normal seeds ...
pub const ILL_CONDITIONED: f64 = 100.0;
/// ... and this much.
pub const ILL_FLOOR: f64 = 1e-5;
/// On an ill-conditioned case, the candidate's error may be this many times the original's.
pub const ILL_FACTOR: f64 = 8.0;

/// How many times its own error the original's rounding spread may make it count: the
/// spread (the worker's `spread`: fn's program with each result it computes moved by up to
/// one float32 rounding at random, against float64) is how far another rounding order of fn
/// goes, where fn's internal values amplify roundings (RoPE's angles: a different rounding of
/// its frequencies moves them up to 127 times more); capped, since a program that cancels
/// its own roundings on purpose gives no licence to a candidate that does not.
pub const SPREAD_CAP: f64 = 2.0;

/// The original's error as the rule counts it: its own, or its rounding spread where larger,
/// up to [`SPREAD_CAP`] times its own.
fn counted(own: f64, spread: Option<f64>) -> f64 {
    own.max(spread.filter(|s| s.is_finite()).map_or(0.0, |s| s.min(SPREAD_CAP * own)))
}

/// The cases whose rounding spread may decide the verdict, in order: none where the figures
/// are accepted without one, or rejected even with every spread at its cap; else each case
/// with an output over its bound.
pub fn spread_cases(seeds: &[SeedFigures], tol: Tolerance) -> Vec<usize> {
    if tol != Tolerance::Relative || judge(seeds, tol).accepted {
        return vec![];
    }
    let mut capped = seeds.to_vec();
    for o in capped.iter_mut().flat_map(|s| s.outputs.iter_mut()) {
        o.spread = Some((SPREAD_CAP * o.orig_l2.unwrap_or(0.0), SPREAD_CAP * o.orig_max.unwrap_or(0.0)));
    }
    if !judge(&capped, tol).accepted {
        return vec![];
    }
    let bounds = factors(seeds);
    (0..seeds.len()).filter(|i| !passes(&seeds[*i], &bounds[*i], tol)).collect()
}

/// Whether every output of case `i` passes (the others' figures set its bounds).
pub fn case_passes(seeds: &[SeedFigures], i: usize, tol: Tolerance) -> bool {
    passes(&seeds[i], &factors(seeds)[i], tol)
}

fn passes(case: &SeedFigures, bounds: &[Bound], tol: Tolerance) -> bool {
    case.outputs.iter().zip(bounds).all(|(o, b)| reject(o, tol, *b).is_none())
}

/// Per output, the largest sensitivity measured on a normal seed (0 where none was).
fn normal_sensitivity(seeds: &[SeedFigures]) -> Vec<f64> {
    let outputs = seeds.iter().map(|s| s.outputs.len()).max().unwrap_or(0);
    let normal = seeds.iter().filter(|s| s.variant == Variant::Normal);
    (0..outputs)
        .map(|k| normal.clone().filter_map(|s| s.outputs.get(k).and_then(|o| o.sensitivity)).fold(0.0, f64::max))
        .collect()
}

/// What a float-error rejection on an edge input adds: the sensitivities measured (or that
/// none was) and the bound, `factor` times the original's error.
fn sensitivity_said(o: &OutputFigures, normal: f64, factor: f64) -> String {
    let measured = match o.sensitivity {
        Some(here) if normal > 0.0 => format!("sensitivity {here:.1e} against the normal seeds' {normal:.1e}"),
        Some(here) => format!("sensitivity {here:.1e}, not measured on the normal seeds"),
        None => "sensitivity not measured".into(),
    };
    format!("; {measured}: bound {factor:.1}x the original's")
}

/// What one output of one case is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bound {
    /// How many times the original's error the candidate's may be.
    factor: f64,
    /// A finite edge case where the original itself is far less accurate than on the normal
    /// seeds: the candidate may also be non-finite where the original has no correct digit
    /// (`nonfinite_ok_ill`).
    ill: bool,
}

/// Per output of each case: 2; [`ILL_FACTOR`] on an ill-conditioned edge case; in between
/// on an edge case the exact function amplifies, where the original computes coarser than
/// float32 ([`amplified`]).
fn factors(seeds: &[SeedFigures]) -> Vec<Vec<Bound>> {
    let outputs = seeds.iter().map(|s| s.outputs.len()).max().unwrap_or(0);
    let normal = |k: usize, f: fn(&OutputFigures) -> Option<f64>| {
        let normal = seeds.iter().filter(|s| s.variant == Variant::Normal);
        normal.filter_map(|s| s.outputs.get(k).and_then(f)).fold(0.0, f64::max)
    };
    let usual: Vec<(f64, f64)> = (0..outputs).map(|k| (normal(k, |o| o.orig_l2), normal(k, |o| o.orig_max))).collect();
    let moved = normal_sensitivity(seeds);
    let ill = |usual: f64, here: Option<f64>| here.is_some_and(|e| e > (ILL_CONDITIONED * usual).max(ILL_FLOOR));
    // Where the normal seeds' sensitivity was measured, that of the edge case against it.
    let sensitive = |k: usize, here: Option<f64>| here.is_some_and(|e| e > ILL_CONDITIONED * moved[k].max(1.0));
    seeds
        .iter()
        .map(|s| {
            let each = s.outputs.iter().zip(&usual).enumerate();
            each.map(|(k, (o, (l2, max)))| {
                let edge = s.variant != Variant::Normal;
                let inaccurate = ill(*l2, o.orig_l2) || ill(*max, o.orig_max);
                // An original non-finite where the exact value is finite lost every digit there:
                // overflow is forgiven, but its error elsewhere sets the factor.
                let lost = edge && o.orig_lost == Some(true) && s.variant != Variant::Nonfinite;
                if edge && (inaccurate || sensitive(k, o.sensitivity)) {
                    // Overflow is forgiven only where the original's own figures say so.
                    Bound { factor: ILL_FACTOR, ill: (inaccurate || lost) && s.variant != Variant::Nonfinite }
                } else if edge {
                    Bound { factor: amplified((o.sensitivity, moved[k]), (o.orig_l2, *l2)), ill: lost }
                } else {
                    Bound { factor: 2.0, ill: false }
                }
            })
            .collect()
        })
        .collect()
}

/// Where the original's error on the normal seeds is [`COARSE`] times what float32 rounding
/// explains (`FLOAT32 * sensitivity`: TF32 matmuls, half-precision programs), the digits
/// are decided by where each program rounds, and an edge input the exact function amplifies
/// `s` times more than the normal seeds amplifies a rewrite's roundings as much, whether or
/// not the original's happen to grow there.
const COARSE: f64 = 100.0;
/// One float32 rounding, relative.
const FLOAT32: f64 = f32::EPSILON as f64 / 2.0;

/// An edge case's factor from `(its sensitivity, the normal seeds')` and `(the original's
/// error there, on the normal seeds)`: where the original computes coarsely, 2 times the
/// sensitivity's growth over the original error's (already grown, it is not counted
/// twice), from 2 to [`ILL_FACTOR`]; else 2 (an input that exposes a rewrite's cancellation
/// is what the edge inputs are for).
fn amplified((here, normal): (Option<f64>, f64), (edge_err, normal_err): (Option<f64>, f64)) -> f64 {
    let (Some(s), Some(e)) = (here, edge_err) else { return 2.0 };
    if normal <= 0.0 {
        return 2.0; // not measured on the normal seeds
    }
    let normal = normal.max(1.0);
    if normal_err <= COARSE * FLOAT32 * normal {
        return 2.0;
    }
    let grown = (e / normal_err).max(1.0);
    (2.0 * s / normal / grown).clamp(2.0, ILL_FACTOR)
}

impl Tolerance {
    /// `--tolerance NAME`. Lossy classes (fp16, bf16, quantized) are opt-in by name.
    pub fn parse(name: &str) -> Option<Tolerance> {
        let fixed = |name, atol, rtol| Some(Tolerance::Fixed { name, atol, rtol });
        match name {
            "relative" => Some(Tolerance::Relative),
            "fp32" => fixed("fp32", 1e-5, 1e-5),
            "fp16" => fixed("fp16", 1e-3, 1e-3),
            "bf16" => fixed("bf16", 1e-2, 1e-2),
            "quantized" => fixed("quantized", 5e-2, 5e-2),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Tolerance::Relative => "relative",
            Tolerance::Fixed { name, .. } => name,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    /// Why it was rejected, for the first failing output.
    pub reason: Option<String>,
    /// The check that rejected it, e.g. "float error (large inputs)".
    pub caught_by: Option<String>,
    /// Every output at every normal seed bit-identical to `fn`'s (NaN payloads on
    /// edge inputs may differ between equivalent kernels, so those are not counted).
    pub bit_identical: bool,
    /// Worst candidate error, and the original's, in relative L2.
    pub worst_l2: f64,
    pub original_l2: f64,
    pub worst_max: f64,
    pub original_max: f64,
    /// The largest rounding spread of the original measured (relative L2, max), where any was.
    pub spread: Option<(f64, f64)>,
}

/// Judges one size's figures.
pub fn judge(seeds: &[SeedFigures], tol: Tolerance) -> Verdict {
    let mut v = Verdict {
        accepted: true,
        reason: None,
        caught_by: None,
        bit_identical: true,
        worst_l2: 0.0,
        original_l2: 0.0,
        worst_max: 0.0,
        original_max: 0.0,
        spread: None,
    };
    let factors = factors(seeds);
    let moved = normal_sensitivity(seeds);
    for (s, factors) in seeds.iter().zip(&factors) {
        if let (Some(why), true) = (&s.arguments, v.reason.is_none()) {
            v.reason = Some(format!("seed {}, {} inputs: {why}", s.seed, s.variant));
            v.caught_by = Some(format!("arguments updated in place ({} inputs)", s.variant));
        }
        v.accepted &= s.arguments.is_none();
        for (k, (o, bound)) in s.outputs.iter().zip(factors).enumerate() {
            if s.variant == Variant::Normal {
                v.bit_identical &= o.bit_identical == Some(true);
            }
            v.worst_l2 = v.worst_l2.max(o.cand_l2.unwrap_or(0.0));
            v.original_l2 = v.original_l2.max(o.orig_l2.unwrap_or(0.0));
            v.worst_max = v.worst_max.max(o.cand_max.unwrap_or(0.0));
            v.original_max = v.original_max.max(o.orig_max.unwrap_or(0.0));
            if let Some((l2, max)) = o.spread {
                let (l2s, maxs) = v.spread.unwrap_or((0.0, 0.0));
                v.spread = Some((l2s.max(l2), maxs.max(max)));
            }
            if let Some((check, mut why)) = reject(o, tol, *bound) {
                let edge = s.variant != Variant::Normal && check == "float error" && tol == Tolerance::Relative;
                if edge {
                    why += &sensitivity_said(o, moved.get(k).copied().unwrap_or(0.0), bound.factor);
                }
                if v.reason.is_none() {
                    v.reason = Some(format!("output {k}, seed {}, {} inputs: {why}", s.seed, s.variant));
                    v.caught_by = Some(format!("{check} ({} inputs)", s.variant));
                }
                v.accepted = false;
            }
        }
    }
    v
}

/// The check that fails and why, or `None` where the output passes.
fn reject(o: &OutputFigures, tol: Tolerance, bound: Bound) -> Option<(&'static str, String)> {
    if !o.shape_ok {
        return Some(("shape", "shape differs".into()));
    }
    if !o.dtype_ok {
        return Some(("dtype", "dtype differs".into()));
    }
    if o.exact {
        return (o.bit_identical != Some(true)).then(|| ("exact output", "integer/boolean output differs".into()));
    }
    let forgiven = bound.ill && tol == Tolerance::Relative && o.nonfinite_ok_ill == Some(true);
    if o.nonfinite_ok != Some(true) && !forgiven {
        let places = o.nonfinite_places.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        return Some(("NaN/Inf positions", format!("NaN/Inf positions differ from the original's{places}")));
    }
    if o.bit_identical == Some(true) {
        return None;
    }
    float_error(o, tol, bound.factor).map(|why| ("float error", why))
}

#[allow(clippy::neg_cmp_op_on_partial_ord)] // a NaN error must fail the check
fn float_error(o: &OutputFigures, tol: Tolerance, factor: f64) -> Option<String> {
    match tol {
        Tolerance::Relative => {
            let (Some(cl2), Some(cmax)) = (o.cand_l2, o.cand_max) else {
                return Some("no error figures were measured".into());
            };
            let (ol2, omax) = (o.orig_l2.unwrap_or(0.0), o.orig_max.unwrap_or(0.0));
            if ol2 >= f64::MAX || omax >= f64::MAX {
                // The worker sends an infinite figure as the largest float: no bound follows.
                return Some("the original's own error against float64 is infinite here: no bound to judge by".into());
            }
            let (sl2, smax) = o.spread.unzip();
            let (bl2, bmax) = ((factor * counted(ol2, sl2)).max(FLOOR), (factor * counted(omax, smax)).max(FLOOR));
            let spread = |s: Option<f64>| s.map(|s| format!(", its rounding spread {s:.2e}")).unwrap_or_default();
            // Negated so that a NaN error fails the check.
            if !(cl2 <= bl2) {
                let why =
                    format!("relative L2 error {cl2:.2e} > bound {bl2:.2e} (original's {ol2:.2e}{})", spread(sl2));
                return Some(why);
            }
            if !(cmax <= bmax) {
                return Some(format!(
                    "max error {cmax:.2e} > bound {bmax:.2e} (original's {omax:.2e}{})",
                    spread(smax)
                ));
            }
            None
        }
        Tolerance::Fixed { name, atol, rtol } => match o.fixed_ratio {
            Some(r) if r <= 1.0 => None,
            Some(r) => Some(format!("outside the {name} class (atol {atol:e}, rtol {rtol:e}) by {r:.2}x")),
            None => Some("no fixed-class figure was measured".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_out(orig: f64, cand: f64) -> OutputFigures {
        OutputFigures {
            shape_ok: true,
            dtype_ok: true,
            exact: false,
            bit_identical: Some(false),
            nonfinite_ok: Some(true),
            orig_l2: Some(orig),
            orig_max: Some(orig),
            cand_l2: Some(cand),
            cand_max: Some(cand),
            ..Default::default()
        }
    }

    fn one(o: OutputFigures) -> Vec<SeedFigures> {
        vec![SeedFigures { seed: 0, variant: Variant::Normal, outputs: vec![o], arguments: None }]
    }

    #[test]
    fn an_infinite_original_error_bounds_nothing() {
        let mut o = float_out(1e-7, 1e-7);
        o.orig_max = Some(f64::MAX);
        let v = judge(&one(o), Tolerance::Relative);
        assert!(!v.accepted, "a finite candidate error is no proof where the original's is infinite");
        let mut o = float_out(1e-7, 1e-7);
        o.bit_identical = Some(true);
        o.orig_max = Some(f64::MAX);
        assert!(judge(&one(o), Tolerance::Relative).accepted, "the near miss: bit-identical to fn");
    }

    #[test]
    fn arguments_left_otherwise_than_fn_leaves_them_reject() {
        let o = float_out(1e-7, 1e-7);
        let mut seeds = one(o.clone());
        assert!(judge(&seeds, Tolerance::Relative).accepted, "the near miss: arguments as fn leaves them");
        seeds[0].arguments = Some("the candidate did not update argument buf in place as fn does".into());
        let v = judge(&seeds, Tolerance::Relative);
        assert!(!v.accepted);
        assert_eq!(v.caught_by.as_deref(), Some("arguments updated in place (normal inputs)"));
    }

    #[test]
    fn relative_rule_accepts_up_to_twice_the_original_error() {
        assert!(judge(&one(float_out(1e-5, 1.9e-5)), Tolerance::Relative).accepted);
        assert!(!judge(&one(float_out(1e-5, 2.1e-5)), Tolerance::Relative).accepted);
    }

    #[test]
    fn a_rounding_spread_over_the_originals_error_raises_the_bound_up_to_its_cap() {
        let spread = |o: f64, c: f64, s: f64| OutputFigures { spread: Some((s, s)), ..float_out(o, c) };
        // RoPE on an H100: mx.fast.rope 1.03e-6 against fn's 4.63e-7; fn's spread 7.8e-7.
        assert_eq!(spread_cases(&one(float_out(4.63e-7, 1.03e-6)), Tolerance::Relative), vec![0]);
        assert!(!judge(&one(float_out(4.63e-7, 1.03e-6)), Tolerance::Relative).accepted);
        assert!(judge(&one(spread(4.63e-7, 1.03e-6, 7.8e-7)), Tolerance::Relative).accepted);
        // A spread counts up to twice the original's error: the bound stops at 4x.
        assert!(judge(&one(spread(1e-5, 3.9e-5, 1e-3)), Tolerance::Relative).accepted);
        let capped = judge(&one(spread(1e-5, 4.1e-5, 1e-3)), Tolerance::Relative);
        assert!(!capped.accepted);
        assert!(capped.reason.unwrap().contains("its rounding spread 1.00e-3"));
        // A spread below the original's own error changes nothing; a NaN one neither.
        assert!(!judge(&one(spread(1e-5, 2.1e-5, 5e-6)), Tolerance::Relative).accepted);
        assert!(!judge(&one(spread(1e-5, 2.1e-5, f64::NAN)), Tolerance::Relative).accepted);
    }

    #[test]
    fn the_spread_is_measured_only_where_it_can_decide() {
        let cases = |o: f64, c: f64| spread_cases(&one(float_out(o, c)), Tolerance::Relative);
        assert!(cases(1e-5, 1.9e-5).is_empty()); // passes already
        assert_eq!(cases(1e-5, 3.9e-5), vec![0]);
        assert!(cases(1e-5, 4.1e-5).is_empty()); // past any spread's bound
        assert!(cases(1e-5, f64::NAN).is_empty());
        // An exact original: the floor alone.
        assert!(cases(0.0, 2e-6).is_empty());
        // Two cases, one within 2x: only the other is measured; one past the cap: none.
        let two = |c: f64| {
            let mut seeds = one(float_out(1e-5, 1.5e-5));
            seeds.push(SeedFigures {
                seed: 1,
                variant: Variant::Normal,
                outputs: vec![float_out(1e-5, c)],
                arguments: None,
            });
            spread_cases(&seeds, Tolerance::Relative)
        };
        assert_eq!(two(3e-5), vec![1]);
        assert!(two(5e-5).is_empty());
        assert!(spread_cases(&one(float_out(1e-5, 3e-5)), Tolerance::parse("fp32").unwrap()).is_empty());
    }

    #[test]
    fn floor_admits_tiny_errors_of_exact_originals() {
        assert!(judge(&one(float_out(0.0, 9e-7)), Tolerance::Relative).accepted);
        assert!(!judge(&one(float_out(0.0, 2e-6)), Tolerance::Relative).accepted);
    }

    #[test]
    fn nan_positions_and_exact_outputs_are_strict() {
        let mut o = float_out(1e-7, 1e-7);
        o.nonfinite_ok = Some(false);
        assert!(!judge(&one(o), Tolerance::Relative).accepted);
        let ints = OutputFigures {
            shape_ok: true,
            dtype_ok: true,
            exact: true,
            bit_identical: Some(false),
            ..Default::default()
        };
        let v = judge(&one(ints), Tolerance::Relative);
        assert!(!v.accepted);
        assert!(v.reason.unwrap().contains("integer"));
        assert_eq!(v.caught_by.as_deref(), Some("exact output (normal inputs)"));
    }

    #[test]
    fn the_first_failing_case_names_its_check_and_inputs() {
        let mut bad = float_out(1e-7, 1e-7);
        bad.nonfinite_ok = Some(false);
        let seeds = vec![
            SeedFigures { seed: 0, variant: Variant::Normal, outputs: vec![float_out(1e-7, 1e-7)], arguments: None },
            SeedFigures { seed: 0, variant: Variant::Large, outputs: vec![bad], arguments: None },
            SeedFigures { seed: 0, variant: Variant::Tiny, outputs: vec![float_out(1e-7, 1.0)], arguments: None },
        ];
        let v = judge(&seeds, Tolerance::Relative);
        assert!(!v.accepted);
        assert_eq!(v.caught_by.as_deref(), Some("NaN/Inf positions (large inputs)"));
    }

    #[test]
    fn bit_identity_counts_normal_inputs_only() {
        let mut o = float_out(1e-7, 1e-7);
        o.bit_identical = Some(true);
        let mut edge = o.clone();
        edge.bit_identical = Some(false);
        let seeds = vec![
            SeedFigures { seed: 0, variant: Variant::Normal, outputs: vec![o], arguments: None },
            SeedFigures { seed: 0, variant: Variant::Nonfinite, outputs: vec![edge], arguments: None },
        ];
        assert!(judge(&seeds, Tolerance::Relative).bit_identical);
    }

    #[test]
    fn nan_error_figures_are_rejected() {
        assert!(!judge(&one(float_out(1e-7, f64::NAN)), Tolerance::Relative).accepted);
    }

    #[test]
    fn fixed_class_uses_the_measured_ratio() {
        let tol = Tolerance::parse("fp32").unwrap();
        let mut o = float_out(0.0, 1.0);
        o.fixed_ratio = Some(0.5);
        assert!(judge(&one(o.clone()), tol).accepted);
        o.fixed_ratio = Some(1.5);
        assert!(!judge(&one(o), tol).accepted);
        assert!(Tolerance::parse("fp8").is_none());
    }

    /// One normal seed and one edge case of one output: (original, candidate) errors each.
    fn with_edge(variant: Variant, normal: (f64, f64), edge: (f64, f64)) -> Vec<SeedFigures> {
        vec![
            SeedFigures {
                seed: 0,
                variant: Variant::Normal,
                outputs: vec![float_out(normal.0, normal.1)],
                arguments: None,
            },
            SeedFigures { seed: 0, variant, outputs: vec![float_out(edge.0, edge.1)], arguments: None },
        ]
    }

    #[test]
    fn an_edge_case_where_the_original_is_ill_conditioned_allows_rounding_order() {
        // FlashQLA's hand port on 1e4-scaled inputs (H200): 6.57e-4 against the original's 3.1e-4.
        let v = judge(&with_edge(Variant::Large, (2e-7, 2e-7), (3.1e-4, 6.57e-4)), Tolerance::Relative);
        assert!(v.accepted, "{:?}", v.reason);
        // Near misses: the same figures on normal inputs, an edge case where the original is
        // as accurate as usual, and a candidate past the ill-conditioned factor.
        assert!(!judge(&one(float_out(3.1e-4, 6.57e-4)), Tolerance::Relative).accepted);
        assert!(!judge(&with_edge(Variant::Large, (2e-6, 2e-6), (3e-6, 7e-6)), Tolerance::Relative).accepted);
        let far = judge(&with_edge(Variant::Large, (2e-7, 2e-7), (3.1e-4, 2.6e-3)), Tolerance::Relative);
        assert!(!far.accepted);
        // An original that is always this inaccurate (bf16) is not ill-conditioned on edges.
        assert!(!judge(&with_edge(Variant::Tiny, (4e-3, 4e-3), (5e-3, 1.2e-2)), Tolerance::Relative).accepted);
    }

    /// `with_edge`'s figures, the edge case's candidate non-finite where the original is finite
    /// (`strict` fails) and, with `lenient`, only where the original has no correct digit.
    fn overflowing(variant: Variant, normal: (f64, f64), edge: (f64, f64), lenient: bool) -> Vec<SeedFigures> {
        let mut figures = with_edge(variant, normal, edge);
        (figures[1].outputs[0].nonfinite_ok, figures[1].outputs[0].nonfinite_ok_ill) = (Some(false), Some(lenient));
        figures
    }

    #[test]
    fn an_ill_conditioned_edge_case_forgives_overflow_where_the_original_has_no_digit() {
        // Chunked gated delta on all-negative inputs: beta < 0 makes the systems overflow float32,
        // at other places in each program; the original's error there is 1000x its usual.
        let relative = |f: Vec<SeedFigures>| judge(&f, Tolerance::Relative);
        assert!(relative(overflowing(Variant::Negative, (2e-7, 2e-7), (0.3, 0.4), true)).accepted);
        // Near misses: not only where the original has no digit; an edge case the original
        // computes as accurately as usual; the non-finite inputs; a fixed tolerance class.
        assert!(!relative(overflowing(Variant::Negative, (2e-7, 2e-7), (0.3, 0.4), false)).accepted);
        let usual = relative(overflowing(Variant::Negative, (2e-7, 2e-7), (3e-7, 4e-7), true));
        assert_eq!(usual.caught_by.as_deref(), Some("NaN/Inf positions (negative inputs)"));
        assert!(!relative(overflowing(Variant::Nonfinite, (2e-7, 2e-7), (0.3, 0.4), true)).accepted);
        let fp32 = Tolerance::parse("fp32").unwrap();
        assert!(!judge(&overflowing(Variant::Negative, (2e-7, 2e-7), (0.3, 0.4), true), fp32).accepted);
        // The original as accurate as usual where finite, but non-finite where the exact value
        // is finite: its overflow forgiven, its finite places still held to 2x; not on the
        // non-finite inputs.
        let mut lost = overflowing(Variant::Negative, (2e-7, 2e-7), (3e-7, 4e-7), true);
        lost[1].outputs[0].orig_lost = Some(true);
        assert!(relative(lost.clone()).accepted);
        (lost[1].outputs[0].cand_l2, lost[1].outputs[0].cand_max) = (Some(3e-6), Some(3e-6));
        assert!(!relative(lost.clone()).accepted, "10x the original's error where it is finite");
        lost[1].outputs[0].cand_l2 = Some(4e-7);
        lost[1].outputs[0].cand_max = Some(4e-7);
        lost[1].variant = Variant::Nonfinite;
        assert!(!relative(lost).accepted);
        // Ill by its sensitivity alone, the original as accurate as usual: not forgiven.
        let moved = sensitive(1.0, 1e3, overflowing(Variant::Negative, (2e-7, 2e-7), (3e-7, 4e-7), true));
        assert!(!relative(moved).accepted);
    }

    /// `with_edge`'s figures with the normal seed's and the edge case's sensitivity.
    fn sensitive(normal: f64, edge: f64, figures: Vec<SeedFigures>) -> Vec<SeedFigures> {
        let mut figures = figures;
        for s in figures.iter_mut() {
            let moved = if s.variant == Variant::Normal { normal } else { edge };
            s.outputs.iter_mut().for_each(|o| o.sensitivity = Some(moved));
        }
        figures
    }

    #[test]
    fn an_edge_input_the_exact_function_amplifies_allows_rounding_order_where_tf32_hides_it() {
        // The hand port's e-graph rewrite on 1e4-scaled inputs (H100, TF32 matmuls): the
        // original's error 5.39e-4 there, as on normal seeds; the input 3.1x as sensitive.
        let figures = || with_edge(Variant::Large, (5.39e-4, 5.0e-4), (5.39e-4, 1.29e-3));
        assert!(!judge(&figures(), Tolerance::Relative).accepted, "without the sensitivity: 2x");
        let v = judge(&sensitive(2.1, 6.5, figures()), Tolerance::Relative);
        assert!(v.accepted, "{:?}", v.reason);
        assert!(judge(&sensitive(5.0, 1e4, figures()), Tolerance::Relative).accepted, "ill-conditioned");
        // Near misses: an edge input only 1.1x as sensitive (bound 2.2x), one less sensitive
        // than the normal seeds (2x), a candidate past the factor, and the same sensitivity on
        // a normal seed (it never relaxes the normal seeds).
        let near = judge(&sensitive(5.0, 5.5, figures()), Tolerance::Relative);
        let why = near.reason.unwrap_or_default();
        assert!(
            why.ends_with("; sensitivity 5.5e0 against the normal seeds' 5.0e0: bound 2.2x the original's"),
            "{why}"
        );
        assert!(!judge(&sensitive(5.0, 1.0, figures()), Tolerance::Relative).accepted);
        let mut edge_only = figures();
        edge_only
            .iter_mut()
            .filter(|s| s.variant != Variant::Normal)
            .for_each(|s| s.outputs[0].sensitivity = Some(50.0));
        let said = judge(&edge_only, Tolerance::Relative).reason.unwrap_or_default();
        assert!(said.ends_with("sensitivity 5.0e1, not measured on the normal seeds: bound 2.0x the original's"));
        let unmeasured = judge(&figures(), Tolerance::Relative).reason.unwrap_or_default();
        assert!(unmeasured.ends_with("(original's 5.39e-4); sensitivity not measured: bound 2.0x the original's"));
        let far = with_edge(Variant::Large, (5.39e-4, 5.0e-4), (5.39e-4, 4.4e-3));
        assert!(!judge(&sensitive(2.1, 1e4, far.clone()), Tolerance::Relative).accepted);
        let past_ramp = judge(&sensitive(2.1, 20.0, far), Tolerance::Relative).reason.unwrap_or_default();
        assert!(past_ramp.contains("bound 4.31e-3") && past_ramp.ends_with("bound 8.0x the original's"), "{past_ramp}");
        let mut normal = one(float_out(5.39e-4, 1.29e-3));
        normal[0].outputs[0].sensitivity = Some(1e4);
        assert!(!judge(&normal, Tolerance::Relative).accepted);
    }

    #[test]
    fn the_ramp_needs_coarse_arithmetic_and_counts_the_original_errors_growth_once() {
        // A cancellation a rewrite adds (a one-pass variance on all-negative inputs): the
        // original computes at float32 level (2e-6 against a sensitivity of 2), so 2x holds.
        let fine = with_edge(Variant::Negative, (2e-6, 2e-6), (2e-6, 5e-6));
        assert!(!judge(&sensitive(2.0, 3.4, fine), Tolerance::Relative).accepted);
        let coarse = with_edge(Variant::Negative, (5e-4, 5e-4), (5e-4, 1.25e-3));
        assert!(judge(&sensitive(2.0, 3.4, coarse), Tolerance::Relative).accepted, "TF32: 3.4x");
        // The original's own error grew 3x there: the 3.1x sensitivity allows 2.07x, not 6.2x.
        let grown = with_edge(Variant::Large, (5e-4, 5e-4), (1.5e-3, 4e-3));
        let v = judge(&sensitive(2.1, 6.5, grown), Tolerance::Relative);
        assert!(v.reason.unwrap_or_default().ends_with("bound 2.1x the original's"));
        let within = with_edge(Variant::Large, (5e-4, 5e-4), (1.5e-3, 3e-3));
        assert!(judge(&sensitive(2.1, 6.5, within), Tolerance::Relative).accepted);
    }
}
