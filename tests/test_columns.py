"""nasntk.columns and the leaderboard's column choice: fit the width, never cut silently."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.cells import cell_len

from nasntk.columns import choose, middle, parse
from nasntk.errors import NasntkError
from nasntk.leaderboard import render

SCORES = [f"score_{i}" for i in range(10)]


def _rows(n: int = 4) -> list[dict]:
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    out = []
    for i in range(n):
        row = {"rank": i + 1, "trial": 10 * i, "arch": arch, "default": 5.5 - i / 7}
        row.update({s: 1000.0 / (j + 1) + i for j, s in enumerate(SCORES)})
        row.update({"params": 1_316_506 + i, "flops": 377_324_800, "time_s": 0.41})
        row.update({"space": "nb201", "data": "cifar10", "img_size": 32, "spec": {"ops": [i]}})
        out.append(row)
    return out


def test_parse_and_middle() -> None:
    assert parse(None) is None and parse("all") == "all"
    assert parse("rank, arch,default,arch") == ["rank", "arch", "default"]
    assert parse(["rank,arch", "params"]) == ["rank", "arch", "params"]
    with pytest.raises(NasntkError, match="column names"):
        parse(" , ")
    assert middle("abcdefghijklmnopqrstuvwxyz", 9) == "abcd…wxyz"
    assert len(middle("x" * 100, 40)) == 40 and middle("short", 40) == "short"


@pytest.mark.parametrize("width", [80, 120, 160])
def test_a_table_fits_its_width_and_names_what_it_left_out(width: int) -> None:
    rows = _rows()
    choice = choose(rows, None, objectives=["default"], width=width)
    # the first columns a user reads are always there, in leaderboard order
    assert choice.columns[:4] == ["rank", "trial", "arch", "default"]
    assert {"params", "flops"} <= set(choice.columns)
    assert set(choice.columns) | set(choice.left_out) == {
        k for k in rows[0] if k not in ("space", "data", "img_size", "spec")
    }
    text = render(rows, "table", objectives=["default"], width=width)
    lines = text.rstrip("\n").splitlines()
    assert max(cell_len(line) for line in lines) <= width
    for s in choice.columns:  # every shown number is printed whole, never cut to '4.…'
        if s.startswith("score_"):
            assert f"{rows[0][s]:.4g}" in text
    if choice.left_out:
        assert f"+{len(choice.left_out)} more columns" in " ".join(text.split())
        assert choice.left_out[0] in text
    wider = choose(rows, None, objectives=["default"], width=width + 60)
    assert set(choice.columns) <= set(wider.columns)  # a wider terminal shows more, not other


def test_named_columns_all_and_unknown() -> None:
    rows = _rows(2)
    assert choose(rows, ["rank", "score_3"]).columns == ["rank", "score_3"]
    assert "spec" not in choose(rows, "all").columns  # tables leave the spec to files
    assert choose(rows, "all", display=False).columns[-1] == "spec"
    with pytest.raises(NasntkError, match="unknown column.*bogus.*available: rank"):
        choose(rows, ["rank", "bogus"])
    text = render(rows, "table", columns="rank,score_9", width=80)
    assert "score_9" in text and "arch" not in text and "more columns" not in text


def test_files_keep_every_column_unless_asked() -> None:
    rows = _rows(2)
    full = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert list(full[0]) == list(rows[0]) and json.loads(full[0]["spec"]) == {"ops": [0]}
    picked = list(csv.DictReader(io.StringIO(render(rows, "csv", columns="rank,params"))))
    assert picked == [{"rank": "1", "params": "1316506"}, {"rank": "2", "params": "1316507"}]
    doc = json.loads(render(rows, "json", columns=["arch", "default"]))
    assert doc[1] == {"arch": rows[1]["arch"], "default": rows[1]["default"]}
    md = render(rows, "markdown")
    assert all(s in md for s in SCORES) and "spec" not in md.splitlines()[0]
