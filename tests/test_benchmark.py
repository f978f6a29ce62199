"""Tests of the benchmark (nasntk.groundtruth, rankstats, scorecache, evaluation): rank statistics, truth parsing, resumable scoring, the JSON shape."""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasntk import evaluation, groundtruth, rankstats, scorecache
from nasntk.errors import NasntkError
from nasntk.search_spaces.base import SearchSpace


# -- naive references ------------------------------------------------------------------------------
def naive_kendall_tau_b(x, y) -> float:
    """O(n²) Kendall τ-b straight from its definition (ties in either variable)."""
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx == dy:
            conc += 1
        else:
            disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


def naive_spearman(x, y) -> float:
    """Pearson correlation of average ranks (ranks by counting)."""

    def ranks(v):
        v = np.asarray(v, dtype=float)
        return np.array([(v < a).sum() + ((v == a).sum() + 1) / 2 for a in v])

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


# -- rank statistics ---------------------------------------------------------------------------------
def test_rank_correlations_match_naive_definitions_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    y[:5] = y[5]  # ties in y too
    got = rankstats.rank_correlations(x, y)
    assert got["kendall"] == pytest.approx(naive_kendall_tau_b(x, y), abs=1e-12)
    assert got["spearman"] == pytest.approx(naive_spearman(x, y), abs=1e-12)


def test_orientation_and_failures():
    acc = np.array([1.0, 2.0, 3.0, 4.0])
    # a condition number: lower is better, so perfectly anti-ordered values rank perfectly
    cond = np.array([40.0, 30.0, 20.0, 10.0])
    corr = rankstats.correlations({"cond": cond}, {"acc": acc}, {"cond": "minimize"})
    assert corr["cond"]["acc"]["kendall"] == pytest.approx(1.0)
    assert corr["cond"]["acc"]["spearman"] == pytest.approx(1.0)
    # a failed kernel (+inf / nan) ranks last whatever the direction
    assert rankstats.orient([np.inf, 1.0], "minimize").tolist() == [-np.inf, -1.0]
    assert rankstats.orient([np.nan, 1.0], "maximize")[0] == -np.inf
    fail = np.array([np.nan, 2.0, 3.0, 4.0])
    assert rankstats.correlations({"s": fail}, {"acc": acc})["s"]["acc"][
        "kendall"
    ] == pytest.approx(1.0)
    with pytest.raises(NasntkError):
        rankstats.orient([1.0], "up")


def test_constant_score_gives_nan():
    r = rankstats.rank_correlations([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert math.isnan(r["kendall"]) and math.isnan(r["spearman"])


def test_top_k_hit_rate_by_hand():
    acc = np.arange(20.0)  # cells 10..19 are the top 10
    score = acc.copy()
    assert rankstats.top_k_hit_rate(score, acc) == 1.0
    score[[19, 18, 17]] = -1.0  # three of the best are now ranked last → 7 of 10 hits
    assert rankstats.top_k_hit_rate(score, acc) == pytest.approx(0.7)
    assert rankstats.top_k_hit_rate(-acc, acc) == 0.0
    assert rankstats.top_k_hit_rate([3.0, 1.0, 2.0], [3.0, 2.0, 1.0], k=1) == 1.0


def test_top_quality_by_hand():
    acc = np.array([90.0, 94.0, 91.0, 93.0, 92.0, 89.0])
    # the score's order: cell 2 (91), cell 3 (93), cell 0 (90), then the rest
    score = np.array([4.0, 0.0, 6.0, 5.0, 1.0, -np.inf])
    t = rankstats.top_quality(score, acc, ks=(1, 2, 5))
    assert t["rank1_acc"] == 91.0
    assert t["rank1_share_better"] == pytest.approx(3 / 6)  # 94, 93 and 92 beat it
    assert t["regret@1"] == pytest.approx(3.0)  # 94 − 91
    assert t["regret@2"] == pytest.approx(1.0)  # best of {91, 93} is 93
    assert t["regret@5"] == 0.0  # the best cell (score 0.0) is 5th
    assert t["precision@2"] == 0.5  # top-2 by accuracy {94, 93}, by the score {91, 93}
    # an oracle score takes the best cell first and has no regret
    oracle = rankstats.top_quality(acc, acc)
    assert oracle["regret@1"] == 0.0 and oracle["rank1_share_better"] == 0.0
    assert oracle["precision@5"] == 1.0


def test_bootstrap_ci_brackets_the_estimate():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    point, lo, hi = rankstats.bootstrap_ci(x, y, n_boot=200, seed=0)
    assert point == pytest.approx(rankstats.rank_correlations(x, y)["kendall"])
    assert lo < point < hi
    assert rankstats.bootstrap_ci(x, x, n_boot=50) == pytest.approx((1.0, 1.0, 1.0))


# -- truth CSV -----------------------------------------------------------------------------------------
def _write_truth(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_read_truth_columns_limit_and_errors(tmp_path):
    rows = [
        {"index": i, "arch": f"w={i + 1}", "a_acc": 10 * i, "b_acc": -i, "params_m": 1}
        for i in range(5)
    ]
    truth = groundtruth.read_truth(_write_truth(tmp_path / "t.csv", rows), limit=3)
    assert truth.archs == ("w=1", "w=2", "w=3")
    assert list(truth.columns) == ["a_acc", "b_acc"]
    np.testing.assert_array_equal(truth.columns["a_acc"], [0.0, 10.0, 20.0])
    with pytest.raises(NasntkError, match="not found"):
        groundtruth.read_truth(tmp_path / "missing.csv")
    bad = _write_truth(tmp_path / "bad.csv", [{"cell": "x", "a_acc": 1}])
    with pytest.raises(NasntkError, match="'arch'"):
        groundtruth.read_truth(bad)
    noacc = _write_truth(tmp_path / "noacc.csv", [{"arch": "x", "top1": 1}])
    with pytest.raises(NasntkError, match="_acc"):
        groundtruth.read_truth(noacc)
    text = _write_truth(
        tmp_path / "text.csv", [{"arch": "x", "a_acc": "high"}, {"arch": "y", "a_acc": 1}]
    )
    with pytest.raises(NasntkError, match="non-numeric"):
        groundtruth.read_truth(text)


def test_read_truth_cell_columns_and_anchors(tmp_path):
    # NB101 rows name the cell by matrix + ops, NB301 rows by genotype; naslib_* / params_m /
    # flops_m are anchors (blank → nan)
    nb101 = [
        {"matrix": "0110", "ops": "input,output", "val_acc": 90 + i, "params_m": i,
         "flops_m": "", "naslib_synflow": 3 - i}
        for i in range(3)
    ]  # fmt: skip
    truth = groundtruth.read_truth(_write_truth(tmp_path / "nb101.csv", nb101))
    assert truth.archs == ("0110|input,output",) * 3
    assert list(truth.columns) == ["val_acc"]
    assert sorted(truth.anchors) == ["flops_m", "naslib_synflow", "params_m"]
    np.testing.assert_array_equal(truth.anchors["params_m"], [0.0, 1.0, 2.0])
    assert np.isnan(truth.anchors["flops_m"]).all()
    nb301 = [{"genotype": f" G{i} ", "val_acc": i} for i in range(2)]
    assert groundtruth.read_truth(_write_truth(tmp_path / "nb301.csv", nb301)).archs == ("G0", "G1")


def test_paired_difference_ci_against_a_hand_written_bootstrap():
    rng = np.random.default_rng(3)
    acc = rng.normal(size=60)
    a = acc + rng.normal(scale=0.5, size=60)  # a ranks better than b
    b = acc + rng.normal(scale=2.0, size=60)
    point, lo, hi = rankstats.paired_difference_ci(a, b, acc, n_boot=400, seed=1)
    tau = lambda s, y: rankstats.rank_correlations(s, y)["kendall"]  # noqa: E731
    assert point == pytest.approx(tau(a, acc) - tau(b, acc))
    assert lo < point < hi
    # an independent paired resampling gives an interval of the same place and width
    reps = []
    for _ in range(400):
        i = rng.integers(0, 60, 60)
        reps.append(tau(a[i], acc[i]) - tau(b[i], acc[i]))
    ref_lo, ref_hi = np.quantile(reps, [0.025, 0.975])
    assert abs(lo - ref_lo) < 0.08 and abs(hi - ref_hi) < 0.08
    assert rankstats.paired_difference_ci(a, a, acc, n_boot=50)[:1] == (0.0,)


# -- a tiny fake space and score -----------------------------------------------------------------------
class WidthSpace(SearchSpace):
    """Specs {"w": k}: a conv layer of k channels, pooled, then linear. Text form 'w=k'."""

    name = "width"

    def suggest(self, trial):
        return {"w": trial.suggest_int("w", 1, 8)}

    def validate(self, spec):
        if not isinstance(spec, dict) or not isinstance(spec.get("w"), int) or spec["w"] < 1:
            raise NasntkError(f"bad width spec {spec!r}")
        return {"w": spec["w"]}

    def parse(self, text):
        key, _, val = text.strip().partition("=")
        if key != "w" or not val.isdigit():
            raise NasntkError(f"bad width spec text {text!r}")
        return self.validate({"w": int(val)})

    def format(self, spec):
        return f"w={spec['w']}"

    def build(self, spec, *, num_classes, in_chans=3, img_size=32):
        w = spec["w"]
        return nn.Sequential(
            nn.Conv2d(in_chans, w, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(w, num_classes),
        )


@dataclass(frozen=True)
class FakeBatch:
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    source: str = "fake"


BATCH = FakeBatch(x=torch.randn(4, 1, 8, 8), y=torch.arange(4) % 2, num_classes=2)


class CountingCompute:
    """A stand-in for proxies.compute: 'size' = #parameters of the model, 'neg' = −size."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, batch, names, *, seeds=1, **kw):
        self.calls += 1
        if callable(model) and not isinstance(model, nn.Module):
            model = model(0)
        size = float(sum(p.numel() for p in model.parameters()))
        out = {"size": size, "neg": -size, "reasons": {}}
        return {k: v for k, v in out.items() if k in names or k == "reasons"}


class BrittleSpace(WidthSpace):
    """w=3 cannot be built; the meta-device FLOPs count of w=2 fails (the real network runs)."""

    def build(self, spec, *, num_classes, in_chans=3, img_size=32):
        if spec["w"] == 3:
            raise RuntimeError("this candidate cannot be built")
        return super().build(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)

    def flops(self, spec, **shape):
        if spec["w"] == 2:
            raise AssertionError("Expected gradient function to be set")
        return super().flops(spec, **shape)


def test_a_failing_candidate_is_a_row_with_its_reason_and_the_run_goes_on(tmp_path):
    out = tmp_path / "scores.csv"
    specs = ["w=1", "w=2", "w=3", "w=4"]
    rows = list(
        scorecache.score_specs(
            BrittleSpace(), specs, data=BATCH, out=out, n=4, scores=["size"],
            compute=CountingCompute(),
        )
    )  # fmt: skip
    assert [r["spec"] for r in rows] == specs  # one row per spec, in order
    by = {r["spec"]: r for r in rows}
    assert math.isnan(by["w=3"]["size"]) and "cannot be built" in by["w=3"]["reasons"]["error"]
    assert by["w=4"]["size"] == float(sum(p.numel() for p in WidthSpace().build(
        {"w": 4}, num_classes=2, in_chans=1, img_size=8).parameters()))  # fmt: skip
    # the meta-device count failed for w=2: counted on the real network instead, and said so
    real = WidthSpace().flops({"w": 2}, num_classes=2, in_chans=1, img_size=8)
    assert by["w=2"]["flops"] == real and "real network" in by["w=2"]["reasons"]["flops"]
    assert math.isnan(by["w=3"]["flops"]) and "not counted" in by["w=3"]["reasons"]["flops"]
    # every row is on disk, the failure with its reason
    cached = scorecache.read_cache(out)
    assert set(cached) == set(specs)
    assert "cannot be built" in cached["w=3"]["reasons"]["error"]


def _run(specs, out, compute, **kw):
    kw.setdefault("scores", ["size", "neg"])
    return list(
        scorecache.score_specs(WidthSpace(), specs, data=BATCH, out=out, n=4, compute=compute, **kw)
    )


def test_score_specs_rows_hold_params_flops_and_scores(tmp_path):
    compute = CountingCompute()
    rows = _run(["w=1", "# a comment", "", '{"w": 3}'], tmp_path / "s.csv", compute)
    assert [r["spec"] for r in rows] == ["w=1", "w=3"]
    model = WidthSpace().build({"w": 3}, num_classes=2, in_chans=1, img_size=8)
    n_params = sum(p.numel() for p in model.parameters())
    assert rows[1]["params"] == n_params == rows[1]["size"]
    # FLOPs by hand: conv 2·(1·9)·3·64 + linear 2·3·2 (the counter counts multiply-adds twice)
    assert rows[1]["flops"] == 2 * 9 * 3 * 64 + 2 * 3 * 2
    assert rows[1]["seconds"] >= 0 and rows[1]["n"] == "4" and rows[1]["data"] == "fake"


def test_score_specs_resumes_and_flushes_each_row(tmp_path):
    out = tmp_path / "s.csv"
    compute = CountingCompute()
    gen = scorecache.score_specs(
        WidthSpace(),
        ["w=1", "w=2", "w=3"],
        data=BATCH,
        out=out,
        n=4,
        scores=["size", "neg"],
        compute=compute,
    )
    first = next(gen)
    # the row is on disk before the generator is resumed (nothing done is lost on a crash)
    assert [r["spec"] for r in scorecache.read_rows(out)] == [first["spec"]] == ["w=1"]
    gen.close()

    compute = CountingCompute()
    rows = _run(["w=1", "w=2", "w=3", "w=4"], out, compute)
    assert compute.calls == 3  # w=1 was already done
    assert [r["spec"] for r in rows] == ["w=1", "w=2", "w=3", "w=4"]
    assert [r["spec"] for r in scorecache.read_rows(out)] == ["w=1", "w=2", "w=3", "w=4"]
    assert (
        float(rows[0]["size"]) == rows[1]["size"] - (9 + 1) - 2
    )  # one channel fewer: conv 9+1, linear 2

    compute = CountingCompute()
    _run(["w=4", "w=2"], out, compute)
    assert compute.calls == 0
    # another configuration (here: n) is not a cache hit
    compute = CountingCompute()
    list(
        scorecache.score_specs(
            WidthSpace(), ["w=2"], data=BATCH, out=out, n=8, scores=["size"], compute=compute
        )
    )
    assert compute.calls == 1
    # ... nor are other scoring options
    compute = CountingCompute()
    list(scorecache.score_specs(WidthSpace(), ["w=2"], data=BATCH, out=out, n=4, scores=["size"],
                        compute=compute, ridge=0.5))  # fmt: skip
    assert compute.calls == 1


def test_score_specs_computes_only_missing_scores_and_merges_rows(tmp_path):
    out = tmp_path / "s.csv"
    _run(["w=1"], out, CountingCompute(), scores=["size"])
    compute = CountingCompute()
    rows = _run(["w=1", "w=2"], out, compute, scores=["size", "neg"])
    assert compute.calls == 2  # w=1 lacked 'neg' only; w=2 was new
    # the yielded w=1 row merges the old 'size' and the new 'neg'
    assert float(rows[0]["size"]) == -float(rows[0]["neg"]) == rows[1]["size"] - (9 + 1) - 2
    on_disk = scorecache.read_rows(out)
    assert [r["spec"] for r in on_disk] == ["w=1", "w=1", "w=2"]
    assert (
        on_disk[0]["neg"] == "" and on_disk[1]["size"] == ""
    )  # the second run computed 'neg' only
    assert rows[0]["seconds"] == pytest.approx(
        float(on_disk[0]["seconds"]) + float(on_disk[1]["seconds"]), abs=1e-3
    )
    compute = CountingCompute()
    _run(["w=1", "w=2"], out, compute, scores=["neg", "size"])
    assert compute.calls == 0


def test_benchmark_json_shape_and_values(tmp_path):
    accs = [70.0, 60.0, 80.0, 75.0, 90.0]
    widths = [2, 1, 4, 3, 5]  # more channels ↔ more accurate, for a perfect 'size' ranking
    rows = [
        {"arch": f"w={w}", "c10_acc": a, "c100_acc": -a, "index": i}
        for i, (w, a) in enumerate(zip(widths, accs, strict=True))
    ]
    truth = _write_truth(tmp_path / "truth.csv", rows)
    cache = tmp_path / "cache.csv"
    compute = CountingCompute()
    res = evaluation.benchmark(
        WidthSpace(),
        truth=truth,
        data=BATCH,
        scores=["size", "neg"],
        n=4,
        cache=cache,
        compute=compute,
        directions={"size": "maximize", "neg": "minimize"},
    )
    assert res.scores["size"]["c10_acc"] == {
        "kendall": pytest.approx(1.0),
        "spearman": pytest.approx(1.0),
    }
    assert res.scores["size"]["c100_acc"]["kendall"] == pytest.approx(-1.0)
    # 'neg' is minimised, so once oriented it ranks exactly like 'size'
    assert res.scores["neg"]["c10_acc"]["kendall"] == pytest.approx(1.0)
    assert res.top10["size"]["c10_acc"] == 1.0  # k = min(10, 5): everything is in the top
    doc = json.loads(json.dumps(res.to_json()))
    assert set(doc) == {"n", "seconds_per_cell", "default", "scores", "anchors", "top"}
    assert doc["top"]["size"]["c10_acc"]["regret@1"] == 0.0  # 'size' ranks c10 exactly
    assert doc["top"]["size"]["c100_acc"]["rank1_share_better"] == pytest.approx(0.8)
    assert doc["anchors"] == {}  # this truth has no naslib_* / params_m / flops_m column
    assert doc["n"] == 5 and isinstance(doc["seconds_per_cell"], float)
    assert set(doc["scores"]) == {"size", "neg"}
    for per_col in doc["scores"].values():
        assert set(per_col) == {"c10_acc", "c100_acc"}
        for v in per_col.values():
            assert set(v) == {"kendall", "spearman"}
    # with the cache in place, a second run computes nothing and gives the same numbers
    compute2 = CountingCompute()
    res2 = evaluation.benchmark(
        WidthSpace(),
        truth=truth,
        data=BATCH,
        scores=["size", "neg"],
        n=4,
        cache=cache,
        compute=compute2,
        limit=4,
        directions={"size": "maximize", "neg": "minimize"},
    )
    assert compute2.calls == 0 and res2.n == 4
    expected = naive_kendall_tau_b(widths[:4], accs[:4])
    assert res2.scores["size"]["c10_acc"]["kendall"] == pytest.approx(expected)


def test_benchmark_anchor_rows_and_versus_best_anchor(tmp_path):
    accs = [70.0, 60.0, 80.0, 75.0, 90.0, 65.0, 85.0]
    widths = [2, 1, 4, 3, 6, 5, 7]
    rows = [
        {"arch": f"w={w}", "val_acc": a, "naslib_rev": -a, "params_m": w}
        for w, a in zip(widths, accs, strict=True)
    ]
    res = evaluation.benchmark(
        WidthSpace(),
        truth=_write_truth(tmp_path / "truth.csv", rows),
        data=BATCH,
        scores=["size"],
        n=4,
        compute=CountingCompute(),
        directions={"size": "maximize"},
    )
    assert set(res.anchors) == {"naslib_rev", "params_m"}
    assert res.anchors["naslib_rev"]["val_acc"]["kendall"] == pytest.approx(-1.0)
    expected = rankstats.rank_correlations(widths, accs)["kendall"]
    assert res.anchors["params_m"]["val_acc"]["kendall"] == pytest.approx(expected)
    # 'size' scores the width too, so it ties the best anchor (params_m) exactly
    res.default = "size"
    best, diff, lo, hi = res.versus_best_anchor("val_acc", n_boot=100)
    assert best == "params_m" and diff == 0.0 and lo == hi == 0.0
    assert set(res.to_json()["anchors"]) == {"naslib_rev", "params_m"}


# -- the CLI, end to end on NAS-Bench-201 cells (tiny: digits, N = 10, cheap scores) --------------------
CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|",
    "|none~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]


def _cli(*args: str) -> int:
    from nasntk.cli.main import main

    return main(list(args))


def test_cli_score_writes_and_resumes(tmp_path, capsys):
    from nasntk.search_spaces import get as get_space

    space = get_space("nb201")
    specs = tmp_path / "specs.txt"
    specs.write_text("# two cells\n" + "\n".join(CELLS[:2]) + "\n")
    out = tmp_path / "scores.csv"
    args = ["score", "--space", "nb201", "--specs", str(specs), "--data", "digits", "--out", str(out),
            "--n", "10", "--scores", "params,naswot"]  # fmt: skip
    assert _cli(*args) == 0
    rows = scorecache.read_rows(out)
    assert [r["spec"] for r in rows] == CELLS[:2]
    for r in rows:  # digits are 1-channel, 10 classes, 32×32
        spec = space.parse(r["spec"])
        assert float(r["params"]) == space.params(spec, num_classes=10, in_chans=1)
        assert float(r["naswot"]) > 0 and float(r["seconds"]) > 0 and r["bn"] == "frozen"
    first = out.read_text()
    specs.write_text("\n".join(CELLS[:3]) + "\n")
    assert _cli(*args) == 0
    rows = scorecache.read_rows(out)
    assert [r["spec"] for r in rows] == CELLS[:3]
    assert out.read_text().startswith(first)  # the done rows were kept, not recomputed
    capsys.readouterr()
    specs.write_text("|nor_conv_3x3~0|+|bogus~0|none~1|\n")
    assert _cli(*args) == 2
    assert "nb201" in capsys.readouterr().err
    assert (
        _cli("score", "--space", "nb201", "--specs", str(tmp_path / "nope.txt"), "--out", str(out))
        == 2
    )


def test_cli_benchmark_json(tmp_path, capsys):
    from nasntk.search_spaces import get as get_space

    space = get_space("nb201")
    sizes = [space.params(space.parse(c), num_classes=10, in_chans=1) for c in CELLS]
    # accuracies that increase with the parameter count, so `params` ranks them perfectly
    rows = [
        {"arch": c, "x_acc": 50 + 1e-5 * p, "y_acc": -p} for c, p in zip(CELLS, sizes, strict=True)
    ]
    truth = _write_truth(tmp_path / "truth.csv", rows)
    out = tmp_path / "bench.json"
    code = _cli("benchmark", "--truth", str(truth), "--data", "digits", "--n", "10",
                "--scores", "params", "--scores", "naswot", "--json", str(out))  # fmt: skip
    assert code == 0
    assert "params" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert set(doc) == {"n", "seconds_per_cell", "default", "scores", "anchors", "top"}
    assert doc["top"]["params"]["x_acc"]["regret@1"] == 0.0  # params ranks x_acc exactly
    assert doc["top"]["params"]["y_acc"]["rank1_share_better"] > 0.5  # and y_acc backwards
    assert (
        doc["anchors"] == {}
    )  # this truth has no naslib_* / params_m / flops_m column and doc["n"] == 4
    assert doc["default"] == ""  # `default` was not among the asked scores
    assert doc["scores"]["params"]["x_acc"]["kendall"] == pytest.approx(1.0)
    assert doc["scores"]["params"]["y_acc"]["spearman"] == pytest.approx(-1.0)
    assert set(doc["scores"]["naswot"]) == {"x_acc", "y_acc"}


def test_cli_score_over_hard_zoo_models_gives_one_row_each(tmp_path, monkeypatch):
    """The zoo models that broke `nasntk score` or the default (issues 11 and 15): every one is a
    row — scores where it can run, its reason where it cannot (ghostnetv2 cannot run at 32×32)
    — and the run exits 0. The whole ≤ 5M zoo (158 models) is the same command, in the note."""
    monkeypatch.setenv("NASNTK_CACHE", "")
    models = ["pit_ti_distilled_224", "efficientnet_b0", "lcnet_050", "tinynet_e",
              "mobilenetv3_small_050", "ghostnetv2_100"]  # fmt: skip
    specs = tmp_path / "zoo.txt"
    specs.write_text("\n".join(models) + "\n")
    out = tmp_path / "zoo.csv"
    code = _cli("score", "--space", "timm", "--space-opt", "max_params=5e6", "--specs", str(specs),
                "--data", "digits", "--n", "8", "--scores", "default,params,flops",
                "--out", str(out))  # fmt: skip
    assert code == 0
    rows = {r["spec"]: r for r in scorecache.read_rows(out)}
    assert set(rows) == set(models)
    for name in models[:-1]:
        r = rows[name]
        assert all(math.isfinite(float(r[k])) for k in ("default", "params", "flops")), r
    ghost = rows["ghostnetv2_100"]
    assert math.isnan(float(ghost["default"])) and "cannot run" in ghost["reasons"]


def test_benchmark_ranks_an_aggregate_exactly_over_its_cells(tmp_path):
    """With the library's scores, an aggregate's column is Σ log(rank/M) of its terms over the
    truth's cells (its terms are scored with it), whatever a lone compute gives for it."""
    from scipy.stats import rankdata

    from nasntk import proxies

    rows = [{"arch": f"w={w}", "c10_acc": float(w), "index": i} for i, w in enumerate((3, 1, 4, 2))]
    truth = _write_truth(tmp_path / "truth.csv", rows)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    batch = FakeBatch(x=x, y=torch.arange(8) % 2, num_classes=2)
    res = evaluation.benchmark(
        WidthSpace(), truth=truth, data=batch, scores=["tenas"], n=8, cache=tmp_path / "c.csv"
    )
    terms = proxies.get("tenas").terms
    assert set(terms) <= set(res.values)
    want = np.zeros(4)
    for t in terms:
        v = res.values[t] if proxies.get(t).direction == "maximize" else -res.values[t]
        want += rankdata(np.nan_to_num(v, nan=-np.inf)) / 4  # TE-NAS sums ranks
    np.testing.assert_allclose(res.values["tenas"], want)
