"""The module fails at import."""
import mlx.core as mx

raise RuntimeError("this harness cannot be imported")
