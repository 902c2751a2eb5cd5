"""A step that picks a row by argmax over scores rounded to bfloat16 (float64 would pick
another where they tie) and writes into its buffer in place."""
import mlx.core as mx


def fn(scores, buf):
    best = mx.argmax(scores.astype(mx.bfloat16), axis=-1)
    buf[:, :1] = buf[:, :1] + 1.0
    return mx.take_along_axis(buf, best[:, None], axis=-1)[:, 0] * 2.0


def input_factory(size_label, seed):
    # Row 0's scores tie in bfloat16 (1 and 1 + 2**-12): fn picks column 0, float64 column 1.
    scores = mx.array([[1.0, 1.0 + 2.0**-12, 0.0], [0.0, 0.5, 2.0]])
    return (scores, mx.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])), {}
