"""Quick matmul micro-benchmarks used while profiling the projector."""
import time

import mlx.core as mx

G = mx.random.uniform(shape=(1, 4096))
M1 = mx.random.uniform(shape=(4096, 4096))
M2 = mx.random.uniform(shape=(4096, 4096))


def timeit(fn, iters=10):
    mx.eval(fn())
    tic = time.perf_counter()
    for _ in range(iters):
        mx.eval(fn())
    return (time.perf_counter() - tic) / iters


def bench_chain():
    A = mx.random.normal((4096, 4096))
    B = mx.random.normal((4096, 4096))
    v = mx.random.normal((4096, 1))
    y = (A @ B) @ v
    mx.eval(y)
    return y


def lowrank_update():
    U = mx.random.normal(shape=(8192, 16))
    V = mx.random.normal(shape=(16, 8192))
    X = mx.random.normal(shape=(8192, 64))
    return mx.matmul(mx.matmul(U, V), X)


def projector_chain():
    W1 = mx.zeros((2048, 2048), dtype=mx.float16)
    W2 = mx.zeros((2048, 2048), dtype=mx.float16)
    x = mx.ones((2048, 8), dtype=mx.float16)
    h = W1 @ W2
    return h @ x


def row_chain():
    # (G @ M1) @ M2: G is a single row, so left-to-right is already the cheap order
    return G @ M1 @ M2


def col_chain():
    # (M1 @ M2) @ G.T: 4096^3 flops for the first product
    return M1 @ M2 @ G.T


if __name__ == "__main__":
    for fn in (bench_chain, lowrank_update, projector_chain, row_chain, col_chain):
        print(fn.__name__, f"{timeit(fn) * 1e3:.2f} ms")
