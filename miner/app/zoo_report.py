"""`miner zoo report`: each zoo factor's rank IC, ICIR and turnover on an experiment's splits and label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evaluation import prepare_label
from miner.config import ExperimentConfig
from miner.errors import FormulaError
from miner.lang import Evaluator
from miner.market import MarketData
from miner.market.labels import experiment_label
from miner.search.splits import make_segments
from miner.search.survivors import segment_metrics
from miner.zoo import ZooFactor

SEGMENTS = ("train", "valid", "test")
METRICS = ("rank_ic", "icir", "turnover", "coverage", "ic")


def metric_columns() -> list[str]:
    return [f"{segment}_{metric}" for segment in SEGMENTS for metric in METRICS]


def zoo_report(factors: list[ZooFactor], market: MarketData, config: ExperimentConfig) -> pd.DataFrame:
    """One row per factor: id, category, formula, each segment's metrics (`METRICS`) and `error`,
    the reason a factor could not be evaluated on this market (its metrics are then NaN).

    The segments and the label are the config's, as in a mining run; one evaluator computes every
    subformula the factors share once.
    """
    segments = make_segments(market.dates, config.splits, config.embargo, config.source).as_dict()
    label = experiment_label(market, config.label)
    ranked = {name: prepare_label(label, rows=rows) for name, rows in segments.items()}
    evaluator = Evaluator(market)
    rows = []
    for factor in factors:
        row: dict[str, object] = {"id": factor.id, "category": factor.category, "formula": factor.formula}
        row.update(dict.fromkeys(metric_columns(), math.nan))
        try:
            values = evaluator.evaluate(factor.formula)
        except FormulaError as exc:
            row["error"] = str(exc)
        else:
            row["error"] = ""
            for name, segment_rows in segments.items():
                scores = segment_metrics(values, label, ranked[name], segment_rows, config.fitness.min_names)
                row.update({f"{name}_{metric}": float(getattr(scores, metric)) for metric in METRICS})
        rows.append(row)
    columns = ["id", "category", "formula", *metric_columns(), "error"]
    return pd.DataFrame(rows, columns=columns).astype(dict.fromkeys(metric_columns(), np.float64))
