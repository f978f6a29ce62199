"""Benchmark the kernel engine against the naive per-sample loop and the batched limit.

For each model (timm models at 32×32 inputs, O = 10, ``pretrained=False``; ``nb201``: an NB201
cell network of the nb201 space, C=16, N=5), each N and each thread count, side by side in one
run, every measurement in a fresh subprocess (so that peak RSS, ``ru_maxrss``, is its own):

* ``pntk``    nasntk pNTK (implementation="auto": the per-layer structured path here)
* ``pntk_fn`` the same through a kernel function made once (``nasntk.pntk_fn``): the set-up
              (model copy, probe) reused, as when one model is scored on several batches
* ``vmap``    nasntk pNTK with implementation="vmap" (generic torch.func path), for reference
* ``entk``    nasntk full eNTK (N·O × N·O)
* ``loop``    per-sample autograd loop: N backward passes of f̄(xₙ), J [N, P] stored, K = J Jᵀ
* ``fwdbwd``  the limit: one batched forward + backward of f̄ summed over the same N samples

Prints wall and CPU time, peak RSS (and the increase over the process after setup), and the
ratios eNTK/pNTK, loop/pNTK, pNTK/fwdbwd and loop/fwdbwd on both clocks. The last names a
cause rather than a target: the pNTK runs at least one batched forward+backward, so loop/pNTK
can never exceed loop/fwdbwd (small networks at small N batch poorly on a CPU). On CUDA the peak is
``torch.cuda.max_memory_allocated``. Each method is warmed up (one small forward + backward, and
one call of the method itself) and timed ``--repeat`` times; the best is kept. ``--busy K`` runs
K other CPU-bound processes (a float32 matmul loop each, one thread) for the whole run, as a
shared machine would: the oversubscribed case.

    python experiments/bench_kernels.py                          # 5 models, N = 16 … 256, 1 and 2 threads
    python experiments/bench_kernels.py --n 16,24 --threads 1,2 --busy 1 --methods fwdbwd,pntk,loop
    python experiments/bench_kernels.py --models resnet18 --n 64 --entk-max-n 64
    python experiments/bench_kernels.py --resnet50               # pNTK of resnet50 at N = 1000
    python experiments/bench_kernels.py --breakdown --n 16,24 --threads 1 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

MODELS = ["mobilenetv3_small_050", "resnet18", "efficientnet_b0", "vit_tiny_patch16_224", "nb201"]
NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def build(name: str, num_classes: int = 10):
    if name == "nb201":
        from nasntk.search_spaces import get as get_space

        space = get_space("nb201")
        return space.build(
            space.parse(NB201_CELL), num_classes=num_classes, in_chans=3, img_size=32
        )
    import timm

    kw = {"img_size": 32, "patch_size": 4} if name.startswith("vit") else {}
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kw)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(cfg: dict) -> dict:
    """One measurement (run in its own process)."""
    import torch

    from nasntk import entk, pntk, pntk_fn

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    dev = torch.device(cfg["device"])
    model = build(cfg["model"]).to(dev).eval()
    x = torch.randn(cfg["n"], 3, 32, 32, device=dev)
    opts = {"device": dev, "max_memory": cfg["max_memory"]}
    with torch.no_grad():
        o = model(x[:2]).shape[1]
    params = [p for p in model.parameters() if p.requires_grad]
    num_params = sum(p.numel() for p in params)
    method = cfg["method"]
    if method == "loop" and cfg["n"] * num_params * 4 > cfg["loop_max_bytes"]:
        return {"skipped": f"J would take {cfg['n'] * num_params * 4 / 2**30:.1f} GiB"}

    fn = pntk_fn(model, **opts) if method == "pntk_fn" else None

    def run():
        if method == "pntk":
            return pntk(model, x, **opts)
        if method == "pntk_fn":
            return fn(x)
        if method == "entk":
            return entk(model, x, **opts)
        if method == "vmap":
            return pntk(model, x, implementation="vmap", **opts)
        if method == "fwdbwd":
            model.zero_grad(set_to_none=True)
            (model(x).sum() / math.sqrt(o)).backward()
            return None
        if method == "loop":
            jac = torch.empty(cfg["n"], num_params, device=dev)
            for i in range(cfg["n"]):
                f = model(x[i : i + 1]).sum() / math.sqrt(o)
                grads = torch.autograd.grad(f, params)
                jac[i] = torch.cat([g.reshape(-1) for g in grads])
            k = torch.zeros(cfg["n"], cfg["n"], dtype=torch.float64, device=dev)
            for c in range(0, num_params, 1 << 20):
                part = jac[:, c : c + (1 << 20)].double()
                k += part @ part.T
            return k
        raise ValueError(method)

    model(x[: min(8, cfg["n"])]).sum().backward()  # warm-up (one-time kernel set-up)
    model.zero_grad(set_to_none=True)
    if method in ("pntk", "pntk_fn", "vmap", "entk"):
        run()  # the method's own one-time set-up (allocator, first dispatch), as in a search
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb() if dev.type != "cuda" else torch.cuda.memory_allocated() / 2**20
    wall, cpu = [], []
    for _ in range(cfg["repeat"]):
        t, c = time.perf_counter(), time.process_time()
        run()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak = _rss_mb() if dev.type != "cuda" else torch.cuda.max_memory_allocated() / 2**20
    return {"wall": min(wall), "cpu": min(cpu), "peak_mb": peak, "base_mb": base}


def breakdown(cfg: dict) -> dict:
    """Where one fresh ``pntk`` call's time goes (ms, mean of ``repeat`` calls after two warm-up
    calls): the model copy, the batch set-up (one small forward for the output size), the
    one-sample probe, and the structured pass itself, beside one batched forward+backward and
    one forward alone. From the last two, the ratio eNTK/pNTK would have if both cost only their
    passes, (F + O·B) / (F + B) with O = 10 backward passes against one: the most it can be where
    the Grams are negligible (small N)."""
    import torch

    from nasntk import pntk
    from nasntk.kernels import api

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = build(cfg["model"]).eval()
    x = torch.randn(cfg["n"], 3, 32, 32)
    spent: dict[str, float] = {}
    for name in ("prepare_model", "with_batch", "trace_probe", "_structured_pass"):

        def timed(*a, _f=getattr(api, name), _name=name, **k):
            t = time.perf_counter()
            out = _f(*a, **k)
            spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t
            return out

        setattr(api, name, timed)
    for _ in range(2):
        pntk(model, x, bn="eval", device="cpu")
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    spent.clear()
    t = time.perf_counter()
    for _ in range(cfg["repeat"]):
        pntk(model, x, bn="eval", device="cpu")
    total = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(cfg["repeat"]):
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    fwdbwd = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        for _ in range(cfg["repeat"]):
            model(x)
    fwd = time.perf_counter() - t
    ms = {k: 1e3 * v / cfg["repeat"] for k, v in spent.items()}
    per = 1e3 / cfg["repeat"]
    return {"pntk": total * per, "fwdbwd": fwdbwd * per, "fwd": fwd * per, **ms}


def busy() -> None:
    """A CPU-bound neighbour: float32 matmuls on one thread, forever."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while True:
        a = torch.tanh(a @ a)


def measure(cfg: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout:.0f} s"}
    if res.returncode != 0:
        return {"skipped": "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    if "skipped" in r:
        return f"{'—':>9} {'':>9} {'':>16}  ({r['skipped']})"
    gain = r["peak_mb"] - r["base_mb"]
    return f"{r['wall']:8.2f}s {r['cpu']:8.2f}s {r['peak_mb']:7.0f} MB (+{gain:5.0f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--n", default="16,24,64,128,256", help="comma-separated sample counts")
    ap.add_argument("--methods", default="fwdbwd,pntk,pntk_fn,loop,entk,vmap")
    ap.add_argument("--entk-max-n", type=int, default=64, help="skip eNTK above this N")
    ap.add_argument("--vmap-max-n", type=int, default=64, help="skip vmap above this N")
    ap.add_argument("--loop-max-bytes", type=float, default=3e9, help="skip loop if J is larger")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch / OpenMP threads")
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound neighbour processes")
    ap.add_argument("--repeat", type=int, default=2, help="timings per measurement (best kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-memory", type=float, default=None, help="nasntk budget (bytes)")
    ap.add_argument("--timeout", type=float, default=1200, help="per measurement (s)")
    ap.add_argument("--resnet50", action="store_true", help="only: pNTK of resnet50, N=1000")
    ap.add_argument(
        "--breakdown", action="store_true", help="only: where a fresh pNTK call's time goes"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--busy-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        cfg = json.loads(args.child)
        print(json.dumps(breakdown(cfg) if cfg["method"] == "breakdown" else child(cfg)))
        return
    if args.busy_child:
        busy()
        return
    neighbours = [
        subprocess.Popen(
            [sys.executable, __file__, "--busy-child"], env=dict(os.environ, OMP_NUM_THREADS="1")
        )  # fmt: skip
        for _ in range(args.busy)
    ]
    try:
        _run(args)
    finally:
        for p in neighbours:
            p.kill()


def _breakdown(args: argparse.Namespace) -> None:
    cols = "fwd fwdbwd pntk prepare_model with_batch trace_probe _structured_pass".split()
    print("ms per call (mean):", "  ".join(cols), "  pass/fwdbwd  pNTK/fwdbwd  eNTK bound")
    for model in args.models.split(","):
        for n in (int(v) for v in args.n.split(",")):
            for t in (int(v) for v in str(args.threads).split(",")):
                cfg = {"model": model, "n": n, "method": "breakdown", "threads": t}
                r = measure({**cfg, "repeat": args.repeat}, args.timeout)
                if "skipped" in r:
                    print(f"{model:<22} {n:>4} {t:>2}  ({r['skipped']})")
                    continue
                vals = "  ".join(f"{r.get(c, 0):8.0f}" for c in cols)
                # eNTK/pNTK when both cost only their passes: O = 10 backward passes against one
                f, b = r["fwd"], max(r["fwdbwd"] - r["fwd"], 1e-9)
                bound = (f + 10 * b) / (f + b)
                ratios = (
                    f"{r['_structured_pass'] / r['fwdbwd']:6.2f} {r['pntk'] / r['fwdbwd']:6.2f} "
                    f"{bound:6.1f}"
                )
                print(f"{model:<22} {n:>4} {t:>2}  {vals}  {ratios}", flush=True)


def _run(args: argparse.Namespace) -> None:
    if args.breakdown:
        _breakdown(args)
        return
    models, ns, methods = args.models.split(","), [int(v) for v in args.n.split(",")], None
    methods = args.methods.split(",")
    if args.resnet50:
        models, ns, methods = ["resnet50"], [1000], ["fwdbwd", "pntk"]
    threads = [int(t) for t in str(args.threads).split(",")]
    print(
        f"device={args.device} threads={threads} busy neighbours={args.busy} "
        f"max_memory={args.max_memory} repeat={args.repeat}"
    )
    head = (
        f"{'model':<22} {'N':>5} {'thr':>3} {'method':<7} {'wall':>9} {'cpu':>9} "
        f"{'peak RSS (+ over setup)':>23}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for model in models:
        for n in ns:
            for t in threads:
                res = {}
                for method in methods:
                    if method == "entk" and n > args.entk_max_n:
                        continue
                    if method == "vmap" and n > args.vmap_max_n:
                        continue
                    cfg = {
                        "model": model,
                        "n": n,
                        "method": method,
                        "threads": t,
                        "device": args.device,
                        "max_memory": args.max_memory,
                        "loop_max_bytes": args.loop_max_bytes,
                        "repeat": args.repeat,
                    }
                    res[method] = measure(cfg, args.timeout)
                    print(f"{model:<22} {n:>5} {t:>3} {method:<7} {fmt(res[method])}", flush=True)
                rows.append((model, n, t, res))
    print(
        "\nratios, wall / cpu time:   eNTK/pNTK (target >= 8)   loop/pNTK (>= 5)   "
        "pNTK/fwdbwd (<= 3)   pntk_fn/fwdbwd   vmap/pNTK   loop/fwdbwd"
    )
    for model, n, t, res in rows:

        def ratio(a: str, b: str, res=res) -> str:
            ra, rb = res.get(a, {}), res.get(b, {})
            if "wall" in ra and "wall" in rb:
                return f"{ra['wall'] / rb['wall']:5.1f}/{ra['cpu'] / max(rb['cpu'], 1e-9):<5.1f}"
            return f"{'—':>11}"

        print(
            f"{model:<22} {n:>5} {t:>3} {ratio('entk', 'pntk'):>21} {ratio('loop', 'pntk'):>18} "
            f"{ratio('pntk', 'fwdbwd'):>19} {ratio('pntk_fn', 'fwdbwd'):>16} "
            f"{ratio('vmap', 'pntk'):>12} "
            f"{ratio('loop', 'fwdbwd'):>13}"
        )


if __name__ == "__main__":
    main()
