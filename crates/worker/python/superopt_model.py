"""The worker's commands for `superopt model`: an mlx-lm model's block kinds, and the
end-to-end proof of a patch (tokens/s and greedy tokens of the stock, compiled and
patched model, side by side in one process). The worker imports this file from its own
folder when a model command first comes; it needs mlx-lm."""

import hashlib
import importlib.util
import inspect
import math
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten


def load(path, lazy=True):
    """The model in `path`, as mlx-lm loads it (config.json and safetensors)."""
    from mlx_lm.utils import load_model

    model, _ = load_model(Path(path), lazy=lazy)
    return model


def layers_of(model):
    """The decoder layers and their path: the longest list of modules named `layers` (as
    mlx-lm names them), else the longest list of modules in the model."""
    found = []
    for path, m in model.named_modules():
        for name, child in m.children().items():
            if isinstance(child, list) and child and all(isinstance(c, nn.Module) for c in child):
                found.append((name == "layers", len(child), f"{path}.{name}" if path else name, child))
    if not found:
        return None, []
    _, _, path, layers = max(found, key=lambda f: (f[0], f[1]))
    return path, layers


def kind_of(module):
    """A block kind's name: the class, with the module it is defined in."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def model_defined(module):
    """Whether a module's class is the model's own (mlx.nn's layers are MLX's)."""
    return not type(module).__module__.startswith("mlx.nn")


def call_kind(module):
    """"pure" where the block's call takes one array, "cached" where it takes an array, a
    mask and a KV cache (attention, as mlx-lm calls it), "other" otherwise."""
    params = list(inspect.signature(type(module).__call__).parameters.values())[1:]
    positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    if len(params) == 1 and len(positional) == 1:
        return "pure"
    if [p.name for p in positional[1:3]] == ["mask", "cache"] and all(p.default is not p.empty for p in params[1:]):
        return "cached"
    return "other"


def source_hash(module):
    """A hash of the source of every class in the block's subtree: a cached result holds
    only while the code it was found for is unchanged."""
    classes = sorted({type(m) for _, m in module.named_modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}")
    h = hashlib.sha256()
    for c in classes:
        try:
            h.update(inspect.getsource(c).encode())
        except (OSError, TypeError):
            h.update(f"{c.__module__}.{c.__qualname__}".encode())
    return h.hexdigest()[:16]


def signature(module):
    """What decides a block's program besides its input shapes and weights' values: its
    parameters' names, shapes and dtypes, and every plain attribute in its subtree (eps,
    heads, scale, flags). Instances with the same signature run the same program."""
    h = hashlib.sha256()
    for path, m in module.named_modules():
        h.update(f"{path}:{kind_of(m)}".encode())
        for name, value in sorted(vars(m).items()):
            if not isinstance(value, (mx.array, nn.Module, dict, list)) and not callable(value):
                h.update(f"{name}={value!r}".encode())
    for name, v in tree_flatten(module.parameters()):
        h.update(f"{name}{tuple(v.shape)}{v.dtype}".encode())
    return h.hexdigest()[:12]


def float_dtype(module):
    """The dtype the block computes in: its first floating parameter's."""
    for _, v in tree_flatten(module.parameters()):
        if mx.issubdtype(v.dtype, mx.floating):
            return v.dtype
    return mx.float32


def cmd_model_blocks(req):
    """The block kinds of the model's decoder layers, first instance first."""
    model = load(req["model"])
    path, layers = layers_of(model)
    if not layers:
        raise ValueError("no list of layers found in the model")
    kinds = {}  # by class and signature: instances that run the same program
    for i, layer in enumerate(layers):
        for name, child in layer.children().items():
            if not isinstance(child, nn.Module) or not model_defined(child):
                continue
            sig = signature(child)
            record = {"kind": kind_of(child), "signature": sig, "attribute": name, "instances": []}
            kind = kinds.setdefault((kind_of(child), sig), record)
            kind["instances"].append(f"{path}.{i}.{name}")
            if len(kind["instances"]) == 1:
                kind["call"] = call_kind(child)
                kind["source_hash"] = source_hash(child)
                kind["dtype"] = str(float_dtype(child)).split(".")[-1]
                kind["parameters"] = [
                    {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).split(".")[-1]}
                    for k, v in tree_flatten(child.parameters())
                ]
    hidden = getattr(model.args, "hidden_size", None) if hasattr(model, "args") else None
    vocab = getattr(model.args, "vocab_size", None) if hasattr(model, "args") else None
    import mlx_lm

    config = (Path(req["model"]) / "config.json").read_bytes()
    warm = req.get("warm")
    return {
        "warm_seconds": warm_up(model, warm["prefill_tokens"], warm["decode_batches"]) if warm else None,
        "layers": path,
        "count": len(layers),
        "hidden": hidden,
        "vocab": vocab,
        "blocks": list(kinds.values()),
        "mlx_lm": mlx_lm.__version__,
        "config_sha256": hashlib.sha256(config).hexdigest(),
    }


def warm_up(model, prefill_tokens, decode_batches):
    """Seconds the stock model takes once at the block runs' shapes: a prompt of each length,
    and a decode step at each batch; MLX builds its device kernels for them here and keeps
    them (its CUDA backend on disk) for the runs' processes."""
    from mlx_lm.models.cache import make_prompt_cache

    started = time.perf_counter()
    for t in prefill_tokens:
        mx.eval(model(mx.zeros((1, t), dtype=mx.int32)))
    for b in decode_batches:
        cache = make_prompt_cache(model)
        mx.eval(model(mx.zeros((b, 8), dtype=mx.int32), cache=cache))
        mx.eval(model(mx.zeros((b, 1), dtype=mx.int32), cache=cache))
    return time.perf_counter() - started


def module_at(model, path):
    """The module at a dotted path (`model.layers.0.mlp`)."""
    m = model
    for part in path.split("."):
        m = m[int(part)] if isinstance(m, list) else getattr(m, part)
    return m


def load_patch(path):
    spec = importlib.util.spec_from_file_location("superopt_patch", path)
    patch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patch)
    return patch


def compiled_class(cls, weights_of):
    """`cls` whose call runs through mx.compile, the parameters as inputs, read by
    `weights_of` (PATCH.py's reader, so that the compiled and patched forms pay the same)."""
    from mlx.utils import tree_unflatten

    def functional(self):
        names = [k for k, _ in tree_flatten(self.parameters())]

        def f(x, *params):
            own = self.parameters()
            self.update(tree_unflatten(list(zip(names, params))))
            try:
                return cls.__call__(self, x)
            finally:
                self.update(own)  # the traced placeholders must not stay in the module

        return mx.compile(f)

    def call(self, x):
        if "_superopt_compiled" not in self.__dict__:
            self.__dict__["_superopt_compiled"] = functional(self)
        return self.__dict__["_superopt_compiled"](x, *weights_of(self))

    return type(cls.__name__, (cls,), {"__call__": call, "_superopt_original": cls})


class Variants:
    """One model switched between its stock, compiled and patched forms by class."""

    def __init__(self, model, kinds, patch):
        self.model = model
        # Every module's class: the patch may switch any of them, and stock must be stock.
        self.modules = [m for _, m in model.named_modules()]
        self.stock = {id(m): type(m) for m in self.modules}
        self.blocks = [m for m in self.modules if kind_of(m) in kinds]
        self.compiled = {c: compiled_class(c, patch._weights) for c in {type(m) for m in self.blocks}}
        self.patch = patch

    def use(self, name):
        for m in self.modules:
            m.__class__ = self.stock[id(m)]
        if name == "compiled":
            for m in self.blocks:
                m.__class__ = self.compiled[type(m)]
        elif name == "patched":
            self.patch.patch(self.model)


def prompts(vocab, count, length, seed):
    return [mx.random.randint(0, vocab, (length,), key=mx.random.key(seed + i)) for i in range(count)]


def walk(model, prompt, pick, steps):
    """The model reads `prompt`, then `steps` tokens one at a time with mlx-lm's cache, each
    `pick(last)` of the float32 logits before it: yields those logits and the token read."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(prompt[None], cache=cache)
    for _ in range(steps):
        last = logits[0, -1, :].astype(mx.float32)
        token = pick(last)
        yield last, token
        logits = model(mx.array([[token]]), cache=cache)


def greedy(model, prompt, steps):
    """`steps` greedy tokens after `prompt`, and at each the margin of the chosen token's
    logit over the next best (how near the choice was to a tie)."""
    margins = []

    def pick(last):
        top2 = mx.topk(last, 2)
        token, margin = mx.argmax(last), mx.max(top2) - mx.min(top2)
        mx.eval(token, margin)
        margins.append(margin.item())
        return token.item()

    return [t for _, t in walk(model, prompt, pick, steps)], margins


def forced_logits(model, prompt, tokens):
    """The float32 logits before each of `tokens` when the model reads `prompt`, then `tokens`
    (teacher forcing: every form reads the same tokens)."""
    rest = iter(tokens)
    out = []
    for last, _ in walk(model, prompt, lambda _last: next(rest), len(tokens)):
        mx.eval(last)
        out.append(last)
    return out


def forced(variants, model, ps, tokens, forms):
    """Each of `forms` against stock, both reading stock's greedy `tokens` (teacher forcing):
    the relative L2 of its logits over every step (None where not finite), at how many
    steps its greedy choice would differ, and how many of those are exact ties of stock's
    logits. Prompt by prompt: one prompt's logits are kept."""
    sums = {n: [0.0, 0.0, 0, 0, 0] for n in forms}  # squared difference, squared norm, differs, steps, at ties
    for p, t in zip(ps, tokens):
        variants.use("stock")
        reference = forced_logits(model, p, t)
        for n in forms:
            variants.use(n)
            s = sums[n]
            for a, b in zip(forced_logits(model, p, t), reference):
                d = a - b
                s[0] += mx.sum(d * d).item()
                s[1] += mx.sum(b * b).item()
                chosen = mx.argmax(a).item()
                differs = chosen != mx.argmax(b).item()
                s[2] += int(differs)
                s[3] += 1
                s[4] += int(differs and ties_best(b, chosen))
        del reference
        mx.clear_cache()
    variants.use("stock")
    out = {}
    for n, (diff, norm, differs, steps, ties) in sums.items():
        rel = (diff / norm) ** 0.5 if norm > 0 else 0.0
        out[n] = {"rel_l2": rel if math.isfinite(rel) else None, "argmax_differs": differs, "steps": steps,
                  "at_ties": ties}
    return out


def ties_best(logits, token):
    """Whether `token`'s logit equals the best of these (stock's greedy choice there is a tie
    broken by token order, and `token` is one of the tied: any other rounding may pick it)."""
    return (logits[token] == mx.max(logits)).item()


# Prefills timed per form and round (a real model's prefill takes milliseconds: one alone
# varied by 5% between forms that run the same code).
PREFILL_REPS = 5


def prefill_rate(model, tokens, reps):
    """Prefill tokens per second: the prompt through a fresh cache, best of `reps`."""
    from mlx_lm.models.cache import make_prompt_cache

    best = float("inf")
    for _ in range(reps + 1):  # the first is a warm-up
        cache = make_prompt_cache(model)
        start = time.perf_counter()
        mx.eval(model(tokens, cache=cache))
        best = min(best, time.perf_counter() - start)
    return tokens.size / best


def decode_rate(model, tokens, steps):
    """Decode tokens per second at the batch of `tokens` (batch x prompt), after its prefill,
    as mlx_lm.generate decodes: the next step is queued (`mx.async_eval`) before the last
    token is read, so building a step's graph overlaps the device running the one before."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)

    def step(token):
        return mx.argmax(model(token[:, None], cache=cache)[:, -1, :], axis=-1)

    token = mx.argmax(model(tokens, cache=cache)[:, -1, :], axis=-1)
    mx.eval(token)
    for _ in range(2):  # warm-up steps
        token = step(token)
        mx.eval(token)
    start = time.perf_counter()
    build = 0.0
    for _ in range(steps):
        built = time.perf_counter()
        following = step(token)
        build += time.perf_counter() - built
        mx.async_eval(following)
        token.tolist()  # the token a caller reads while the next step runs
        token = following
    token.tolist()
    return tokens.shape[0] * steps / (time.perf_counter() - start), build / steps * 1e6


def cmd_model_proof(req):
    """Stock, compiled and patched model side by side: greedy tokens of each prompt, the
    compiled and patched logits on stock's tokens (`forced`), prefill and decode
    tokens/s. The forms alternate, each figure the best of `rounds`."""
    model = load(req["model"], lazy=False)
    patch = load_patch(req["patch"])
    variants = Variants(model, set(req["kinds"]), patch)
    names = ["stock", "compiled", "patched"]
    vocab = req["vocab"]
    ps = prompts(vocab, req["prompts"], req["prompt_tokens"], seed=1)
    tokens = {n: [] for n in names}
    margins = {n: [] for n in names}
    for n in names:
        variants.use(n)
        for p in ps:
            t, m = greedy(model, p, req["new_tokens"])
            tokens[n].append(t)
            margins[n].append(m)
    calls = dict(getattr(patch, "CALLS", {}))  # the winners' calls while the patched model decoded
    against = forced(variants, model, ps, tokens["stock"], names[1:])
    prefill = {n: 0.0 for n in names}
    decode = {n: {str(b): 0.0 for b in req["decode_batches"]} for n in names}
    build = {n: {} for n in names}  # host microseconds per step, at the best round
    batch_prompts = {b: mx.random.randint(0, vocab, (b, req["prompt_tokens"]), key=mx.random.key(7)) for b in req["decode_batches"]}
    for _ in range(req["rounds"]):
        for n in names:
            variants.use(n)
            prefill[n] = max(prefill[n], prefill_rate(model, ps[0][None], reps=PREFILL_REPS))
            for b, t in batch_prompts.items():
                rate, us = decode_rate(model, t, req["decode_steps"])
                if rate > decode[n][str(b)]:
                    decode[n][str(b)], build[n][str(b)] = rate, us
    variants.use("stock")
    return {"tokens": tokens, "margins": margins, "prefill": prefill, "decode": decode, "build_us": build, "calls": calls,
            "forced": against}


COMMANDS = {"model_blocks": cmd_model_blocks, "model_proof": cmd_model_proof}
