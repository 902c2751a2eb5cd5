"""The hand port (right/chunked_gated_delta__hand_port.py) with the state update's
per-position decays left out: each chunk's keys enter the state as if they all came at its
last position (exact where g is 0)."""
import importlib.util
import os

import mlx.core as mx

HARNESS = "tests/mutations/harnesses/chunked_gated_delta.py"

_HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC = importlib.util.spec_from_file_location(
    "_hand_port", os.path.join(_HERE, "..", "right", "chunked_gated_delta__hand_port.py")
)
port = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(port)
port.state_update = lambda last, gc, k: k
optimized = mx.compile(port.forward)
