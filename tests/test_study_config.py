"""Tests of nasntk.study.config: one SearchConfig, its checks, what it stores, the command's."""

from __future__ import annotations

import pickle
from dataclasses import fields, replace

import pytest
from search_toy_space import ToySpace

from nasntk.errors import NasntkError
from nasntk.study import config as cfg
from nasntk.study.config import SearchConfig, command_config, parse_objectives

SHAPE = {"num_classes": 10, "in_chans": 1, "img_size": 8}


def test_what_is_stored_with_a_study_is_the_format_on_disk() -> None:
    config = SearchConfig("nb201", space_options={"C": 2}, n_kernel=8, img_size=8)
    stored = config.stored("nb201", SHAPE)
    # Keys in this order, as studies written by every earlier version hold them.
    assert list(stored) == [
        "space_options", "data", "objectives", "directions", "scores", "n_kernel", "seeds",
        "bn", "init_seed", "data_seed", "img_size", "proxy_options", "space", "num_classes",
        "in_chans",
    ]  # fmt: skip
    assert stored["objectives"] == ["default"] and stored["directions"] == ["maximize"]
    assert stored["scores"][0] == "default" and "pntk_cond" in stored["scores"]
    assert stored["space"] == "nb201" and stored["img_size"] == 8 and stored["in_chans"] == 1


def test_compatible_names_the_first_setting_that_differs() -> None:
    config = SearchConfig("nb201", n_kernel=8)
    existing = config.stored("nb201", SHAPE)
    assert config.compatible(existing, ["maximize"], "nb201", SHAPE) is None
    other = replace(config, n_kernel=16)
    assert other.compatible(existing, ["maximize"], "nb201", SHAPE) == "n_kernel=8 (not 16)"
    assert config.compatible(existing, ["minimize"], "nb201", SHAPE) == "other objectives"
    # Budgets, workers, device and the sampler may change between runs.
    free = replace(config, max_params=10**6, workers=2, sampler="random", trials=5)
    assert free.compatible(existing, ["maximize"], "nb201", SHAPE) is None


def test_derived_values() -> None:
    config = SearchConfig("nb201", objective="pntk_cond,params:min", scores=[])
    assert config.objectives == ["pntk_cond", "params"]
    assert config.directions == ("minimize", "minimize")
    assert config.score_names == ("pntk_cond", "params")
    assert config.target_trials == cfg.DEFAULT_TRIALS
    assert replace(config, timeout=5.0).target_trials is None
    assert config.name_for("nb201") == "nb201-digits-pntk_cond+params:min-n64"
    assert replace(config, study_name="mine").name_for("nb201") == "mine"
    assert SearchConfig("x", workers=2).threads_per_worker() >= 1
    assert SearchConfig("x").threads_per_worker() is None


def test_unknown_keyword_arguments_are_score_options() -> None:
    config = SearchConfig.from_kwargs("nb201", n_kernel=8, ridge=0.5)
    assert config.n_kernel == 8 and config.proxy_options == {"ridge": 0.5}
    with pytest.raises(NasntkError, match="unknown score option"):
        SearchConfig.from_kwargs("nb201", not_an_option=1)


def test_a_config_travels_to_worker_processes() -> None:
    config = SearchConfig("search_toy_space:ToySpace", objective="pntk_cond", n_kernel=8)
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.directions == config.directions


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": ""}, "at least one score"),
        ({"objective": "default,default"}, "names a score twice"),
        ({"objective": "pntk_cond:up"}, "suffix"),
        ({"scores": "nope"}, "unknown score"),
        ({"n_kernel": 2}, ">= 4"),
        ({"n_low": 64}, "n-low"),
        ({"trials": 0}, "--trials"),
        ({"timeout": 0}, "--timeout"),
        ({"workers": 0}, "--workers"),
        ({"threads": 0}, "--threads"),
        ({"seeds": 0}, "seeds"),
        ({"img_size": 0}, "--img-size"),
        ({"max_params": 0}, "--max-params must be positive"),
        ({"bn": "train"}, "--bn must be eval, batch or frozen"),
        ({"device": "gpu9"}, "unknown device"),
        ({"sampler": "annealing"}, "unknown sampler"),
        ({"pruner": "sometimes"}, "unknown pruner"),
        ({"pruner": "median"}, "needs a first, small N"),
    ],
)
def test_each_option_is_checked_once_when_the_config_is_made(kwargs, message) -> None:
    with pytest.raises(NasntkError, match=message):
        SearchConfig("nb201", **kwargs)


def test_parse_objectives() -> None:
    assert parse_objectives("default") == [("default", None)]
    assert parse_objectives("a, b:MAX") == [("a", None), ("b", "maximize")]
    assert parse_objectives(["a", "b:minimize"]) == [("a", None), ("b", "minimize")]


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------
def test_the_command_defaults_are_the_library_defaults_except_where_stated() -> None:
    import typer

    from nasntk.cli.main import app

    command = typer.main.get_command(app).commands["search"]
    shown = {p.name: p.default for p in command.params}
    library = {f.name: f.default for f in fields(SearchConfig) if f.init}
    assert shown["space"] is None  # no --space: the command's preset (COMMAND_SPACE …)
    for name, default in library.items():
        if name == "space":
            continue
        option = "study" if name == "study_name" else name
        if option in shown and name not in cfg.COMMAND_DEFAULTS:
            assert shown[option] == default, name
    assert shown["seed"] == 0 and library["seed"] is None
    assert shown["threads"] == 1 and library["threads"] is None
    assert set(cfg.COMMAND_DEFAULTS) == {"seed", "threads"}


def test_command_config_applies_the_preset_only_without_a_space() -> None:
    preset = command_config(space=None, space_opt=["N=2"], max_params=None, max_flops=None)
    assert preset.space == cfg.COMMAND_SPACE
    assert preset.space_options == {**cfg.COMMAND_SPACE_OPTIONS, "N": 2}
    assert preset.img_size == cfg.COMMAND_IMG_SIZE
    # the 8×8 preset is for the embedded digits only: a user's images keep their own size
    folder = command_config(space=None, space_opt=None, max_params=None, max_flops=None,
                            data="folder:/tmp/imgs")  # fmt: skip
    assert folder.space == cfg.COMMAND_SPACE and folder.img_size is None
    explicit = command_config(space=None, space_opt=None, max_params=None, max_flops=None,
                              data="folder:/tmp/imgs", img_size=16)  # fmt: skip
    assert explicit.img_size == 16
    plain = command_config(space="nb201", space_opt=None, max_params="2M", max_flops="500k")
    assert plain.space_options == {} and plain.img_size is None
    assert (plain.max_params, plain.max_flops) == (2_000_000, 500_000)


def test_option_texts() -> None:
    assert cfg.parse_count("1.5G", "--x") == 1_500_000_000
    assert cfg.parse_count("2_000", "--x") == 2000
    with pytest.raises(NasntkError, match="--x must be a number"):
        cfg.parse_count("lots", "--x")
    with pytest.raises(NasntkError, match="positive"):
        cfg.parse_count("-1", "--x")
    assert cfg.parse_space_options(["C=8,N=1", "name=abc"]) == {"C": 8, "N": 1, "name": "abc"}
    with pytest.raises(NasntkError, match="KEY=VALUE"):
        cfg.parse_space_options(["C"])


def test_a_space_instance_is_accepted() -> None:
    assert SearchConfig(ToySpace()).space.name == "toy"


def test_default_study_names_are_short_and_typeable() -> None:
    import re

    name = cfg.default_study_name("nb201", "folder:/tmp/ux/imgs-24x24/", ["default"], 64)
    assert name.startswith("nb201-folder-imgs-24x24-") and name.endswith("-default-n64")
    assert re.fullmatch(r"[A-Za-z0-9_.+-]+", name)  # no path, no colon, no slash
    other = cfg.default_study_name("nb201", "folder:/elsewhere/imgs-24x24", ["default"], 64)
    assert other != name  # the same folder name elsewhere is another study
    assert (
        cfg.default_study_name("nb201", "cifar10", ["default"], 64) == "nb201-cifar10-default-n64"
    )
    spaced = cfg.default_study_name("nb201", "npz:/data/my set.npz", ["default", "params"], 8)
    assert re.fullmatch(r"nb201-npz-my-set-[0-9a-f]{6}-default\+params-n8", spaced)
