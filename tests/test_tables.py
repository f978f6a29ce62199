"""Tests of nasntk.tables: how values look in every table, and markdown tables."""

from __future__ import annotations

import math

from nasntk.tables import format_compact, format_fixed, format_value, markdown_table


def test_format_value() -> None:
    assert format_value(None) == ""
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.123456) == "0.1235"
    assert format_value(math.inf) == "inf" and format_value(-math.inf) == "-inf"
    assert format_value(math.nan) == "nan"
    assert format_value({"b": 1, "a": [2]}) == '{"a": [2], "b": 1}'
    assert format_value(True) == "True" and format_value(False, bools=("yes", "no")) == "no"
    assert format_value("a|b") == "a|b"


def test_format_fixed() -> None:
    assert format_fixed(0.74512) == "0.745" and format_fixed(2, digits=1) == "2.0"
    assert format_fixed(math.nan) == "nan" and format_fixed(-math.inf) == "-inf"
    assert format_fixed("n/a") == "n/a"


def test_markdown_table() -> None:
    assert markdown_table(["a", "b"], [["1", "x|y"]]) == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]


def test_format_compact() -> None:
    values = [7, 9999, 10_000, 230_042, 3_788_032, 999_499, 999_500, -230_042, 10**18]
    assert [format_compact(v) for v in values] == [
        "7", "9,999", "10k", "230k", "3.79M", "999k", "1M", "-230k", "1e18"
    ]  # fmt: skip
    assert [format_compact(v) for v in (0.31468, 176873.58, 1.2e-7, -3.3e12)] == [
        "0.3147", "1.769e5", "1.2e-7", "-3.3e12"
    ]  # fmt: skip
    assert [format_compact(v) for v in (None, True, "x", math.nan)] == ["", "True", "x", "nan"]
