"""The factor pool a search keeps (alphagen-style): a bounded set of factors and their ridge
combination, refitted on train (penalty chosen on valid, `evaluation.combine.fit`).

Candidates are offered after each generation, best first. One whose |correlation| with a member
(train cells, standardised values) exceeds the cap replaces that member when its score is at least
`replace_ratio` times the member's, and is rejected otherwise; a full pool takes a new factor only
in place of its weakest unlocked member, by the same ratio. Locked members (a zoo set's top factors,
`pool.zoo`) are never replaced. The search scores candidates against the train label with the
pool's fit taken out (`residual_label`): a candidate's fitness is what it adds to the pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evaluation import combine
from miner.config import PoolSpec
from miner.search.members import Context, Member


@dataclass(frozen=True)
class PoolEntry:
    name: str
    formula: str
    score: float  # its train fitness when offered (0 for a locked member)
    locked: bool
    standardized: np.ndarray  # `combine.standardize` of its values, (T, N)
    train_unit: np.ndarray  # its standardised train cells (missing = 0), scaled to unit norm


class FactorPool:
    """Factors admitted during a search and their combination; `version` counts refits."""

    def __init__(self, spec: PoolSpec, context: Context) -> None:
        self.spec = spec
        self.context = context
        train = context.segments.train
        self._train_cells = np.isfinite(context.label[train])
        self._target = combine.process_label(context.label)
        self.entries: list[PoolEntry] = []
        self.weights = np.zeros(0)
        self.valid_rank_ic = math.nan
        self.version = 0
        self._changed = False

    @property
    def mined(self) -> list[PoolEntry]:
        return [e for e in self.entries if not e.locked]

    def lock(self, members: list[Member]) -> None:
        """Add factors that stay in the pool whatever is offered (e.g. a zoo pick), then refit."""
        for member in members:
            self.entries.append(self._entry(member.name, member.formula, member.standardized, 0.0, True))
        self._changed = True
        self.refit()

    def restore(self, members: list[tuple[str, str, float, bool, np.ndarray]]) -> None:
        """Put back members (name, formula, score, locked, values) as a checkpoint kept them; refit."""
        self.entries = [
            self._entry(name, formula, combine.standardize(values), score, locked)
            for name, formula, score, locked, values in members
        ]
        self._changed = True
        self.refit()

    def state(self) -> list[tuple[str, str, float, bool]]:
        """The members as a checkpoint records them."""
        return [(e.name, e.formula, e.score, e.locked) for e in self.entries]

    def offer(self, name: str, formula: str, values: np.ndarray, score: float) -> str:
        """Offer a candidate; returns what happened: added, replaced NAME, duplicate of NAME or full."""
        entry = self._entry(name, formula, combine.standardize(values), score, False)
        twin = self._most_correlated(entry)
        if twin is not None:
            member, rho = twin
            if member.locked or not score >= self.spec.replace_ratio * member.score:
                return f"duplicate of {member.name} (|corr| {rho:.2f})"
            return self._replace(member, entry)
        mined = self.mined
        if len(mined) < self.spec.capacity:
            self.entries.append(entry)
            self._changed = True
            return "added"
        weakest = min(mined, key=lambda e: e.score)
        if score >= self.spec.replace_ratio * weakest.score:
            return self._replace(weakest, entry)
        return "full"

    def refit(self) -> bool:
        """Refit the combination if the members changed since the last fit; True when it did."""
        if not self._changed:
            return False
        self._changed = False
        self.version += 1
        if not self.entries:
            self.weights, self.valid_rank_ic = np.zeros(0), math.nan
            return True
        context = self.context
        segments = context.segments
        fitted = combine.fit(
            "ridge",
            [e.standardized for e in self.entries],
            context.label,
            segments.train,
            segments.valid,
            context.min_names,
        )
        self.weights, self.valid_rank_ic = fitted.weights, fitted.valid_rank_ic
        return True

    def composite(self) -> np.ndarray:
        """The pool's combined factor, (T, N)."""
        return combine.composite([e.standardized for e in self.entries], self.weights)

    def residual_label(self, stop: int) -> np.ndarray | None:
        """Rows [0, stop) of the processed label (`combine.process_label`) less its least-squares
        projection on the composite over the train cells; None for an empty pool."""
        if not self.entries or not np.any(self.weights):
            return None
        target = self._target[:stop]
        fitted = np.nan_to_num(self.composite()[:stop])
        train = self.context.segments.train
        cells = np.isfinite(target[train])
        x, y = fitted[train][cells], target[train][cells]
        slope = float(x @ y / (x @ x)) if x @ x > 0 else 0.0
        return target - slope * fitted

    def _entry(
        self, name: str, formula: str, standardized: np.ndarray, score: float, locked: bool
    ) -> PoolEntry:
        cells = np.nan_to_num(standardized[self.context.segments.train])[self._train_cells]
        norm = float(np.linalg.norm(cells))
        unit = (cells / norm if norm > 0 else cells).astype(np.float32)
        return PoolEntry(name, formula, score, locked, standardized, unit)

    def _most_correlated(self, entry: PoolEntry) -> tuple[PoolEntry, float] | None:
        """The member most correlated with `entry` when |corr| exceeds the cap."""
        best: tuple[PoolEntry, float] | None = None
        for member in self.entries:
            rho = abs(float(member.train_unit @ entry.train_unit))
            if rho > self.spec.max_correlation and (best is None or rho > best[1]):
                best = (member, rho)
        return best

    def _replace(self, member: PoolEntry, entry: PoolEntry) -> str:
        self.entries[self.entries.index(member)] = entry
        self._changed = True
        return f"replaced {member.name}"
