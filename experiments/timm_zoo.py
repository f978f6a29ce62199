"""Is the default defined, and does it order capacity sensibly, on timm families?

Two parts (results cached as one ``.npz`` per model under ``experiments/out/timm/``):

1. ``zoo``: every model of the ``timm`` space under 5M parameters (10 classes), built untrained
   at 32×32, scored on N = 64 CIFAR-10 images: is every candidate formula finite? (A model that
   cannot be built or run at 32×32 is listed with its reason.)
2. ``families``: members of one family whose relative quality is not in doubt — timm's own
   width/depth-scaled members (mobilenetv3_small_050 < _075 < _100, lcnet_035 < … < _100,
   tinynet_e < … < _a, mnasnet_050 < … < _100, regnetx_002 < _004 < _006, efficientnet_b0 <
   b1 < b2, resnet10t < resnet14t < resnet18) and width/depth steps in nasntk's own family
   spaces (resnet, regnet, mobilenet, vit). Per family: the score of each member and Kendall τ
   between the score and the known capacity order (+1: ordered like capacity).

No score is selected here: timm's published ImageNet accuracies are not read (the issue keeps
them for judging), only the capacity order inside a family.

    OMP_NUM_THREADS=1 python experiments/timm_zoo.py families
    OMP_NUM_THREADS=1 python experiments/timm_zoo.py zoo [--limit K]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suites  # noqa: E402  (the experiment next door: scoring with kept kernels, the terms)

from nasntk.search_spaces import get as get_space  # noqa: E402
from nasntk.tables import markdown_table  # noqa: E402

OUT = suites.OUT / "timm"

#: timm's own scaled members, smallest first.
ZOO_FAMILIES: dict[str, list[str]] = {
    "mobilenetv3_small": [
        "mobilenetv3_small_050",
        "mobilenetv3_small_075",
        "mobilenetv3_small_100",
    ],
    "lcnet": ["lcnet_035", "lcnet_050", "lcnet_075", "lcnet_100"],
    "tinynet": ["tinynet_e", "tinynet_d", "tinynet_c", "tinynet_b", "tinynet_a"],
    "mnasnet": ["mnasnet_050", "mnasnet_075", "mnasnet_100"],
    "regnetx": ["regnetx_002", "regnetx_004", "regnetx_006"],
    "efficientnet": ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"],
    "resnet": ["resnet10t", "resnet14t", "resnet18"],
}
#: Width / depth steps in nasntk's family spaces (space, text spec), smallest first.
SPACE_FAMILIES: dict[str, list[tuple[str, str]]] = {
    "resnet space, depth": [
        ("resnet", "block=basic,layers=1.1.1.1,width=32"),
        ("resnet", "block=basic,layers=2.2.2.2,width=32"),
        ("resnet", "block=basic,layers=3.4.6.3,width=32"),
    ],
    "resnet space, width": [
        ("resnet", "block=basic,layers=2.2.2.2,width=16"),
        ("resnet", "block=basic,layers=2.2.2.2,width=32"),
        ("resnet", "block=basic,layers=2.2.2.2,width=64"),
    ],
    "regnet space, depth": [
        ("regnet", "depth=7"),
        ("regnet", "depth=10"),
        ("regnet", "depth=13"),
        ("regnet", "depth=16"),
    ],
    "vit space, depth": [
        ("vit", "depth=2"),
        ("vit", "depth=4"),
        ("vit", "depth=8"),
    ],
    "vit space, width": [
        ("vit", "dim=32,heads=4"),
        ("vit", "dim=64,heads=4"),
        ("vit", "dim=128,heads=4"),
    ],
}


def _mobilenet_widths(widths: tuple[float, ...] = (0.5, 1.0, 1.5)) -> list[tuple[str, str]]:
    """One sampled mobilenet-space spec (seeded) at several channel multipliers, as JSON."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    spec = get_space("mobilenet").suggest(study.ask())
    return [("mobilenet", json.dumps({**spec, "width": w}, sort_keys=True)) for w in widths]


SPACE_FAMILIES["mobilenet space, width"] = _mobilenet_widths()


def _score(space_name: str, text: str, batch: Any) -> dict[str, Any]:
    """Scores and terms of one model, cached in OUT (a failure is cached with its reason)."""
    safe = f"{space_name}__{text}".replace("/", "_").replace(",", "_").replace("=", "-")
    if len(safe) > 80 or not safe.replace("_", "").replace("-", "").replace(".", "").isalnum():
        safe = f"{space_name}__{hashlib.sha1(text.encode()).hexdigest()[:16]}"
    path = OUT / f"{safe}.npz"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        space = get_space(space_name)
        start = time.perf_counter()
        try:
            torch.manual_seed(0)
            model = space.build(space.parse_any(text), num_classes=10)
            kept = suites.kept_scores(model, batch)
        except Exception as exc:  # a model that cannot be built or scored is a row with a reason
            np.savez(path, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
            return {"error": str(np.load(path)["error"])}
        np.savez(path, y=batch.y.numpy(), seconds=time.perf_counter() - start,
                 params_full=kept["params"], **kept)  # fmt: skip
    z = np.load(path)
    if "error" in z:
        return {"error": str(z["error"])}
    q = suites.quantities(z)
    return {name: f(q) for name, f in suites.CONFIGS.items()} | {"seconds": float(z["seconds"])}


CANDIDATES = [
    "previous default: log live + flat(frozen) + G(eval)",
    "log live + G(frozen)",
    "log live + flat(frozen) + G(frozen)",
    "log live",
]


def run_families(args: argparse.Namespace) -> None:
    batch = suites.load_batch(64)
    fams = {k: [("timm", m) for m in v] for k, v in ZOO_FAMILIES.items()} | SPACE_FAMILIES
    table = []
    for fam, members in fams.items():
        got = [_score(s, t, batch) for s, t in members]
        for (_s, t), g in zip(members, got, strict=True):
            shown = g.get("error") or "  ".join(f"{g[c]:.3f}" for c in CANDIDATES)
            print(f"{fam:24s} {t[:40]:40s} {shown}", flush=True)
        cells = []
        for c in CANDIDATES:
            v = np.array([g.get(c, math.nan) for g in got], dtype=float)
            finite = np.isfinite(v)
            tau = stats.kendalltau(np.arange(len(v))[finite], v[finite]).statistic
            cells.append(
                f"{tau:+.2f}" + ("" if finite.all() else f" ({(~finite).sum()} undefined)")
            )
        table.append([fam, *cells])
    text = "\n".join(markdown_table(["family (small → large)", *CANDIDATES], table)) + "\n"
    print(text)
    (suites.OUT / "timm_families.md").write_text(text)


def run_zoo(args: argparse.Namespace) -> None:
    batch = suites.load_batch(64)
    names = get_space("timm").candidates[: args.limit]
    undefined: dict[str, list[str]] = {c: [] for c in CANDIDATES}
    errors = {}
    for name in names:
        g = _score("timm", name, batch)
        if "error" in g:
            errors[name] = g["error"]
            print(f"{name}: {g['error']}", flush=True)
            continue
        for c in CANDIDATES:
            if not math.isfinite(g[c]):
                undefined[c].append(name)
        print(f"{name:40s} " + "  ".join(f"{g[c]:.3f}" for c in CANDIDATES), flush=True)
    print(f"{len(names)} models, {len(errors)} could not be scored at 32x32")
    for c, bad in undefined.items():
        print(f"{c}: undefined for {len(bad)}: {', '.join(bad)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("families")
    z = sub.add_parser("zoo")
    z.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    {"families": run_families, "zoo": run_zoo}[args.cmd](args)


if __name__ == "__main__":
    main()
