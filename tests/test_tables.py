"""Tests of nasntk.tables: how values look in every table, and markdown tables."""

from __future__ import annotations

import math

from nasntk.tables import format_fixed, format_value, markdown_table


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
