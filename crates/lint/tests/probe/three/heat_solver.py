"""Implicit heat-equation / Poisson solvers with MLX.

1-D Crank-Nicolson (Cholesky + triangular solves) and a 2-D Jacobi
relaxation for Poisson. Run as a script: `python heat_solver.py`.
"""
import time

import numpy as np
import mlx.core as mx


def laplacian_1d(n, h):
    main = -2.0 * np.ones(n)
    off = np.ones(n - 1)
    A = (np.diag(main) + np.diag(off, 1) + np.diag(off, -1)) / h**2
    return A  # float64, host side


def forward_substitution(L, b):
    n = L.shape[0]
    y = mx.zeros_like(b)
    for i in range(n):
        y[i] = (b[i] - mx.sum(L[i, :i] * y[:i])) / L[i, i]
    return y


def back_substitution(U, y):
    n = U.shape[0]
    x = mx.zeros_like(y)
    for i in range(n - 1, -1, -1):
        x[i] = (y[i] - mx.sum(U[i, i + 1:] * x[i + 1:])) / U[i, i]
    return x


def cholesky_solve(A, b):
    Lc = mx.linalg.cholesky(A, stream=mx.cpu)
    y = forward_substitution(Lc, b)
    return back_substitution(Lc.T, y)


def cholesky_solve_fast(A, b):
    with mx.stream(mx.cpu):
        Lc = mx.linalg.cholesky(A)
        y = mx.linalg.solve_triangular(Lc, b, upper=False)
        return mx.linalg.solve_triangular(Lc.T, y, upper=True)


def crank_nicolson(u0, alpha, dt, h, steps):
    n = u0.shape[0]
    A = laplacian_1d(n, h)
    I = np.eye(n)
    lhs = mx.array(I - 0.5 * alpha * dt * A, dtype=mx.float64)
    rhs_op = mx.array(I + 0.5 * alpha * dt * A, dtype=mx.float64)
    u = mx.array(u0, dtype=mx.float64)
    for _ in range(steps):
        b = rhs_op @ u
        u = cholesky_solve(lhs, b)
    return u


def crank_nicolson_f32(u0, alpha, dt, h, steps):
    n = u0.shape[0]
    A = laplacian_1d(n, h)
    I = np.eye(n)
    lhs = mx.array((I - 0.5 * alpha * dt * A).astype(np.float32))
    rhs_op = mx.array((I + 0.5 * alpha * dt * A).astype(np.float32))
    u = mx.array(u0.astype(np.float32))
    for _ in range(steps):
        u = cholesky_solve_fast(lhs, rhs_op @ u)
    return u


def energy_cpu(u_np):
    u = mx.array(u_np).astype(mx.float64, stream=mx.cpu)
    return mx.sum(u * u, stream=mx.cpu)


def jacobi_poisson(f, h, tol=1e-5, max_iter=5000):
    u = mx.zeros_like(f)
    it = 0
    for it in range(max_iter):
        interior = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]
                           - h * h * f[1:-1, 1:-1])
        u_new = mx.pad(interior, 1)
        err = mx.max(mx.abs(u_new - u)).item()
        u = u_new
        if err < tol:
            break
    return u, it


def lsq_gradient(y):
    X = mx.random.normal((10000, 50))
    beta = mx.zeros((50, 1))
    for _ in range(100):
        grad = X.T @ X @ beta - X.T @ y
        beta = beta - 1e-5 * grad
    return beta


def gram_project():
    X = mx.random.normal((10000, 50))
    M = mx.random.normal((50, 50))
    return X.T @ X @ M


def two_step_operator():
    A = mx.random.normal((2048, 2048)) / 45.0
    v = mx.random.normal((2048, 1))
    w = A @ A @ v
    w2 = A @ (A @ v)
    return mx.sqrt(mx.sum(w * w)), mx.sqrt(mx.sum(w2 * w2))


if __name__ == "__main__":
    n = 256
    xs = np.linspace(0.0, 1.0, n, dtype=np.float64)
    u0 = np.sin(np.pi * xs)
    t0 = time.perf_counter()
    u = crank_nicolson(u0, alpha=1.0, dt=1e-4, h=xs[1] - xs[0], steps=10)
    mx.eval(u)
    print("CN f64", time.perf_counter() - t0)
    t0 = time.perf_counter()
    u32 = crank_nicolson_f32(u0, alpha=1.0, dt=1e-4, h=xs[1] - xs[0], steps=10)
    mx.eval(u32)
    print("CN f32", time.perf_counter() - t0, energy_cpu(np.array(u32)))
    f = mx.ones((128, 128))
    sol, iters = jacobi_poisson(f, 1.0 / 127)
    print("jacobi iters", iters)
    print(lsq_gradient(mx.random.normal((10000, 1))).shape, gram_project().shape)
    print(two_step_operator())
