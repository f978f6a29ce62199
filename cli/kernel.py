"""``nasntk kernel``: a demo comparing the pNTK (and the other reductions) with the full eNTK.

Builds a timm model at initialisation (``pretrained=False``, O = 10 outputs), takes N images of
the embedded ``digits`` data (random inputs if the data module is unavailable), computes the eNTK
and every N×N reduction with :func:`nasntk.kernels.compare`, and renders timings, condition
numbers and ‖eNTK − K ⊗ I_O‖/‖eNTK‖ with rich.
"""

from __future__ import annotations

import math

import typer
from rich.console import Console
from rich.table import Table

from nasntk.errors import NasntkError


def _inputs(data: str, n: int, img_size: int, seed: int):
    import torch

    try:
        from nasntk import data as data_mod
    except ImportError:  # pragma: no cover - the data module is part of the package
        return torch.randn(
            n, 3, img_size, img_size, generator=torch.Generator().manual_seed(seed)
        ), "random"
    batch = data_mod.load(data, n, seed=seed, in_chans=3, img_size=img_size)
    return batch.x, batch.source


def _model(name: str, num_classes: int, img_size: int):
    import timm

    kw = {"img_size": img_size, "patch_size": 4} if name.startswith(("vit", "deit")) else {}
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kw)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise NasntkError(f"cannot build timm model {name!r}: {exc}") from exc


def _fmt_cond(c: float) -> str:
    return "inf" if not math.isfinite(c) else f"{math.log10(c):.2f}"


def register(app: typer.Typer) -> None:
    """Add the ``kernel`` command to ``app``."""

    @app.command("kernel")
    def kernel_demo(
        model: str = typer.Option(
            "resnet18", "--model", "-m", help="timm model name (built at init)."
        ),
        n: int = typer.Option(32, "--n", "-n", min=1, help="Number of images."),
        bn: str = typer.Option("eval", "--bn", help="BatchNorm mode: eval | frozen | batch."),
        device: str = typer.Option("auto", "--device", help="cpu | cuda | auto."),
        data: str = typer.Option("digits", "--data", help="Data source (see nasntk.data)."),
        img_size: int = typer.Option(32, "--img-size", min=8, help="Image side length."),
        outputs: int = typer.Option(10, "--outputs", "-o", min=1, help="Model outputs O."),
        seed: int = typer.Option(0, "--seed", help="Seed of the weights and the data."),
    ) -> None:
        """Compare the pNTK (and first / trace / proj) with the full eNTK of a model at init."""
        import torch

        from nasntk.kernels import compare

        torch.manual_seed(seed)
        net = _model(model, outputs, img_size)
        x, source = _inputs(data, n, img_size, seed)
        res = compare(net, x, bn=bn, device=device)
        params = sum(p.numel() for p in net.parameters())
        console = Console()
        table = Table(
            title=f"{model} at init: {params / 1e6:.2f}M parameters, O = {res['num_outputs']}, "
            f"N = {n} images of {source}, bn = {bn}"
        )
        table.add_column("kernel")
        table.add_column("shape", justify="right")
        table.add_column("seconds", justify="right")
        table.add_column("log10 cond", justify="right")
        table.add_column("‖eNTK − K⊗I‖/‖eNTK‖", justify="right")
        no = n * res["num_outputs"]
        table.add_row(
            "eNTK",
            f"{no}×{no}",
            f"{res['entk']['seconds']:.2f}",
            _fmt_cond(res["entk"]["cond"]),
            "",
        )
        for kind in ("pntk", "first", "trace", "proj"):
            r = res[kind]
            table.add_row(
                kind,
                f"{n}×{n}",
                f"{r['seconds']:.2f}",
                _fmt_cond(r["cond"]),
                f"{r['kron_error']:.4f}",
            )
        console.print(table)
        speed = res["entk"]["seconds"] / max(res["pntk"]["seconds"], 1e-9)
        console.print(f"pNTK is {speed:.1f}× faster than the eNTK here.")
