"""The HTML leaderboard: self-contained, plots first, sortable and filterable — in a real browser.

The browser test runs Debian's ``chromium`` headless when it is installed (``.ci/browser.sh``
installs it in CI, where ``NASNTK_REQUIRE_BROWSER=1`` turns a missing browser into a failure);
elsewhere it skips.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nasntk.cellsvg import svg
from nasntk.leaderboard import render
from nasntk.report_html import _arch

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _rows(n: int = 6) -> list[dict]:
    return [
        {"rank": i + 1, "trial": (7 * i) % n, "arch": f"cell-{i}", "default": 5.0 - i / 3,
         "pntk_cond": 1.0 + i, "params": 10**6 * (n - i), "spec": {"ops": ["x"] * (i + 1)}}
        for i in range(n)
    ]  # fmt: skip


def _page(**kw) -> str:
    cell = svg(["in", "1", "out"], [(0, 1, "conv"), (1, 2, "skip"), (0, 2, "pool")], "cell")
    return render(
        _rows(), "html", title="demo", info={"study": "demo", "N": 64},
        images={"history": b"\x89PNG fake"}, directions={"default": "maximize",
        "pntk_cond": "minimize"}, cells=[cell], objectives=["default"], **kw,
    )  # fmt: skip


def test_page_is_self_contained_and_ordered() -> None:
    page = _page()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from a network
    assert page.index("study configuration") < page.index("data:image/png;base64,")
    assert page.index("data:image/png") < page.index("<svg") < page.index('id="leaderboard"')
    head = re.search(r"<thead>(.*)</thead>", page).group(1)
    assert re.search(
        r'data-col="default"[^>]*>default&nbsp;<span[^>]*title="higher is better">▲', head
    )
    assert re.search(
        r'"pntk_cond"[^>]*>pntk_<wbr>cond&nbsp;<span[^>]*title="lower is better">▼', head
    )
    assert page.count("<details><summary>spec</summary>") == 6  # the spec folded, per row
    assert '<th data-col="params" class="num">params</th>' in page  # no direction: none known
    # the first columns shown, the other scores behind the toggle (columns.first)
    assert '<th data-col="pntk_cond" class="num more">' in head
    assert '<label class="more-toggle" for="more-columns">1 more columns (pntk_cond)' in page
    # numbers compact, the exact value in the tooltip; arch breakable only at separators
    assert '<td class="num" data-v="1000000.0" title="1,000,000">1M</td>' in _page()
    assert _arch("|a~0|+|b~0|c~1|") == (
        '<td class="arch"><div title="|a~0|+|b~0|c~1|"><span>|</span><wbr><span>a~0|+|</span>'
        "<wbr><span>b~0|</span><wbr><span>c~1|</span></div></td>"
    )


def test_named_columns_have_no_toggle() -> None:
    page = render(_rows(), "html", title="t", columns="rank,arch,default,pntk_cond")
    assert 'id="more-columns"' not in page and 'class="num more"' not in page


def test_cell_drawing_is_well_formed_svg() -> None:
    nodes, edges = ["in", "1", "2", "out"], [(0, 1, "a"), (0, 3, "b"), (1, 2, "c"), (2, 3, "")]
    root = ET.fromstring(svg(nodes, edges, "t"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}circle")) == 4
    assert len(root.findall(f"{ns}path")) == 4  # one per edge (the arrowhead is in <defs>)
    labels = [t.text for t in root.findall(f"{ns}text")]
    assert {"a", "b", "c", "in", "out", "t"} <= set(labels)


def _browser() -> str | None:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("NASNTK_REQUIRE_BROWSER"):
        pytest.fail("no headless browser (chromium) although NASNTK_REQUIRE_BROWSER is set")
    pytest.skip("no chromium installed (apt-get install chromium)")
    return None


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def test_page_in_a_headless_browser(tmp_path: Path) -> None:
    browser = _browser()
    path = tmp_path / "board.html"
    path.write_text(_page())
    url = path.as_uri()
    res = _run(browser, "--dump-dom", url + "#selftest")
    assert res.returncode == 0, res.stderr[-2000:]
    # the page's own script sorted the trial column both ways and filtered, in the browser
    assert 'data-selftest="ok"' in res.stdout, res.stdout[-500:]
    sorted_trials = re.search(r'data-sorted="([^"]*)"', res.stdout).group(1)
    assert sorted_trials == ",".join(str(t) for t in sorted(r["trial"] for r in _rows()))
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line]
    assert not console and "Uncaught" not in res.stderr, console
    shot = tmp_path / "board.png"
    res = _run(browser, "--hide-scrollbars", "--window-size=1400,900", f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"
    assert shot.stat().st_size > 10_000


#: The scores a default NB201 search records (the README's first command), in leaderboard order.
_SCORES = ("pntk_cond", "pntk_cond_centered", "pntk_krr", "pntk_krr_mse", "pntk_flatness",
           "pntk_trace", "pntk_eff_rank", "pntk_slow", "pntk_live_g", "tenas_ntk")  # fmt: skip
_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _nb201_rows(n: int = 100) -> list[dict]:
    """A 100-trial NB201 leaderboard as :func:`nasntk.leaderboard.rows` makes it: the space's
    text form ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, the default, ten scores, params, FLOPs."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        ops = [rng.choice(_OPS) for _ in range(6)] if i else ["avg_pool_3x3"] * 6  # the longest
        arch = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
        row = {"rank": i + 1, "trial": rng.randrange(1000), "arch": arch, "default": -i / 7}
        row.update({s: rng.lognormvariate(0, 3) * rng.choice((1, -1)) for s in _SCORES})
        row.update(params=rng.randrange(60_000, 400_000), flops=rng.randrange(10**6, 6 * 10**6),
                   time_s=round(rng.uniform(0.1, 0.3), 4), space="nb201", data="digits",
                   num_classes=10, in_chans=1, img_size=8, spec={"ops": ops})  # fmt: skip
        out.append(row)
    return out


def _layout(browser: str, path: Path, width: int) -> dict[str, float]:
    """The page's own measurements (``#layouttest``) in a ``width``×900 window."""
    res = _run(browser, f"--window-size={width},900", "--dump-dom", path.as_uri() + "#layouttest")
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs.get("layouttest") == "ok", attrs
    return {k: float(v) for k, v in attrs.items() if k != "layouttest"}


@pytest.mark.parametrize("width", [1400, 800])
def test_table_layout_is_legible(tmp_path: Path, width: int) -> None:
    """A 100-trial NB201 leaderboard, rendered as `nasntk leaderboard -f html` renders it: no row
    taller than three text lines and the arch column at least 40 characters wide, with the first
    columns and with every column shown; 10 rows or more on the first screen of the table at
    1400×900; at 800 px no horizontal scroll outside the table's own box."""
    browser = _browser()
    path = tmp_path / "board.html"
    rows = _nb201_rows()
    cell = svg(["in", "1", "2", "out"], [(0, 1, "conv"), (1, 2, "skip"), (0, 3, "pool")], "c")
    path.write_text(render(rows, "html", title="nasntk leaderboard: nb201", cells=[cell],
                           info={"study": "nb201", "N": 64}, objectives=["default"],
                           directions={s: "maximize" for s in ("default", *_SCORES)}))  # fmt: skip
    m = _layout(browser, path, width)
    for state in ("", "more-"):  # the first columns, then every column
        lines = (m[state + "row-max"] - m[state + "pad"]) / m[state + "line"]
        assert lines <= 3.05, (state, m)
        assert m[state + "arch-chars"] >= 40, (state, m)
        assert m[state + "scroll-width"] <= m[state + "inner-width"], (state, m)
    if width == 1400:
        assert m["row-max"] - m["pad"] <= 1.05 * m["line"], m  # one line each at 1400 px
        assert m["first-screen"] >= 10, m
