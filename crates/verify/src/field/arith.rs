//! Arithmetic in Z_P x Z_Q, with P | Q - 1 so that exp can be a homomorphism.
//!
//! A value is a pair: its residue mod P (the exponent domain) and mod Q (where
//! outputs are compared). Addition and multiplication act on both. `exp(x)` is
//! `G^(x mod P) mod Q`, with `G` of order P, so `exp(a + b) = exp(a) * exp(b)`;
//! its residue mod P is unknown and marked undefined.

/// 2^31 - 1.
pub const P: u64 = 2_147_483_647;
/// 1073741790 * P + 1, prime.
pub const Q: u64 = 2_305_842_935_125_508_131;
/// An element of order P in Z_Q^*.
pub const G: u64 = 344_357_119_268_387_738;
/// The residue mod P after exp: not known.
const UNDEF: u64 = u64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// A finite value: residues mod P (or undefined) and mod Q.
    V { p: u64, q: u64 },
    /// -inf, as additive masks use it: exp(-inf) = 0, max ignores it.
    NegInf,
}

fn mulmod(a: u64, b: u64, m: u64) -> u64 {
    ((a as u128 * b as u128) % m as u128) as u64
}

pub fn powmod(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mulmod(r, b, m);
        }
        b = mulmod(b, b, m);
        e >>= 1;
    }
    r
}

fn inv(a: u64, m: u64) -> u64 {
    // Fermat; 0 has no inverse and maps to 0 (probability ~1/m on random inputs).
    powmod(a, m - 2, m)
}

// Field arithmetic, not std's operators: `-inf` makes neg, sub and mul partial.
#[allow(clippy::should_implement_trait)]
impl Elem {
    pub const ZERO: Elem = Elem::V { p: 0, q: 0 };
    pub const ONE: Elem = Elem::V { p: 1, q: 1 };

    /// The value `n / d` of a rational.
    pub fn ratio(n: i128, d: i128) -> Elem {
        let r = |m: u64| {
            let nm = n.rem_euclid(m as i128) as u64;
            let dm = d.rem_euclid(m as i128) as u64;
            mulmod(nm, inv(dm, m), m)
        };
        Elem::V { p: r(P), q: r(Q) }
    }

    pub fn from_u64_pair(p: u64, q: u64) -> Elem {
        Elem::V { p: p % P, q: q % Q }
    }

    pub fn q(self) -> Option<u64> {
        match self {
            Elem::V { q, .. } => Some(q),
            Elem::NegInf => None,
        }
    }

    fn both(self, o: Elem, fp: impl Fn(u64, u64) -> u64, fq: impl Fn(u64, u64) -> u64) -> Elem {
        match (self, o) {
            (Elem::V { p: a, q: b }, Elem::V { p: c, q: d }) => {
                let p = if a == UNDEF || c == UNDEF { UNDEF } else { fp(a, c) };
                Elem::V { p, q: fq(b, d) }
            }
            _ => Elem::NegInf,
        }
    }

    pub fn add(self, o: Elem) -> Elem {
        self.both(o, |a, b| (a + b) % P, |a, b| ((a as u128 + b as u128) % Q as u128) as u64)
    }

    pub fn neg(self) -> Option<Elem> {
        match self {
            Elem::V { p, q } => Some(Elem::V { p: if p == UNDEF { UNDEF } else { (P - p) % P }, q: (Q - q) % Q }),
            Elem::NegInf => None,
        }
    }

    pub fn sub(self, o: Elem) -> Option<Elem> {
        match o {
            Elem::NegInf => None,
            _ => Some(self.add(o.neg()?)),
        }
    }

    /// `None` where -inf meets a product (no mask does that).
    pub fn mul(self, o: Elem) -> Option<Elem> {
        match (self, o) {
            (Elem::V { .. }, Elem::V { .. }) => Some(self.both(o, |a, b| mulmod(a, b, P), |a, b| mulmod(a, b, Q))),
            _ => None,
        }
    }

    pub fn recip(self) -> Option<Elem> {
        match self {
            Elem::V { p, q } => Some(Elem::V { p: if p == UNDEF { UNDEF } else { inv(p, P) }, q: inv(q, Q) }),
            Elem::NegInf => None,
        }
    }

    /// Whether [`Elem::exp`] is known (the exponent's residue mod P is).
    pub fn exp_known(self) -> bool {
        !matches!(self, Elem::V { p: UNDEF, .. })
    }

    /// The homomorphic exp; `None` when the exponent's residue mod P is unknown.
    pub fn exp(self) -> Option<Elem> {
        match self {
            Elem::V { p, .. } if p == UNDEF => None,
            Elem::V { p, .. } => Some(Elem::V { p: UNDEF, q: powmod(G, p, Q) }),
            Elem::NegInf => Some(Elem::ZERO),
        }
    }

    /// A pseudo-random function of `(tag, self)`: an uninterpreted function.
    pub fn uf(self, tag: u64) -> Elem {
        let x = match self {
            Elem::V { q, .. } => q,
            Elem::NegInf => u64::MAX,
        };
        let h = mix(mix(tag) ^ x);
        Elem::V { p: h % P, q: mix(h) % Q }
    }
}

/// splitmix64's finaliser: a well-mixed hash of one word (a few lines, no dependency).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The simplest rational within the float's own rounding (`rel` relative), so that
/// `f32(1/3)` and `1.0 / 3.0` map to the same element; an exact dyadic otherwise.
pub fn rational(v: f64, rel: f64) -> Option<(i128, i128)> {
    if !v.is_finite() {
        return None;
    }
    if v == v.trunc() && v.abs() < 1e30 {
        return Some((v as i128, 1));
    }
    // Continued fractions, stopping at the first convergent inside the rounding interval.
    let (mut h0, mut h1, mut k0, mut k1) = (0i128, 1i128, 1i128, 0i128);
    let mut x = v;
    for _ in 0..40 {
        let a = x.floor();
        if a.abs() > 1e15 {
            break;
        }
        let a = a as i128;
        (h0, h1) = (h1, a * h1 + h0);
        (k0, k1) = (k1, a * k1 + k0);
        if k1 > (1 << 40) {
            break;
        }
        if ((h1 as f64 / k1 as f64) - v).abs() <= rel * v.abs() {
            return Some((h1, k1));
        }
        let frac = x - x.floor();
        if frac == 0.0 {
            break;
        }
        x = 1.0 / frac;
    }
    // Exact: v = m * 2^e.
    let (m, e) = frexp(v);
    Some(if e >= 0 { (m << e, 1) } else { (m, 1i128 << (-e).min(120)) })
}

fn frexp(v: f64) -> (i128, i32) {
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1 << 52) - 1)) as i128;
    if exp == 0 {
        (sign * frac, -1074)
    } else {
        (sign * (frac | (1 << 52)), exp - 1075)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_prime(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        let (mut d, mut s) = (n - 1, 0);
        while d % 2 == 0 {
            d /= 2;
            s += 1;
        }
        [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37].iter().all(|&a| {
            if a % n == 0 {
                return true;
            }
            let mut x = powmod(a, d, n);
            if x == 1 || x == n - 1 {
                return true;
            }
            (1..s).any(|_| {
                x = mulmod(x, x, n);
                x == n - 1
            })
        })
    }

    #[test]
    fn moduli_and_generator_are_as_documented() {
        assert!(is_prime(P) && is_prime(Q));
        assert_eq!((Q - 1) % P, 0);
        assert_ne!(G, 1);
        assert_eq!(powmod(G, P, Q), 1, "G has order P");
    }

    #[test]
    fn exp_is_a_homomorphism() {
        let (a, b) = (Elem::from_u64_pair(123456789, 123456789), Elem::from_u64_pair(987654321, 987654321));
        assert_eq!(a.add(b).exp(), a.exp().unwrap().mul(b.exp().unwrap()));
        assert_eq!(a.neg().unwrap().exp().unwrap().mul(a.exp().unwrap()), Elem::ZERO.exp(), "exp(-a) exp(a) = exp(0)");
        assert_eq!(Elem::ZERO.exp().unwrap().q(), Some(1));
    }

    #[test]
    fn rationals_of_rounded_floats() {
        assert_eq!(rational((1.0f32 / 3.0) as f64, 6e-8), Some((1, 3)));
        assert_eq!(rational(1e-5f32 as f64, 6e-8), Some((1, 100000)));
        assert_eq!(rational(0.125, 0.0), Some((1, 8)));
        assert_eq!(Elem::ratio(1, 3).mul(Elem::ratio(3, 1)), Some(Elem::ONE));
        assert_eq!(rational(f64::INFINITY, 0.0), None);
    }
}
