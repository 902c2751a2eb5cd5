//! Launch parameters and the space the tuner times on the device.

use crate::ir::{Form, Kernel, Layout};
use serde::{Deserialize, Serialize};
use superopt_ir::Dtype;

/// How one launch covers its `[rows, n]` space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Params {
    /// Elements per vector access (16 bytes at most).
    pub vec: u32,
    /// Threads per row (rows) or per block (elementwise).
    pub threads: u32,
    /// Rows per block (rows; only with 32 threads per row).
    pub rows_per_block: u32,
    /// Packs per thread (elementwise).
    pub unroll: u32,
}

/// The concrete space of one launch, and the operand dtypes it reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LaunchShape {
    pub rows: i64,
    pub n: i64,
    pub dtypes: Vec<Dtype>,
}

/// Most packs a thread keeps of one row operand (registers).
const MAX_ITEMS: i64 = 16;

/// Most row elements a thread keeps in registers over all full-size inputs of a rows
/// kernel; beyond it ptxas spills (`crates/kernel/tests/nvrtc.rs` checks every launch).
const MAX_HELD: i64 = 128;

/// Most packs of `vec` elements a thread of `k` may hold per row operand.
fn max_items(k: &Kernel, vec: u32) -> i64 {
    let full = k.inputs.iter().filter(|o| o.layout == Layout::Full).count().max(1) as i64;
    (MAX_HELD / (vec as i64 * full)).clamp(1, MAX_ITEMS)
}

/// The widest vector whose accesses of every operand stay within 16 bytes and rows.
fn widest_vec(k: &Kernel, s: &LaunchShape) -> u32 {
    let widest = s.dtypes.iter().map(|d| d.size_bytes()).max().unwrap_or(4) as i64;
    let rowwise = k.inputs.iter().any(|o| matches!(o.layout, Layout::Col | Layout::Row)) || k.form == Form::Rows;
    let span = if rowwise { s.n } else { s.rows * s.n };
    [8, 4, 2, 1].into_iter().find(|v| v * widest <= 16 && span % v == 0).unwrap_or(1) as u32
}

/// The configurations worth timing for `k` on `s`: always the widest vector access;
/// threads per row (and rows per block) or block size and unrolling.
pub fn space(k: &Kernel, s: &LaunchShape) -> Vec<Params> {
    let vec = widest_vec(k, s);
    let packs = (s.n + vec as i64 - 1) / vec as i64;
    match k.form {
        Form::Rows => {
            let mut out = vec![];
            let most = max_items(k, vec);
            for threads in [32u32, 64, 128, 256, 512, 1024] {
                let items = (packs + threads as i64 - 1) / threads as i64;
                // Every warp gets work, and no thread holds too much of the row.
                if items > most || (threads > 32 && packs <= (threads as i64) / 2) {
                    continue;
                }
                let rpbs: &[u32] = if threads == 32 { &[1, 4] } else { &[1] };
                out.extend(rpbs.iter().map(|&rows_per_block| Params { vec, threads, rows_per_block, unroll: 1 }));
            }
            out
        }
        Form::Elementwise => {
            let mut out = vec![];
            for threads in [256u32, 512] {
                out.extend([1u32, 2, 4].iter().map(|&unroll| Params { vec, threads, rows_per_block: 1, unroll }));
            }
            out
        }
    }
}

/// What runs before (or without) tuning: the middle of the space.
pub fn default(k: &Kernel, s: &LaunchShape) -> Params {
    let sp = space(k, s);
    sp.get(sp.len() / 2).copied().unwrap_or(Params { vec: 1, threads: 1024, rows_per_block: 1, unroll: 1 })
}

/// Whether the rows form can keep rows of `s` in registers at all.
pub fn rows_fit(k: &Kernel, s: &LaunchShape) -> bool {
    k.form != Form::Rows || !space(k, s).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library;

    fn shape(rows: i64, n: i64, d: Dtype) -> LaunchShape {
        LaunchShape { rows, n, dtypes: vec![d, d, d] }
    }

    #[test]
    fn vector_accesses_are_16_bytes_and_divide_the_row() {
        let k = library::rms_norm_kernel(Dtype::Float32).unwrap();
        assert!(space(&k, &shape(64, 4096, Dtype::Float32)).iter().all(|p| p.vec == 4));
        assert!(space(&k, &shape(64, 4096, Dtype::Bfloat16)).iter().all(|p| p.vec == 8));
        // 4098 is even but not a multiple of 4: pairs of floats.
        assert!(space(&k, &shape(64, 4098, Dtype::Float32)).iter().all(|p| p.vec == 2));
    }

    #[test]
    fn rows_configurations_keep_the_row_in_registers_and_every_warp_busy() {
        let k = library::softmax_kernel(Dtype::Float32).unwrap();
        let sp = space(&k, &shape(8192, 8192, Dtype::Float32));
        assert!(!sp.is_empty());
        for p in &sp {
            let packs = 8192 / p.vec as i64;
            assert!((packs + p.threads as i64 - 1) / p.threads as i64 * p.vec as i64 <= MAX_HELD, "{p:?}");
            assert!(p.rows_per_block == 1 || p.threads == 32, "{p:?}");
        }
        // A short row: no 1024-thread blocks.
        assert!(space(&k, &shape(8192, 128, Dtype::Float32)).iter().all(|p| p.threads <= 64));
    }

    #[test]
    fn elementwise_configurations_vary_block_and_unrolling() {
        let k = library::swiglu_kernel(Dtype::Float32).unwrap();
        let sp = space(&k, &shape(4096, 4096, Dtype::Float32));
        assert_eq!(sp.len(), 6);
        assert!(sp.contains(&default(&k, &shape(4096, 4096, Dtype::Float32))));
    }
}
