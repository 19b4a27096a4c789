"""`miner combine`: a composite of library or zoo factors, fitted on a config's splits and label.

The members are library factors (named, or a whole category: the composite formula names them, so
a registered composite depends on them and updates with them) or a zoo set (the formula holds their
formulas). Weights are fitted on train, the penalty chosen on valid (`evaluation.combine`); the
composite and its best member (by signed valid rank IC) are scored on every segment.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from evaluation import combine, metrics, report
from miner.app.baselines import SEGMENTS, CompositeResult, SegmentStats, composite_of, segment_stats
from miner.app.experiment import library_panels, market_for
from miner.app.tracking import log_finished_run, tracking_uri
from miner.config import ExperimentConfig
from miner.errors import ConfigError, LibraryError
from miner.search.members import Context, Member, member_of, zoo_members

COMPOSITE_CATEGORY = "composite"
STANDARDISATION = "zscore(rank(factor)) per date"


@dataclass(frozen=True)
class Selection:
    """Which factors to combine: library ids, a library category, or a zoo set (exactly one)."""

    factor_ids: tuple[str, ...] = ()
    category: str | None = None
    zoo: str | None = None

    def describe(self) -> str:
        if self.zoo is not None:
            return f"zoo set {self.zoo}"
        if self.category is not None:
            return f"library category {self.category}"
        return f"library factors {', '.join(self.factor_ids)}"


@dataclass(frozen=True)
class CombineOutcome:
    members: list[Member]
    composite: CompositeResult
    best: Member  # the member with the best signed valid rank IC
    best_segments: dict[str, SegmentStats]  # the best member's, in its train direction
    context: Context
    run_id: str | None = None


def combine_factors(
    config: ExperimentConfig,
    method: str,
    selection: Selection,
    library: Path,
    register: str | None = None,
) -> CombineOutcome:
    """Fit the composite, log it to MLflow (unless tracking is off) and register it when asked."""
    if sum((bool(selection.factor_ids), selection.category is not None, selection.zoo is not None)) != 1:
        raise ConfigError("name the members one way: --factors, --category or --zoo")
    context = Context.of(config, market_for(config))
    if selection.zoo is not None:
        members = list(zoo_members(selection.zoo, context, "--zoo"))
    else:
        members = _library_members(selection, library, context)
    composite = composite_of(method, members, context)
    if composite is None:
        raise ConfigError(f"no {method} composite of {selection.describe()}: no member has a train rank IC")
    best = max(members, key=lambda m: np.nan_to_num(m.signed_rank_ic("valid"), nan=-np.inf))
    best_segments = {
        segment: segment_stats(best.sign * best.standardized, context, rows)
        for segment, rows in context.segments.as_dict().items()
    }
    outcome = CombineOutcome(members, composite, best, best_segments, context)
    if config.tracking.enabled:
        outcome = dataclasses.replace(outcome, run_id=_log_run(outcome, config, selection))
    if register is not None:
        _register(register, outcome, selection, library, config)
    return outcome


def _library_members(selection: Selection, path: Path, context: Context) -> list[Member]:
    """Library factors on the config's market; each is named by its id in the composite formula."""
    from miner.library import FactorLibrary

    if not path.exists():
        raise LibraryError(f"factor library {path} does not exist")
    with FactorLibrary(path, read_only=True) as library:
        listing = library.list_factors()
        if selection.category is not None:
            ids = list(listing.loc[listing["category"] == selection.category, "factor_id"])
            if not ids:
                raise LibraryError(f"no factor in {path} has category {selection.category!r}")
        else:
            ids = list(dict.fromkeys(selection.factor_ids))
            unknown = sorted(set(ids) - set(listing["factor_id"]))
            if unknown:
                raise LibraryError(f"no factor {unknown[0]!r} in {path}")
        panels = library_panels(library, ids, context.market)
    return [member_of(factor_id, factor_id, panels.pop(factor_id), context) for factor_id in ids]


def _log_run(outcome: CombineOutcome, config: ExperimentConfig, selection: Selection) -> str:
    """An MLflow run of the combination: weights, figures and a cumulative rank IC plot."""
    composite, context = outcome.composite, outcome.context
    weights = np.array([composite.weights.get(m.name, 0.0) for m in outcome.members])
    values = {
        "composite": combine.composite([m.standardized for m in outcome.members], weights),
        f"best member {outcome.best.name}": outcome.best.sign * outcome.best.standardized,
    }
    series = {name: metrics.rank_ic(v, context.label, context.min_names) for name, v in values.items()}
    figure = report.cumulative_rank_ic(context.market.dates, series, context.segments.as_dict())
    figure.axes[0].set_title(f"Cumulative rank IC: {composite.method} composite of {selection.describe()}")
    figures: dict[str, float] = {}
    for prefix, by_segment in (("composite", composite.segments), ("best_member", outcome.best_segments)):
        for segment, stats in by_segment.items():
            for key, value in dataclasses.asdict(stats).items():
                figures[f"{prefix}_{segment}_{key}"] = value
    return log_finished_run(
        tracking_uri(config.tracking.uri),
        config.name,
        f"combine-{composite.method}",
        params={
            "kind": "combine",
            "method": composite.method,
            "members": selection.describe()[:500],
            "n_members": str(len(composite.weights)),
            "penalty": f"{composite.penalty:g}",
            "standardisation": STANDARDISATION,
            "label": combine.LABEL_PROCESSING,
            "best_member": outcome.best.name,
        },
        metrics=figures,
        texts={"composite.txt": composite.formula + "\n", "weights.csv": _weights_csv(outcome)},
        figures={"cumulative_rank_ic": figure},
    )


def _weights_csv(outcome: CombineOutcome) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["member", "formula", "weight", "train_rank_ic", "valid_rank_ic"])
    for m in outcome.members:
        weight = outcome.composite.weights.get(m.name, 0.0)
        writer.writerow([m.name, m.formula, weight, m.rank_ic["train"], m.rank_ic["valid"]])
    return buffer.getvalue()


def _register(
    factor_id: str, outcome: CombineOutcome, selection: Selection, path: Path, config: ExperimentConfig
) -> None:
    """Register the composite (a library with no market data gets the config's, as `promote` does)."""
    from miner.app.promote import ensure_market
    from miner.library import FactorLibrary

    composite = outcome.composite
    valid = composite.segments["valid"]
    source = f"miner combine {composite.method}" + (
        f" (MLflow run {outcome.run_id})" if outcome.run_id else ""
    )
    with FactorLibrary(path) as library:
        ensure_market(library, config)
        library.register_factor(
            factor_id,
            composite.formula,
            description=f"{composite.method} composite of {selection.describe()}"[:500],
            category=COMPOSITE_CATEGORY,
            source=source,
            metrics={"valid_rank_ic": valid.rank_ic, "valid_icir": valid.icir, "penalty": composite.penalty},
        )


def combine_tables(outcome: CombineOutcome) -> tuple[Table, Table]:
    """The composite next to its best member on each segment, then the members' weights."""
    composite = outcome.composite
    figures = Table(
        title=f"{composite.method} composite of {len(composite.weights)} of {len(outcome.members)} factors "
        "(fitted on train, penalty on valid; test is reported only)",
        box=box.SIMPLE_HEAD,
    )
    for column in ("", "segment", "rank IC", "ICIR", "long-short"):
        figures.add_column(column, justify="right" if column else "left")
    for label, by_segment in (
        ("composite", composite.segments),
        (f"best member {outcome.best.name}", outcome.best_segments),
    ):
        for segment in SEGMENTS:
            stats = by_segment[segment]
            figures.add_row(
                label if segment == "train" else "",
                segment,
                f"{stats.rank_ic:+.4f}",
                f"{stats.icir:+.3f}",
                f"{stats.long_short:+.5f}",
            )
    weights = Table(box=box.SIMPLE_HEAD)
    for column in ("member", "weight", "train rank IC", "valid rank IC"):
        weights.add_column(column, justify="left" if column == "member" else "right")
    for m in sorted(outcome.members, key=lambda m: -abs(composite.weights.get(m.name, 0.0))):
        weight = composite.weights.get(m.name, 0.0)
        weights.add_row(m.name, f"{weight:+.4f}", f"{m.rank_ic['train']:+.4f}", f"{m.rank_ic['valid']:+.4f}")
    return figures, weights
