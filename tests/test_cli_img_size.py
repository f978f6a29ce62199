"""``--img-size`` is the user's to state everywhere (issue 23): ``nasntk score`` and ``nasntk
benchmark`` take it with the meaning and the check of ``nasntk search`` — the images are resized
to SIZE×SIZE and the networks built and scored at that size."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nasntk import scorecache
from nasntk.cli.main import main
from nasntk.data import load
from nasntk.errors import NasntkError
from nasntk.search_spaces import get as get_space
from nasntk.study.config import SearchConfig

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|",
    "|none~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
]
#: A narrow, one-cell NB201 network: fast to build and score.
SMALL = ["--space", "nb201", "--space-opt", "C=8", "--space-opt", "N=1"]


def _one_line_error(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_score_scores_at_the_size_asked_and_keeps_sizes_apart(tmp_path: Path, capsys) -> None:
    space = get_space("nb201", C=8, N=1)
    specs = tmp_path / "cells.txt"
    specs.write_text("\n".join(CELLS[:2]) + "\n")
    out = tmp_path / "scores.csv"
    args = ["score", *SMALL, "--specs", str(specs), "--data", "digits", "--n", "8",
            "--scores", "flops,naswot", "--out", str(out)]  # fmt: skip
    assert main([*args, "--img-size", "16"]) == 0
    assert "2 rows in" in (printed := " ".join(capsys.readouterr().out.split()))
    assert "at 16×16 pixels" in printed
    assert main([*args, "--img-size", "8"]) == 0  # another size: scored again, not reused
    printed = " ".join(capsys.readouterr().out.split())
    assert "at 8×8 pixels" in printed
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["spec"], r["img_size"]) for r in rows] == [
        (c, s) for s in ("16", "8") for c in CELLS[:2]
    ]
    for r in rows:  # the networks were built for 1×SIZE×SIZE digits
        flops = space.flops(space.parse(r["spec"]), num_classes=10, in_chans=1,
                            img_size=int(r["img_size"]))  # fmt: skip
        assert float(r["flops"]) == flops and float(r["naswot"]) > 0
    at16, at8 = (float(r["flops"]) for r in rows[::2])
    assert at16 > 3 * at8  # four times the pixels
    assert main([*args, "--img-size", "16"]) == 0  # the same size again: all reused
    assert len(scorecache.read_rows(out)) == 4


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_bad_size_is_one_line_and_exit_2_in_every_command(
    tmp_path: Path, capsys, value: str
) -> None:
    specs = tmp_path / "cells.txt"
    specs.write_text(CELLS[0] + "\n")
    message = f"--img-size must be a positive integer, got {value}"
    code = main(["score", *SMALL, "--specs", str(specs), "--out", str(tmp_path / "s.csv"),
                 "--img-size", value])  # fmt: skip
    assert message in _one_line_error(capsys, code)
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,x_acc\n" + "".join(f"{c},{i}\n" for i, c in enumerate(CELLS)))
    code = main(["benchmark", *SMALL, "--truth", str(truth), "--data", "digits",
                 "--img-size", value])  # fmt: skip
    assert message in _one_line_error(capsys, code)
    with pytest.raises(NasntkError, match=message):  # the one check, as in `nasntk search`
        SearchConfig(space="nb201", img_size=int(value))
    assert not (tmp_path / "s.csv").exists()


def test_benchmark_at_the_size_asked(tmp_path: Path, capsys) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("arch,x_acc\n" + "".join(f"{c},{i}\n" for i, c in enumerate(CELLS)))
    cache = tmp_path / "cache.csv"
    code = main(["benchmark", *SMALL, "--truth", str(truth), "--data", "digits", "--n", "8",
                 "--scores", "flops", "--img-size", "16", "--cache", str(cache)])  # fmt: skip
    assert code == 0
    assert "3 cells at 16×16 pixels" in " ".join(capsys.readouterr().out.split())
    assert {r["img_size"] for r in scorecache.read_rows(cache)} == {"16"}


def test_a_loaded_batch_keeps_its_own_size() -> None:
    batch = load("digits", 4, img_size=8)
    rows = scorecache.score_specs("nb201", CELLS[:1], data=batch, n=4, img_size=16)
    with pytest.raises(NasntkError, match="a loaded batch keeps its own size"):
        next(rows)
