//! PATCH.py: a plain module whose `patch(model)` makes every verified block instance call
//! its winner's `verified(...)` (the program verified for the inputs, else None), and the
//! original call where that gives None. The winners are the modules `superopt run` wrote, in a folder
//! beside it. An instance is patched only where its path, class and weights' names are
//! those it was verified with.

use std::fmt::Write;
use superopt_worker::protocol::CallKind;

/// A block kind's verified modules (file names in the folder), tried in order, and the
/// instances (paths in the model) they were verified for.
pub struct Patched {
    pub kind: String,
    pub call: CallKind,
    /// The weights' names in `tree_flatten` order: the winners' arguments after the inputs.
    pub weights: Vec<String>,
    pub instances: Vec<String>,
    pub modules: Vec<String>,
}

fn list(xs: &[String]) -> String {
    let quoted: Vec<String> = xs.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// PATCH.py's source: `folder` is the winners' folder beside it, `notes` its docstring's lines.
pub fn source(folder: &str, patched: &[Patched], notes: &[String]) -> String {
    let mut blocks = String::new();
    for p in patched {
        let cached = if p.call == CallKind::Cached { "True" } else { "False" };
        writeln!(blocks, "    (\n        {:?},\n        {cached},", p.kind).unwrap();
        for xs in [&p.weights, &p.instances, &p.modules] {
            writeln!(blocks, "        {},", list(xs)).unwrap();
        }
        writeln!(blocks, "    ),").unwrap();
    }
    format!(
        r#""""superopt model's patch.
{notes}

    model = patch(model)  # the verified blocks now run their verified programs
"""
import importlib.util
import os

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.models.cache import KVCache

_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), {folder:?})
# Per block kind: the class (with its module), whether it is called with a mask and a KV
# cache, its weights' names in order, the instances verified, and the modules verified.
_BLOCKS = [
{blocks}]
# Calls that ran each module (the end-to-end proof reads them).
CALLS = {{}}
_modules = {{}}
_classes = {{}}


def _module(name):
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(_FOLDER, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def _run(winners, args):
    """The outputs of the first winner verified for `args`; None where none was."""
    for name, winner in winners:
        out = winner.verified(*args)
        if out is not None:
            CALLS[name] = CALLS.get(name, 0) + 1
            return out
    return None


def _patched(cls, number):
    """`cls` whose call runs block `number`'s winners where they fit, else the original."""
    if (cls, number) not in _classes:
        _, cached, _, _, names = _BLOCKS[number]
        winners = [(name, _module(name)) for name in names]

        def __call__(self, x):
            out = _run(winners, (x, *_weights(self)))
            return cls.__call__(self, x) if out is None else out

        def cached_call(self, x, mask=None, cache=None):
            # A decode step on mlx-lm's KVCache with room for it, as the winners were verified:
            # they take the cache's buffers and how many positions they hold (a length), and
            # return the block's output and the buffers updated.
            if mask is None and type(cache) is KVCache and cache.keys is not None:
                if cache.offset + x.shape[1] <= cache.keys.shape[2]:
                    held = _positions(cache.offset)
                    got = _run(winners, (x, cache.keys, cache.values, held, *_weights(self)))
                    if got is not None:
                        out, cache.keys, cache.values = got
                        cache.offset += x.shape[1]
                        return out
            return cls.__call__(self, x, mask=mask, cache=cache)

        body = {{"__call__": cached_call if cached else __call__, "__module__": cls.__module__}}
        _classes[(cls, number)] = type(cls.__name__, (cls,), dict(body, _superopt_original=cls))
    return _classes[(cls, number)]


_held = [None]


def _positions(n):
    """An array of length `n` (its values unread), shared by the layers of one decode step."""
    if _held[0] is None or _held[0].shape[0] != n:
        _held[0] = mx.zeros((n,), dtype=mx.int32)
    return _held[0]


def _weights(module):
    """The module's weights in `tree_flatten` order, read where they live (found once: weights
    loaded into the module later are read too)."""
    if "_superopt_slots" not in module.__dict__:
        slots = []
        for name, _ in tree_flatten(module.parameters()):
            *path, key = name.split(".")
            container = module
            for part in path:
                container = container[int(part)] if isinstance(container, (list, tuple)) else container[part]
            slots.append((container, int(key) if isinstance(container, (list, tuple)) else key))
        module.__dict__["_superopt_slots"] = slots
    return [container[key] for container, key in module.__dict__["_superopt_slots"]]


def _kind(cls):
    return f"{{cls.__module__}}.{{cls.__qualname__}}"


def patch(model):
    """Patches `model` in place (patching twice changes nothing) and returns it: each verified
    instance whose class and weights' names are still those it was verified with."""
    modules = dict(model.named_modules())
    for number, (kind, _, weights, paths, _) in enumerate(_BLOCKS):
        for path in paths:
            module = modules.get(path)
            if module is None:
                continue
            cls = getattr(type(module), "_superopt_original", type(module))
            if _kind(cls) == kind and [name for name, _ in tree_flatten(module.parameters())] == weights:
                module.__class__ = _patched(cls, number)
    return model
"#,
        notes = notes.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_lists_each_kind_with_its_modules_in_order() {
        let mlp = Patched {
            kind: "mlx_lm.models.qwen3.MLP".into(),
            call: CallKind::Pure,
            weights: vec!["gate_proj.weight".into(), "down_proj.weight".into(), "up_proj.weight".into()],
            instances: vec!["model.layers.0.mlp".into(), "model.layers.1.mlp".into()],
            modules: vec!["MLP_decode.py".into(), "MLP_prefill.py".into()],
        };
        let attention = Patched {
            kind: "mlx_lm.models.qwen3.Attention".into(),
            call: CallKind::Cached,
            weights: vec!["q_proj.weight".into(), "k_proj.weight".into()],
            instances: vec!["model.layers.0.self_attn".into()],
            modules: vec!["Attention_decode.py".into()],
        };
        insta::assert_snapshot!(source("PATCH_blocks", &[mlp, attention], &["Model: m (2 layers).".into()]));
    }
}
