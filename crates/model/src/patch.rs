//! PATCH.py: a plain module whose `patch(model)` makes every block of a kind with a
//! verified winner call it, and the original elsewhere. The winners are the modules
//! `superopt run` wrote, in a folder beside it; each says with `fits(...)` which inputs
//! it was verified for.

use std::fmt::Write;

/// A block kind's verified modules (file names in the folder), tried in order.
pub struct Patched {
    pub kind: String,
    pub modules: Vec<String>,
}

/// PATCH.py's source: `folder` is the winners' folder beside it, `notes` its docstring's lines.
pub fn source(folder: &str, patched: &[Patched], notes: &[String]) -> String {
    let mut winners = String::new();
    for p in patched {
        let files: Vec<String> = p.modules.iter().map(|m| format!("{m:?}")).collect();
        writeln!(winners, "    {:?}: [{}],", p.kind, files.join(", ")).unwrap();
    }
    format!(
        r#""""superopt model's patch.
{notes}

    model = patch(model)  # the blocks of a patched kind now run their verified programs
"""
import importlib.util
import os

from mlx.utils import tree_flatten

_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), {folder:?})
# Block kind (the class, with its module) -> the modules superopt verified for it.
_WINNERS = {{
{winners}}}
_modules = {{}}
_classes = {{}}


def _module(name):
    if name not in _modules:
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(_FOLDER, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def _patched(cls):
    """`cls` whose call runs the first winner verified for its inputs, else the original."""
    if cls not in _classes:
        winners = [_module(name) for name in _WINNERS[_kind(cls)]]

        def __call__(self, x):
            weights = [container[key] for container, key in _slots(self)]
            for winner in winners:
                if winner.fits(x, *weights):
                    return winner.optimized(x, *weights)
            return cls.__call__(self, x)

        body = {{"__call__": __call__, "__module__": cls.__module__, "_superopt_original": cls}}
        _classes[cls] = type(cls.__name__, (cls,), body)
    return _classes[cls]


def _slots(module):
    """Where each weight lives ((module or list, key), in `tree_flatten` order), found once:
    reading them is then cheap, and weights loaded into the module later are read too."""
    if "_superopt_slots" not in module.__dict__:
        slots = []
        for name, _ in tree_flatten(module.parameters()):
            *path, key = name.split(".")
            container = module
            for part in path:
                container = container[int(part)] if isinstance(container, list) else container[part]
            slots.append((container, int(key) if isinstance(container, list) else key))
        module.__dict__["_superopt_slots"] = slots
    return module.__dict__["_superopt_slots"]


def _kind(cls):
    return f"{{cls.__module__}}.{{cls.__qualname__}}"


def patch(model):
    """Patches `model` in place (patching twice changes nothing) and returns it."""
    for _, module in model.named_modules():
        cls = getattr(type(module), "_superopt_original", type(module))
        if _kind(cls) in _WINNERS:
            module.__class__ = _patched(cls)
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
        let patched = [Patched {
            kind: "mlx_lm.models.qwen3.MLP".into(),
            modules: vec!["MLP_decode.py".into(), "MLP_prefill.py".into()],
        }];
        insta::assert_snapshot!(source("PATCH_blocks", &patched, &["Model: m (2 layers).".into()]));
    }
}
