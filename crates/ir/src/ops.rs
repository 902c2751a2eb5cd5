//! The MLX primitives the IR knows ([`Op`], by the name `mx.export_function` gives them),
//! their kinds, and the typed arguments that decide behaviour ([`ReduceKind`]). Adding a
//! primitive: its name here, its Python form in `superopt-emit`'s `ops.rs`, its shape rule
//! in `superopt-search`'s `egraph/shape.rs`, its field meaning in `superopt-verify`'s
//! `field/eval.rs`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One output element from the same element of each input.
    Unary,
    Binary,
    Ternary,
    /// Reductions, scans, sorts, softmax: read whole rows.
    Reduce,
    /// Shape changes and copies: no arithmetic.
    Layout,
    /// Matrix products (possibly quantized).
    Matmul,
    /// Convolutions: each output from a window of its input.
    Window,
    /// Quantizing into packed integers, scales and biases (`mx.quantize`), or back.
    Quantize,
    /// Values made from nothing but arguments (arange, random bits).
    Source,
    /// Fused `mx.fast` kernels (exported as one node on GPU backends).
    Fast,
    /// A kernel superopt generated (`superopt-kernel`); never traced, only lowered to.
    Kernel,
}

/// The primitives, by kind; each name is the one `mx.export_function` gives it.
macro_rules! primitives {
    ($($kind:ident: [$($name:ident),+ $(,)?])+) => {
        /// An MLX primitive the IR knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            $($($name,)+)+
        }

        impl Op {
            /// Every known primitive.
            pub const ALL: &'static [Op] = &[$($(Op::$name,)+)+];

            /// Its name in MLX's export.
            pub fn name(self) -> &'static str {
                match self {
                    $($(Op::$name => stringify!($name),)+)+
                }
            }

            pub fn kind(self) -> Kind {
                match self {
                    $($(Op::$name => Kind::$kind,)+)+
                }
            }
        }
    };
}

primitives! {
    Unary: [
        Abs, ArcCos, ArcCosh, ArcSin, ArcSinh, ArcTan, ArcTanh, AsType, BitwiseInvert, Ceil, Conjugate, Cos, Cosh,
        Erf, ErfInv, Exp, Expm1, Floor, Imag, Log, Log1p, LogicalNot, Negative, Real, Round, Sigmoid, Sign, Sin,
        Sinh, Sqrt, Square, StopGradient, Tan, Tanh,
    ]
    Binary: [
        Add, ArcTan2, BitwiseBinary, Divide, Equal, Greater, GreaterEqual, Less, LessEqual, LogAddExp, LogicalAnd,
        LogicalOr, Maximum, Minimum, Multiply, NotEqual, Power, Remainder, Subtract, DivMod, FloorDivide,
    ]
    Ternary: [Select]
    Reduce: [Reduce, ArgReduce, Scan, Softmax, LogSumExp, Sort, ArgSort, Partition, ArgPartition]
    Layout: [
        Broadcast, Concatenate, Copy, ExpandDims, Flatten, Gather, GatherAxis, Pad, Reshape, Slice, SliceUpdate,
        Split, Squeeze, Transpose, Unflatten, Scatter, ScatterAxis, AsStrided,
    ]
    Matmul: [Matmul, AddMM, QuantizedMatmul, GatherMM, GatherQMM]
    Window: [Convolution]
    Quantize: [Quantize]
    Source: [Arange, RandomBits, Full]
    Fast: [RMSNorm, LayerNorm, RoPE, ScaledDotProductAttention]
    Kernel: [Kernel]
}

impl Op {
    /// The primitive of this export name; `None` for one the IR does not know.
    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Where a slice's starts, stops and steps begin among its arguments (SliceUpdate's
    /// first is its reduction).
    pub fn bounds_at(self) -> Option<usize> {
        match self {
            Op::Slice => Some(0),
            Op::SliceUpdate => Some(1),
            _ => None,
        }
    }

    /// Whether it makes a discrete choice (argmax/argmin, argsort, argpartition): which
    /// element, not a value; the float64 references replay `fn`'s own choices.
    pub fn is_choice(self) -> bool {
        matches!(self, Op::ArgReduce | Op::ArgSort | Op::ArgPartition)
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl serde::Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Op::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown primitive {name}")))
    }
}

/// What a `Reduce` computes (MLX's `Reduce::ReduceType`, in its order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    And,
    Or,
    Sum,
    Prod,
    Min,
    Max,
}

impl ReduceKind {
    pub const ALL: [ReduceKind; 6] =
        [ReduceKind::And, ReduceKind::Or, ReduceKind::Sum, ReduceKind::Prod, ReduceKind::Min, ReduceKind::Max];

    /// From MLX's enum value, as the export's first argument gives it.
    pub fn of_mlx(v: i64) -> Option<ReduceKind> {
        usize::try_from(v).ok().and_then(|i| ReduceKind::ALL.get(i).copied())
    }

    /// MLX's enum value.
    pub fn mlx(self) -> i64 {
        self as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_primitive_parses_from_its_name_and_names_are_unique() {
        let mut names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
        for o in Op::ALL {
            assert_eq!(Op::parse(o.name()), Some(*o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(Op::parse("Hadamard"), None);
        assert_eq!(Op::Multiply.kind(), Kind::Binary);
    }

    #[test]
    fn reduce_kinds_follow_mlx_order() {
        assert_eq!(ReduceKind::of_mlx(2), Some(ReduceKind::Sum));
        assert_eq!(ReduceKind::of_mlx(5), Some(ReduceKind::Max));
        assert_eq!(ReduceKind::of_mlx(6), None);
        assert_eq!(ReduceKind::of_mlx(-1), None);
        assert!(ReduceKind::ALL.iter().all(|k| ReduceKind::of_mlx(k.mlx()) == Some(*k)));
    }
}
