"""The HTML leaderboard: self-contained, plots first, sortable and filterable — in a real browser.

The browser test runs Debian's ``chromium`` headless when it is installed (``.ci/browser.sh``
installs it in CI, where ``NASNTK_REQUIRE_BROWSER=1`` turns a missing browser into a failure);
elsewhere it skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nasntk.cellsvg import svg
from nasntk.leaderboard import render

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _rows(n: int = 6) -> list[dict]:
    return [
        {"rank": i + 1, "trial": (7 * i) % n, "arch": f"cell-{i}", "default": 5.0 - i / 3,
         "pntk_cond": 1.0 + i, "params": 1000 * (n - i), "spec": {"ops": ["x"] * (i + 1)}}
        for i in range(n)
    ]  # fmt: skip


def _page(**kw) -> str:
    cell = svg(["in", "1", "out"], [(0, 1, "conv"), (1, 2, "skip"), (0, 2, "pool")], "cell")
    return render(
        _rows(), "html", title="demo", info={"study": "demo", "N": 64},
        images={"history": b"\x89PNG fake"}, directions={"default": "maximize",
        "pntk_cond": "minimize"}, cells=[cell], **kw,
    )  # fmt: skip


def test_page_is_self_contained_and_ordered() -> None:
    page = _page()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from a network
    assert page.index("study configuration") < page.index("data:image/png;base64,")
    assert page.index("data:image/png") < page.index("<svg") < page.index('id="leaderboard"')
    head = re.search(r"<thead>(.*)</thead>", page).group(1)
    assert re.search(r'data-col="default">default <span[^>]*title="higher is better">▲', head)
    assert re.search(r'data-col="pntk_cond">pntk_cond <span[^>]*title="lower is better">▼', head)
    assert page.count("<details><summary>spec</summary>") == 6  # the spec folded, per row
    assert '<th data-col="params">params</th>' in page  # no direction where none is known


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
    res = _run(browser, "--hide-scrollbars", "--window-size=1200,900", f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.read_bytes()[:4] == b"\x89PNG"
    assert shot.stat().st_size > 10_000
