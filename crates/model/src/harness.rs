//! The harness of one block kind at one shape class: `fn(x, *weights)` runs the block's
//! first instance with the weights it is given (every instance runs the same code with
//! its own), and `input_factory` gives the model's real weights at seed 0 and random ones
//! like them at the other seeds.

use superopt_worker::protocol::BlockKind;

/// Decode (a few sequences, one token each) or prefill (one prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeClass {
    Decode,
    Prefill,
}

impl ShapeClass {
    pub const ALL: [ShapeClass; 2] = [ShapeClass::Decode, ShapeClass::Prefill];

    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Decode => "decode",
            ShapeClass::Prefill => "prefill",
        }
    }

    /// (batch, tokens) at small, typical and large: decode at each batch (the last
    /// times 4 where fewer than three are given), prefill at a quarter, half and all of
    /// the prompt.
    pub fn sizes(self, decode_batches: &[usize], prompt_tokens: usize) -> [(usize, usize); 3] {
        match self {
            ShapeClass::Decode => {
                let mut b: Vec<usize> = decode_batches.to_vec();
                while b.len() < 3 {
                    b.push(b.last().copied().unwrap_or(1) * 4);
                }
                [(b[0], 1), (b[1], 1), (b[2], 1)]
            }
            ShapeClass::Prefill => {
                let t = prompt_tokens.max(4);
                [(1, t / 4), (1, t / 2), (1, t)]
            }
        }
    }
}

/// The positions a decode step's KV cache holds before it (`P`) at small, typical and large, and
/// the cache's capacity (mlx-lm's `KVCache` grows in steps of 256). The room left differs between
/// the sizes, so the traces tell the positions held from the capacity less a constant: the
/// program's offsets become the positions held, as at every step of a real decode.
pub fn cache_positions(prompt_tokens: usize) -> [(usize, usize); 3] {
    let p = prompt_tokens.max(4);
    [p / 2, 2 * p + 100, 4 * p + 300].map(|past| (past, (past + 1).div_ceil(256) * 256))
}

/// What both harnesses begin with after their docstring: the imports, the block (the
/// model's first instance, loaded lazily), its weights' names and values, and `like`.
fn prelude(model: &str, block: &BlockKind, sizes: &str, hidden: i64, imports: &str) -> String {
    format!(
        r#"from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten
{imports}from mlx_lm.utils import load_model

MODEL = Path({model:?})
BLOCK = {path:?}
SIZES = {{{sizes}}}
HIDDEN = {hidden}
DTYPE = mx.{dtype}
# In a model the device is the bottleneck: Python's work on one layer overlaps the device's
# on the layers before it, so timings count the device's part of each call.
DEVICE_TIME = True

_model, _ = load_model(MODEL, lazy=True)
block = _model
for _part in BLOCK.split("."):
    block = block[int(_part)] if isinstance(block, list) else getattr(block, _part)
NAMES = [k for k, _ in tree_flatten(block.parameters())]
WEIGHTS = [v for _, v in tree_flatten(block.parameters())]


def like(w, key):
    """Random values like weight `w`: packed integers as random bits, floats with its mean and spread."""
    if mx.issubdtype(w.dtype, mx.integer):
        high, low = mx.random.split(key)
        high = mx.random.randint(0, 1 << 16, w.shape, dtype=mx.uint32, key=high)
        low = mx.random.randint(0, 1 << 16, w.shape, dtype=mx.uint32, key=low)
        return ((high << 16) | low).astype(w.dtype)
    w32 = w.astype(mx.float32)
    return (mx.mean(w32) + mx.std(w32) * mx.random.normal(w.shape, key=key)).astype(w.dtype)
"#,
        path = block.instances[0],
        dtype = block.dtype,
    )
}

/// `SIZES`'s entries: each size's numbers.
fn sizes_dict<const K: usize>(sizes: [[usize; K]; 3]) -> String {
    let entries = ["small", "typical", "large"].iter().zip(sizes).map(|(z, v)| {
        let v: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        format!("{z:?}: ({})", v.join(", "))
    });
    entries.collect::<Vec<_>>().join(", ")
}

/// The source of a decode harness for a block called with a mask and a KV cache: `fn(x,
/// keys, values, positions, *weights)` runs one step on an mlx-lm `KVCache` whose buffers
/// are `keys` and `values` (capacity S) holding `positions.shape[0]` positions, and returns
/// the block's output and the updated buffers. `SIZES`: batch, positions held, capacity.
pub fn source_cached(
    model: &str,
    block: &BlockKind,
    batches: [usize; 3],
    past: [(usize, usize); 3],
    hidden: i64,
) -> String {
    let sizes = sizes_dict([0, 1, 2].map(|k| [batches[k], past[k].0, past[k].1]));
    let imports = "from mlx_lm.models.cache import KVCache\n";
    format!(
        r#""""`{kind}` of the model in {model}, one decode step with mlx-lm's KV cache, as
`superopt model` runs it. The weights are inputs (the model's own at seed 0, random ones like
them at the other seeds); so are the cache's buffers, updated in place as mlx-lm does, and the
number of positions they hold (the length of `positions`, whose values are not read)."""
{prelude}
# The dims that change at every decode step: the buffers' capacity and the positions held.
STEP_DIMS = {{1: [2], 2: [2], 3: [0]}}


def heads(weights):
    """(KV heads, key dim, value dim) from one step of the block on an empty cache."""
    cache = KVCache()
    fn_(mx.zeros((1, 1, HIDDEN), DTYPE), cache, weights)
    return cache.keys.shape[1], cache.keys.shape[3], cache.values.shape[3]


def fn_(x, cache, weights):
    block.update(tree_unflatten(list(zip(NAMES, weights))))
    return block(x, mask=None, cache=cache)


def fn(x, keys, values, positions, *weights):
    cache = KVCache()
    cache.keys, cache.values, cache.offset = keys, values, positions.shape[0]
    out = fn_(x, cache, weights)
    return out, cache.keys, cache.values


def input_factory(size_label, seed):
    batch, held, capacity = SIZES[size_label]
    keys = mx.random.split(mx.random.key(seed), len(WEIGHTS) + 3)
    weights = WEIGHTS if seed == 0 else [like(w, k) for w, k in zip(WEIGHTS, keys[3:])]
    kv_heads, key_dim, value_dim = heads(weights)
    x = mx.random.normal((batch, 1, HIDDEN), key=keys[0]).astype(DTYPE)
    cached_keys = mx.random.normal((batch, kv_heads, capacity, key_dim), key=keys[1]).astype(DTYPE)
    cached_values = mx.random.normal((batch, kv_heads, capacity, value_dim), key=keys[2]).astype(DTYPE)
    positions = mx.zeros((held,), dtype=mx.int32)
    return (x, cached_keys, cached_values, positions, *weights), {{}}
"#,
        kind = block.kind,
        prelude = prelude(model, block, &sizes, hidden, imports),
    )
}

/// The harness's source (`SIZES`: batch, tokens).
pub fn source(model: &str, block: &BlockKind, class: ShapeClass, sizes: [(usize, usize); 3], hidden: i64) -> String {
    let sizes = sizes_dict(sizes.map(|(b, t)| [b, t]));
    format!(
        r#""""`{kind}` of the model in {model}, {class} shapes, as `superopt model` runs it.
Every instance of the block runs the same code with its own weights, so the weights are
inputs: the model's own at seed 0, random ones like them at the other seeds."""
{prelude}

def fn(x, *weights):
    block.update(tree_unflatten(list(zip(NAMES, weights))))
    return block(x)


def input_factory(size_label, seed):
    batch, tokens = SIZES[size_label]
    keys = mx.random.split(mx.random.key(seed), len(WEIGHTS) + 1)
    x = mx.random.normal((batch, tokens, HIDDEN), key=keys[0]).astype(DTYPE)
    weights = WEIGHTS if seed == 0 else [like(w, k) for w, k in zip(WEIGHTS, keys[1:])]
    return (x, *weights), {{}}
"#,
        kind = block.kind,
        class = class.name(),
        prelude = prelude(model, block, &sizes, hidden, ""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_worker::protocol::CallKind;

    fn block(call: CallKind) -> BlockKind {
        BlockKind {
            kind: "mlx_lm.models.qwen3.MLP".into(),
            signature: "0123456789ab".into(),
            attribute: "mlp".into(),
            instances: vec!["model.layers.0.mlp".into(), "model.layers.1.mlp".into()],
            call,
            source_hash: "0".into(),
            dtype: "bfloat16".into(),
            parameters: vec![],
        }
    }

    #[test]
    fn a_block_called_with_one_array_has_its_weights_as_inputs() {
        let sizes = ShapeClass::Decode.sizes(&[1, 8], 128);
        assert_eq!(sizes, [(1, 1), (8, 1), (32, 1)]);
        insta::assert_snapshot!(source("/m", &block(CallKind::Pure), ShapeClass::Decode, sizes, 4096));
    }

    #[test]
    fn a_block_with_a_kv_cache_has_its_buffers_and_their_fill_as_inputs() {
        let past = cache_positions(128);
        assert_eq!(past, [(64, 256), (356, 512), (812, 1024)]);
        for p in [32, 128, 512, 2048] {
            let room: Vec<usize> = cache_positions(p).iter().map(|(held, capacity)| capacity - held).collect();
            assert!(room[0] != room[1] && room[1] != room[2] && room[0] != room[2], "{p}: {room:?}");
        }
        insta::assert_snapshot!(source_cached("/m", &block(CallKind::Cached), [1, 8, 32], past, 4096));
    }
}
