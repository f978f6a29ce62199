"""``nasntk search | leaderboard | plot | export | spaces | studies``: a thin layer over
:mod:`nasntk.study`, :mod:`nasntk.leaderboard` and :mod:`nasntk.plots`.

Progress and tables go to stderr while a search runs; the final leaderboard goes to stdout. The
options' defaults are those of :mod:`nasntk.study.config` (``command_default``).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Optional

import typer

from nasntk.cli.search_view import Display, data_line, final_report, stderr
from nasntk.errors import NasntkError
from nasntk.study.config import (
    COMMAND_IMG_SIZE,
    COMMAND_SPACE,
    COMMAND_SPACE_OPTIONS,
    DEFAULT_TRIALS,
    command_default,
)

_STORAGE_HELP = (
    "Optuna storage URL: sqlite:///FILE.db (default: sqlite:///nasntk.db in the working "
    "folder), postgresql://USER:PASS@HOST/DB, journal:FILE.log. The same URL works with "
    "optuna-dashboard."
)
_STUDY_HELP = "Study name (default for search: derived from space, data, objective and N; for the other commands: the latest study)."

SEARCH_EPILOG = """\
Examples:

  nasntk search                                    # ~1 min on digits, small NAS-Bench-201 cells

  nasntk search --space nb201 --data cifar10 --trials 200 --n-kernel 128

  nasntk search --objective default,params:min --sampler nsga2 --trials 100

  nasntk search --space mobilenet --data cifar10 --objective default,latency_ms:min --trials 40

  nasntk search --space mobilenet --data cifar10 --max-latency-ms 5 --max-train-memory-mb 300

  nasntk search --space resnet --max-params 2e6 --workers 2 --storage journal:runs.log

  nasntk search --trials 300 --n-low 16 --n-kernel 128   # multi-fidelity with successive halving

Rerunning the same command resumes the same study (--trials is the total it should hold).
"""


# The options of `nasntk search` (defaults: nasntk.study.config.command_default).
_Space = Annotated[
    Optional[str],
    typer.Option(
        "--space",
        "-s",
        help=f"Search space (see `nasntk spaces`) or module:Class. Default: {COMMAND_SPACE} "
        f"with {', '.join(f'{k}={v}' for k, v in COMMAND_SPACE_OPTIONS.items())} on "
        f"{COMMAND_IMG_SIZE}×{COMMAND_IMG_SIZE} images.",
    ),
]
_SpaceOpt = Annotated[
    Optional[list[str]],
    typer.Option("--space-opt", help="Space option KEY=VALUE (repeatable), e.g. C=16."),
]
_Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Images: digits, cifar10[:PATH], mnist[:PATH], npz:PATH, folder:PATH.",
    ),
]
_Trials = Annotated[
    Optional[int],
    typer.Option(
        "--trials",
        "-n",
        help=f"Finished trials the study should hold (default {DEFAULT_TRIALS}, or unlimited with --timeout).",
    ),
]
_Timeout = Annotated[
    Optional[float], typer.Option("--timeout", help="Stop starting trials after this many seconds.")
]
_NKernel = Annotated[int, typer.Option("--n-kernel", "-N", help="Images in the kernel (N >= 4).")]
_NLow = Annotated[
    Optional[int],
    typer.Option(
        "--n-low", help="Multi-fidelity: score on this many images first; prune poor candidates."
    ),
]
_Pruner = Annotated[
    Optional[str],
    typer.Option("--pruner", help="sha (default with --n-low) | median | hyperband | none."),
]
_Objective = Annotated[
    str,
    typer.Option(
        "--objective",
        "-o",
        help="Score to optimise, or several comma-separated (multi-objective); NAME:min/max overrides the direction.",
    ),
]
_Scores = Annotated[
    Optional[str],
    typer.Option(
        "--scores",
        help="Extra scores to record (comma-separated, or 'all'); default: all pNTK scores.",
    ),
]
_Sampler = Annotated[
    str,
    typer.Option(
        "--sampler",
        help="tpe | evolution (regularized, over one-parameter mutations) | local (hill climbing from the best) | random | nsga2 | grid.",
    ),
]
_MaxParams = Annotated[
    Optional[str],
    typer.Option(
        "--max-params",
        help="Parameter budget (e.g. 2e6, 2M); over-budget candidates are pruned before any kernel.",
    ),
]
_MaxFlops = Annotated[
    Optional[str], typer.Option("--max-flops", help="FLOPs budget per image (e.g. 500M).")
]
_MaxLatency = Annotated[
    Optional[float],
    typer.Option(
        "--max-latency-ms",
        help="Latency budget: measured forward time at batch 1 (ms, on --device with --threads "
        "threads); over-budget candidates are pruned right after the build, before any kernel.",
    ),
]
_MaxMemory = Annotated[
    Optional[float],
    typer.Option(
        "--max-train-memory-mb",
        help="Memory budget: peak MiB of one SGD training step at --memory-batch images.",
    ),
]
_LatencyBatch = Annotated[
    Optional[int],
    typer.Option(
        "--latency-batch",
        min=1,
        help="Batch of latency_batch_ms (default 32; latency_ms is always batch 1).",
    ),
]
_MemoryBatch = Annotated[
    Optional[int],
    typer.Option("--memory-batch", min=1, help="Batch of train_memory_mb (default 64)."),
]
_Storage = Annotated[Optional[str], typer.Option("--storage", help=_STORAGE_HELP)]
_Study = Annotated[Optional[str], typer.Option("--study", help=_STUDY_HELP)]
_DbPatience = Annotated[
    float,
    typer.Option(
        "--db-patience",
        help="Seconds of database outage (a restart, a failover, a locked file) to wait "
        "through, retrying, before stopping with how to resume (0: stop at once).",
    ),
]
_Workers = Annotated[
    int, typer.Option("--workers", "-w", help="Worker processes sharing the storage.")
]
_Threads = Annotated[
    int,
    typer.Option(
        "--threads",
        help="Torch threads per worker (small kernels run fastest on 1; use --workers for more cores).",
    ),
]
_Seed = Annotated[Optional[int], typer.Option("--seed", help="Sampler seed.")]
_Device = Annotated[str, typer.Option("--device", help="cpu | cuda | auto.")]
_Bn = Annotated[
    Optional[str], typer.Option("--bn", help="BatchNorm in the kernel: eval | batch | frozen.")
]
_Seeds = Annotated[
    int, typer.Option("--seeds", help="Average scores over this many initialisations.")
]
_ImgSize = Annotated[
    Optional[int],
    typer.Option(
        "--img-size",
        help="Resize the images to SIZE×SIZE pixels; the networks are built and scored at this "
        "size (default: the data's own size, 32 for digits; `nasntk search` without --space: 8).",
    ),
]
_RefSize = Annotated[
    int,
    typer.Option(
        "--reference-size",
        help="Architectures in the study's reference sample, against which an aggregate "
        "score (az_nas, vkdnw_agg, tenas) ranks its terms; drawn once, when the study is made.",
    ),
]
_Top = Annotated[int, typer.Option("--top", "-k", help="Rows of the live and final leaderboards.")]
_Refine = Annotated[
    int,
    typer.Option(
        "--refine",
        help="After the search, train the K best for --refine-epochs and re-rank them (0: no).",
    ),
]
_RefineEpochs = Annotated[
    int, typer.Option("--refine-epochs", help="Training epochs per candidate of --refine.")
]
_Live = Annotated[
    Optional[bool],
    typer.Option(
        "--live/--no-live", help="Live progress and table (default: when stderr is a terminal)."
    ),
]
_d = command_default


def search_cmd(
    space: _Space = None,
    space_opt: _SpaceOpt = None,
    data: _Data = _d("data"),
    trials: _Trials = _d("trials"),
    timeout: _Timeout = _d("timeout"),
    n_kernel: _NKernel = _d("n_kernel"),
    n_low: _NLow = _d("n_low"),
    pruner: _Pruner = _d("pruner"),
    objective: _Objective = _d("objective"),
    scores: _Scores = _d("scores"),
    sampler: _Sampler = _d("sampler"),
    max_params: _MaxParams = None,
    max_flops: _MaxFlops = None,
    max_latency_ms: _MaxLatency = _d("max_latency_ms"),
    max_train_memory_mb: _MaxMemory = _d("max_train_memory_mb"),
    latency_batch: _LatencyBatch = None,
    memory_batch: _MemoryBatch = None,
    storage: _Storage = _d("storage"),
    study: _Study = _d("study_name"),
    db_patience: _DbPatience = _d("db_patience"),
    workers: _Workers = _d("workers"),
    threads: _Threads = _d("threads"),
    seed: _Seed = _d("seed"),
    device: _Device = _d("device"),
    bn: _Bn = _d("bn"),
    seeds: _Seeds = _d("seeds"),
    img_size: _ImgSize = _d("img_size"),
    reference_size: _RefSize = _d("reference_size"),
    top: _Top = 10,
    refine: _Refine = 0,
    refine_epochs: _RefineEpochs = 1,
    live: _Live = None,
) -> None:
    """Search a space for the best untrained architectures (pNTK scores at initialization).

    Each trial samples an architecture, checks the budgets, builds it, scores it on N images and stores every score in the study. Ctrl-C stops cleanly: completed trials are kept.
    """
    from nasntk.leaderboard import check_top
    from nasntk.study import SearchInterrupted, search
    from nasntk.study.config import command_config
    from nasntk.study.interrupts import sigterm_as_ctrl_c

    check_top(top)
    if refine < 0 or refine_epochs < 1:
        raise NasntkError("--refine must be >= 0 and --refine-epochs >= 1")
    config = command_config(
        space=space, space_opt=space_opt, max_params=max_params, max_flops=max_flops,
        data=data, trials=trials, timeout=timeout, objective=objective, scores=scores,
        sampler=sampler, seed=seed, n_kernel=n_kernel, n_low=n_low, pruner=pruner,
        storage=storage, study_name=study, db_patience=db_patience, workers=workers,
        device=device, bn=bn,
        seeds=seeds, img_size=img_size, threads=threads, reference_size=reference_size,
        max_latency_ms=max_latency_ms, max_train_memory_mb=max_train_memory_mb,
        proxy_options={k: v for k, v in (("latency_batch", latency_batch),
                                         ("memory_batch", memory_batch)) if v is not None},
    )  # fmt: skip
    header = data_line(config)
    display = Display(
        config.target_trials, top, sys.stderr.isatty() if live is None else live, header=header
    )
    start = time.perf_counter()
    try:
        with sigterm_as_ctrl_c(), display:
            result = search(config, callbacks=[display], on_db_event=display.db_event)
    except SearchInterrupted as exc:
        final_report(exc.study, top=top, seconds=time.perf_counter() - start, interrupted=True)
        raise typer.Exit(130) from None
    ran = display.started or config.target_trials is None
    if not ran:
        stderr().print(
            f"nothing to run: the study already holds {config.target_trials} trials "
            "(raise --trials to continue it)"
        )
    seconds = time.perf_counter() - start if ran else None  # no "30 trials in 2.2 s" for none
    final_report(result, top=top, seconds=seconds, interrupted=False)
    if refine:
        from nasntk.cli.validate import progress_bars, render_refinement
        from nasntk.refine import refine as refine_top

        stderr().print(f"refining the top {refine}: {refine_epochs} epoch(s) of training each")
        with progress_bars() as progress:
            refined = refine_top(
                result, top=refine, epochs=refine_epochs, device=config.device, progress=progress
            )
        render_refinement(refined)


def register(app: typer.Typer) -> None:
    """Add ``search``."""
    app.command("search", epilog=SEARCH_EPILOG)(search_cmd)
