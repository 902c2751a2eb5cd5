//! A warm worker publishes the kernels it compiled into MLX's shared disk cache: each file
//! the cache lacks, by an atomic rename, and nothing of a kernel whose `.ptx` (what a
//! reader looks for) is there already.

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
print("ok")
"#;

#[test]
fn a_warm_worker_publishes_only_kernels_the_shared_cache_lacks() {
    common::run_check(CHECK);
}
