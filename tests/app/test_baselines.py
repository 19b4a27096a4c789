"""The baselines every run reports: the zoo's top k picked on valid (checked against each factor's
rank IC computed from its raw values), the survivors' mean against the admission's own figures,
composite figures against their formula, and the choices frozen as plain data."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from evaluation import metrics
from miner import evaluate
from miner.app.baselines import baseline_report
from miner.app.experiment import market_for
from miner.errors import ConfigError
from miner.search.evolution import Miner
from miner.search.members import Context, pick_zoo, zoo_members
from miner.zoo import load_zoo
from tests.search.test_evolution import small

BRIEF_METRICS = {
    f"{name}_{segment}_rank_ic"
    for name in (
        "composite_ew",
        "composite_ridge",
        "zoo_top_k",
        "zoo_composite",
        "zoo_plus_mined_composite",
        "survivors_mean",
    )
    for segment in ("train", "valid", "test")
}


@pytest.fixture(scope="module")
def run() -> dict:
    config = small(baselines={"zoo": "classic", "top_k": 4, "method": "ridge"})
    market = market_for(config)
    result = Miner(config, market).run()
    report = baseline_report(config, market, [(s.name, s.formula) for s in result.survivors])
    return {"config": config, "market": market, "result": result, "report": report}


def mean_rank_ic(values: np.ndarray, label: np.ndarray, rows: slice, min_names: int) -> float:
    series = metrics.rank_ic(values, label, min_names, rows=rows)[rows]
    finite = series[np.isfinite(series)]
    return float(finite.mean()) if finite.size else math.nan


def test_the_zoo_top_k_has_the_best_signed_valid_rank_ic(run: dict) -> None:
    config, market = run["config"], run["market"]
    context = Context.of(config, market)
    segments = context.segments
    signed = {}
    for factor in load_zoo("classic"):
        raw = evaluate(factor.formula, market)
        train = mean_rank_ic(raw, context.label, segments.train, context.min_names)
        signed[factor.id] = np.sign(train) * mean_rank_ic(
            raw, context.label, segments.valid, context.min_names
        )
    expected = sorted((k for k in signed if math.isfinite(signed[k])), key=lambda k: -signed[k])[:4]
    zoo = run["report"].zoo
    assert [m.name for m in zoo.members] == expected
    for member in zoo.members:
        assert member.signed_rank_ic("valid") == pytest.approx(signed[member.name], abs=1e-12)
    assert run["report"].metrics()["zoo_top_k_valid_rank_ic"] == pytest.approx(
        np.mean([signed[k] for k in expected]), abs=1e-12
    )


def test_the_survivors_mean_agrees_with_their_admission_figures(run: dict) -> None:
    survivors = run["result"].survivors
    assert survivors
    figures = run["report"].metrics()
    for segment in ("train", "valid", "test"):
        direct = np.mean(
            [np.sign(s.segments["train"].rank_ic) * s.segments[segment].rank_ic for s in survivors]
        )
        assert figures[f"survivors_mean_{segment}_rank_ic"] == pytest.approx(direct, abs=1e-12)


def test_every_composite_figure_is_its_formulas_figure(run: dict) -> None:
    report, market = run["report"], run["market"]
    context = Context.of(run["config"], market)
    figures = report.metrics()
    assert BRIEF_METRICS <= set(figures)
    results = {f"composite_{m}": c for m, c in report.composites.items()}
    results |= {"zoo_composite": report.zoo_composite, "zoo_plus_mined_composite": report.zoo_plus_mined}
    for prefix, result in results.items():
        values = evaluate(result.formula, market)
        for segment, rows in context.segments.as_dict().items():
            direct = mean_rank_ic(values, context.label, rows, context.min_names)
            assert figures[f"{prefix}_{segment}_rank_ic"] == pytest.approx(direct, abs=1e-9), prefix
    members = set(report.zoo_plus_mined.weights)
    assert members <= {m.name for m in report.zoo.members} | {m.name for m in report.survivors}


def test_choices_are_plain_data(run: dict) -> None:
    choices = run["report"].choices()
    assert json.loads(json.dumps(choices)) == choices
    assert [e["name"] for e in choices["zoo"]["top_k"]] == [m.name for m in run["report"].zoo.members]
    assert set(choices["composites"]) == {"ew", "icw", "ridge", "lasso"}


def test_no_zoo_and_an_unknown_zoo(run: dict) -> None:
    config = small(baselines={"zoo": "none"})
    report = baseline_report(config, run["market"], [("a", "rank(delta(close, 5))")])
    assert report.zoo is None and report.zoo_plus_mined is None
    assert not any(k.startswith("zoo") for k in report.metrics())
    with pytest.raises(ConfigError, match=r"baselines.zoo: unknown zoo set 'nope'"):
        pick_zoo("nope", 3, Context.of(config, run["market"]), "x.yaml: baselines.zoo")


def test_zoo_factors_the_market_cannot_evaluate_are_left_out(run: dict) -> None:
    market = run["market"]
    without_sectors = dataclasses.replace(
        market, fields={k: v for k, v in market.fields.items() if k != "sector"}, groups={}
    )
    context = Context.of(run["config"], without_sectors)
    names = [m.name for m in zoo_members("alpha101", context, "x")]
    needs_sector = [f.id for f in load_zoo("alpha101") if "sector" in f.formula]
    assert needs_sector and not set(needs_sector) & set(names)
    assert len(names) == len(load_zoo("alpha101")) - len(needs_sector)
