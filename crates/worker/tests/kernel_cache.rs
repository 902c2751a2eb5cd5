//! A warm worker publishes the kernels it compiled into MLX's shared disk cache: each file
//! the cache lacks, by an atomic rename, and nothing of a kernel whose `.ptx` (what a
//! reader looks for) is there already. Before a call it takes from that cache the kernels
//! its own folder lacks, whole and settled ones only.

mod common;

const CHECK: &str = r#"
import os, sys, tempfile
own, shared = tempfile.mkdtemp(), tempfile.mkdtemp()
os.environ["MLX_PTX_CACHE_DIR"], os.environ["SUPEROPT_SHARED_KERNEL_CACHE"] = own, shared
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)

def put(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(text)

for stem in ["a", "b", "long/part/c"]:
    for ext in [".ptx", ".txt", ".cu"]:
        put(own, stem + ext, "new " + stem + ext)
put(shared, "b.ptx", "old b.ptx")
assert w["publish_kernels"]() == 6, "a's and c's three files; none of b's"
assert open(os.path.join(shared, "a.ptx")).read() == "new a.ptx"
assert open(os.path.join(shared, "long/part/c.txt")).read() == "new long/part/c.txt"
assert open(os.path.join(shared, "b.ptx")).read() == "old b.ptx", "a kernel the cache has stays as it is"
assert not os.path.exists(os.path.join(shared, "b.txt"))
assert not [n for _, _, names in os.walk(shared) for n in names if n.endswith(".part")]
assert w["publish_kernels"]() == 0, "published once"
os.environ["SUPEROPT_SHARED_KERNEL_CACHE"] = own
assert w["publish_kernels"]() == 0, "a worker on the shared cache itself publishes nothing"
del os.environ["SUPEROPT_SHARED_KERNEL_CACHE"]
import mlx.core as mx
assert w["shared_kernel_cache"]() == os.path.join(tempfile.gettempdir(), "mlx", mx.__version__, "ptx")

# Seeding: the shared cache's whole, settled kernels this worker lacks, nothing else.
own, shared = tempfile.mkdtemp(), tempfile.mkdtemp()
os.environ["MLX_PTX_CACHE_DIR"], os.environ["SUPEROPT_SHARED_KERNEL_CACHE"] = own, shared
import time
now = time.time()
for stem in ["whole", "deep/whole", "fresh", "mine", "half"]:
    for ext in [".ptx", ".txt", ".cu"]:
        if (stem, ext) != ("half", ".cu"):
            put(shared, stem + ext, "shared " + stem + ext)
            old = now - (0.5 if stem == "fresh" else 60)
            os.utime(os.path.join(shared, stem + ext), (old, old))
put(shared, "whole.ptx.99.part", "a publisher's file on its way")
put(own, "mine.ptx", "my own mine.ptx")
assert w["seed_kernels"](now) == 2, "whole and deep/whole: not fresh (written now), mine (had), half (no .cu)"
assert open(os.path.join(own, "deep/whole.txt")).read() == "shared deep/whole.txt"
assert open(os.path.join(own, "mine.ptx")).read() == "my own mine.ptx"
for gone in ["fresh.ptx", "half.ptx", "half.txt", "mine.txt"]:
    assert not os.path.exists(os.path.join(own, gone)), gone
assert not [n for _, _, names in os.walk(own) for n in names if ".part" in n]
assert w["seed_kernels"](now + 10) == 1, "fresh, settled now"
assert w["publish_kernels"]() == 0, "seeded kernels are the shared cache's already"
os.environ["SUPEROPT_SHARED_KERNEL_CACHE"] = own
assert w["seed_kernels"](now) == 0, "a worker on the shared cache itself takes nothing"
print("ok")
"#;

#[test]
fn a_warm_worker_publishes_and_takes_only_kernels_the_other_cache_lacks() {
    common::run_check(CHECK);
}
