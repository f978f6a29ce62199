"""Does eNTK → pNTK ⊗ I_O as the width grows? (Mohamadi, Bae & Sutherland, ICML 2023)

For a fully connected net and a CNN at initialisation, at widths 16, 32, …, on N images of the
embedded ``digits`` data (O = 10 outputs), averaged over seeds:

* the relative Frobenius error err(K) = ‖eNTK − K ⊗ I_O‖_F / ‖eNTK‖_F of each N×N reduction K:
  ``pntk`` (logit sum / √O), ``first`` (first logit), ``trace`` (mean diagonal block) and ``proj``
  (mean over k unit Gaussian directions). Every reduction is built from unit projections of the
  logits, so its "⊗ I" approximation is simply K ⊗ I_O (exact when eNTK = K ⊗ I_O);
* the log-log slope of err against width (theory: ≈ −½);
* the gap between kernel-regression predictions on held-out images: with the eNTK,
  F_e = E(test, train) E(train, train)⁻¹ Y (Y one-hot, all O outputs jointly), and with a reduction,
  F_K = K(test, train) K(train, train)⁻¹ Y (each output separately); reported as ‖F_e − F_K‖/‖F_e‖
  and the fraction of test images whose predicted class differs.

Prints a table and saves ``experiments/out/kernel_convergence.png``.

    OMP_NUM_THREADS=1 python experiments/kernel_convergence.py                  # ~10 min, 2 cores
    OMP_NUM_THREADS=1 python experiments/kernel_convergence.py --fc-widths 16,64,256 --seeds 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasntk.kernels import kernel, kron_error

KINDS = ("pntk", "first", "trace", "proj")
OUT = Path(__file__).resolve().parent / "out"


def fc_net(width: int, d_in: int, o: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, o),
    )


def cnn(width: int, c_in: int, o: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, o),
    )


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """n class-balanced digits (8×8, one channel) and labels; random data if unavailable."""
    try:
        from nasntk.data import load

        b = load("digits", n, seed=seed, in_chans=1, img_size=8)
        return b.x, b.y, "digits"
    except ImportError:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % 10, "random"


def solve(k_train: torch.Tensor, rhs: torch.Tensor, ridge: float) -> torch.Tensor:
    lam = ridge * k_train.diagonal().mean()
    eye = torch.eye(k_train.shape[0], dtype=k_train.dtype)
    return torch.linalg.solve(k_train + lam * eye, rhs)


def one_run(net: nn.Module, x: torch.Tensor, y: torch.Tensor, n_train: int, args) -> dict:
    """Errors and regression gaps of every reduction for one initialised network."""
    o = 10
    opts = {"device": "cpu", "proj_dim": args.proj_dim, "seed": 0}
    e = kernel(net, x, kind="entk", **opts)
    tr, te = slice(0, n_train), slice(n_train, x.shape[0])
    y1 = torch.nn.functional.one_hot(y, o).to(torch.float64)
    eb = e.reshape(x.shape[0], o, x.shape[0], o)
    e_tr = eb[tr, :, tr, :].reshape(n_train * o, n_train * o)
    e_te = eb[te, :, tr, :].reshape(-1, n_train * o)
    f_e = (e_te @ solve(e_tr, y1[tr].reshape(-1), args.ridge)).reshape(-1, o)
    res = {}
    for kind in KINDS:
        k = kernel(net, x, kind=kind, **opts)
        f_k = k[te, tr] @ solve(k[tr, tr], y1[tr], args.ridge)
        res[kind] = {
            "err": kron_error(e, k, o),
            "gap": float((f_e - f_k).norm() / f_e.norm()),
            "flip": float((f_e.argmax(1) != f_k.argmax(1)).double().mean()),
        }
    return res


def slope(widths: list[int], errs: list[float]) -> float:
    return float(np.polyfit(np.log(widths), np.log(errs), 1)[0])


def sweep(name: str, build, widths: list[int], args) -> dict:
    n = args.n_train + args.n_test
    x, y, _ = images(n, seed=0)
    table: dict = {}
    for w in widths:
        t = time.perf_counter()
        runs = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            runs.append(one_run(build(w), x, y, args.n_train, args))
        table[w] = {
            kind: {m: float(np.mean([r[kind][m] for r in runs])) for m in ("err", "gap", "flip")}
            for kind in KINDS
        }
        line = "  ".join(f"{k} {table[w][k]['err']:.4f}" for k in KINDS)
        print(f"{name:>3} width {w:>5}: {line}  ({time.perf_counter() - t:.1f} s)", flush=True)
    return table


def report(name: str, table: dict) -> None:
    widths = sorted(table)
    print(f"\n{name}: relative error ‖eNTK − K⊗I‖/‖eNTK‖ (mean over seeds)")
    print(
        f"{'width':>6} " + " ".join(f"{k:>9}" for k in KINDS) + "   regression gap (pntk, flip %)"
    )
    for w in widths:
        errs = " ".join(f"{table[w][k]['err']:9.4f}" for k in KINDS)
        p = table[w]["pntk"]
        print(f"{w:>6} {errs}   {p['gap']:.4f} ({100 * p['flip']:.1f}%)")
    slopes = " ".join(f"{slope(widths, [table[w][k]['err'] for w in widths]):9.3f}" for k in KINDS)
    print(f"{'slope':>6} {slopes}   (all widths; theory ≈ -0.5)")
    wide = widths[len(widths) // 2 :]
    if len(wide) >= 2:
        half = " ".join(f"{slope(wide, [table[w][k]['err'] for w in wide]):9.3f}" for k in KINDS)
        print(f"{'wide':>6} {half}   (widths >= {wide[0]})")
    gaps = " ".join(f"{slope(widths, [table[w][k]['gap'] for w in widths]):9.3f}" for k in KINDS)
    print(f"{'gap sl':>6} {gaps}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (name, table) in zip(axes[:2], results.items(), strict=False):
        widths = sorted(table)
        for kind in KINDS:
            errs = [table[w][kind]["err"] for w in widths]
            ax.loglog(widths, errs, "o-", label=f"{kind} (slope {slope(widths, errs):.2f})")
        ref = [table[widths[-1]]["pntk"]["err"] * (w / widths[-1]) ** -0.5 for w in widths]
        ax.loglog(widths, ref, "k--", label="∝ width^-1/2")
        ax.set(title=f"{name}: ‖eNTK − K⊗I‖/‖eNTK‖", xlabel="width", ylabel="relative error")
        ax.legend(fontsize=8)
    for name, table in results.items():
        widths = sorted(table)
        gaps = [table[w]["pntk"]["gap"] for w in widths]
        axes[2].loglog(widths, gaps, "o-", label=f"{name} pNTK (slope {slope(widths, gaps):.2f})")
    axes[2].set(title="kernel regression: ‖F_eNTK − F_pNTK‖/‖F_eNTK‖", xlabel="width")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fc-widths", default="16,32,64,128,256,512,1024,2048,4096")
    ap.add_argument("--cnn-widths", default="16,32,64,128,256,512,1024")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--proj-dim", type=int, default=4, help="directions of the proj reduction")
    ap.add_argument("--ridge", type=float, default=1e-6, help="ridge, relative to mean diagonal")
    ap.add_argument("--out", default=str(OUT / "kernel_convergence.png"))
    args = ap.parse_args(argv)
    t = time.perf_counter()
    d = 64
    results = {}
    if args.fc_widths:
        ws = [int(v) for v in args.fc_widths.split(",")]
        results["FC"] = sweep("FC", lambda w: fc_net(w, d, 10).double(), ws, args)
    if args.cnn_widths:
        ws = [int(v) for v in args.cnn_widths.split(",")]
        results["CNN"] = sweep("CNN", lambda w: cnn(w, 1, 10).double(), ws, args)
    for name, table in results.items():
        report(name, table)
    plot(results, Path(args.out))
    print(f"\nsaved {args.out}  ({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
