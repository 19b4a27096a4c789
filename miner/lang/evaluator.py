"""Evaluation of formula trees on a `MarketData`, each distinct subformula computed once per cache."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from miner.errors import FormulaError
from miner.lang.cache import ByteLRU
from miner.lang.nodes import Call, Name, Node, Num
from miner.lang.parser import parse
from miner.lang.printer import canonicalize, to_string
from operators import REGISTRY, Arg, Kind, Operator
from operators.elementwise import CHAIN_FROM_CELLS, CHAIN_LEAVES, CHAIN_STEPS, run_chain
from operators.spectral import SERIAL, fft_length

if TYPE_CHECKING:
    from miner.market.panel import MarketData

DEFAULT_CACHE_BYTES = 1 << 30
MAX_WORKING_BYTES = 2 << 30  # the most one operator may allocate for buffers that grow with its window


def _fft_window_bytes(window: int, rows: int, columns: int) -> int:
    """ts_fft_band: a block of series, each padded to its FFT length, and their spectra."""
    series = min(SERIAL.days_per_block(columns), rows) * columns
    return 2 * series * fft_length(window) * 8 + (rows + window) * columns * 8


def _sorted_window_bytes(window: int, rows: int, columns: int) -> int:
    """ts_mad_despike: each column's window of values, kept sorted."""
    return columns * window * 8


# Operators whose working memory grows with the window rather than with the data: a window far
# longer than the data would allocate without bound, so it is refused (other rolling operators
# take any window: one longer than the data covers the rows there are).
WINDOW_MEMORY: dict[str, Callable[[int, int, int], int]] = {
    "ts_fft_band": _fft_window_bytes,
    "ts_mad_despike": _sorted_window_bytes,
}


class Evaluator:
    """Evaluates formulas on one `MarketData`, computing each distinct subformula once.

    `extra` supplies further named panels (e.g. library factors a formula refers to); it is read,
    not copied, so a caller may add panels to it between evaluations.
    Results are read-only arrays that may be shared with the cache.
    """

    def __init__(
        self,
        data: MarketData,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.data = data
        self.cache: ByteLRU[str, np.ndarray] = ByteLRU(cache_bytes, _nbytes)
        self.extra: Mapping[str, np.ndarray] = {} if extra is None else extra
        self.shape = (len(data.dates), len(data.instruments))
        self._listed: np.ndarray | None = None

    def evaluate(self, formula: str | Node) -> np.ndarray:
        tree = canonicalize(parse(formula))
        try:
            result = self._series(tree)
        except FormulaError as exc:
            raise FormulaError(f"{exc} (evaluating {to_string(tree)!r})") from None
        if isinstance(result, float):
            result = self._broadcast(result)
        return result

    def _series(self, node: Node) -> np.ndarray | float:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Name):
            return self._field(node.name)
        key = to_string(node)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        chain = self._chain(node) if node.op in CHAIN_STEPS else None
        if chain is not None:
            out = _readonly(chain)
            self.cache.put(key, out)
            return out
        spec = REGISTRY[node.op]
        args = [self._argument(formal, a) for formal, a in zip(spec.args, node.args)]
        self._check_working_memory(spec, args)
        try:
            out = spec.kernel(*args)
        except ValueError as exc:
            raise FormulaError(f"{spec.name}: {exc}") from None
        if isinstance(out, float | np.floating):
            return float(out) if math.isfinite(out) else math.nan
        out = _sanitized(out, args)
        self.cache.put(key, out)
        return out

    def _chain(self, node: Call) -> np.ndarray | None:
        """node's values as one chain of elementwise steps (`operators.elementwise.run_chain`),
        or None when it is not worth one: small panels, fewer than two steps, no panel or too many."""
        if math.prod(self.shape) < CHAIN_FROM_CELLS:
            return None
        plan = _ChainPlan(self._is_chain_step)
        plan.add(node)
        if len(plan.steps) < 2 or len(plan.leaves) > CHAIN_LEAVES:
            return None
        values = [self._series(leaf) for leaf in plan.leaves]
        if all(isinstance(v, float) for v in values):
            return None
        return plan.run(values)

    def _is_chain_step(self, node: Node) -> bool:
        """An elementwise call whose values are not held already (those are read, not recomputed)."""
        return isinstance(node, Call) and node.op in CHAIN_STEPS and to_string(node) not in self.cache

    def _check_working_memory(self, spec: Operator, args: list[object]) -> None:
        estimate = WINDOW_MEMORY.get(spec.name)
        if estimate is None:
            return
        window = next(int(a) for f, a in zip(spec.args, args) if f.kind is Kind.WINDOW)  # type: ignore[call-overload]
        need = estimate(window, *self.shape)
        if need > MAX_WORKING_BYTES:
            raise FormulaError(
                f"{spec.name}: window {window} needs about {need / 2**30:.1f} GiB of working memory on "
                f"{self.shape[0]} x {self.shape[1]} values (at most {MAX_WORKING_BYTES >> 30} GiB): "
                "use a shorter window"
            )

    def _argument(self, formal: Arg, node: Node) -> object:
        kind = formal.kind
        if kind is Kind.SERIES:
            value = self._series(node)
            if isinstance(value, float) and not formal.scalar_ok:
                return self._broadcast(value)
            return value
        if kind in (Kind.WINDOW, Kind.LAG):
            return int(node.value)  # type: ignore[union-attr]
        if kind is Kind.CONST:
            return node.value  # type: ignore[union-attr]
        name = node.name  # type: ignore[union-attr]
        if kind is Kind.GROUP:
            if not self.data.is_group(name):
                groups = ", ".join(sorted(self.data.groups)) or "none"
                raise FormulaError(f"{name!r} is not a group label (group fields: {groups})")
            return self.data.fields[name]
        if name not in self.data.intraday:
            available = ", ".join(sorted(self.data.intraday)) or "none: the data has no minute bars"
            raise FormulaError(f"{name!r} is not an intraday field (intraday fields: {available})")
        return self.data.intraday[name]

    def _broadcast(self, value: float) -> np.ndarray:
        """A number as a panel: the value where the market has data on that date, NaN elsewhere.

        A constant is then the same on a date whatever instruments join the panel later, so that a
        cross-sectional operator of it (``rank(1)``) gives the same values in an incremental update
        as in a full recomputation.
        """
        if self._listed is None:
            self._listed = _listed_cells(self.data, self.extra)
        return _readonly(np.where(self._listed, value, np.nan))

    def _field(self, name: str) -> np.ndarray:
        if name in self.extra:
            return self.extra[name]
        if self.data.is_group(name):
            raise FormulaError(f"{name!r} is a group label; use it as the group argument of group_*")
        if name not in self.data.fields:
            available = ", ".join(sorted(set(self.data.fields) | set(self.extra)))
            raise FormulaError(f"unknown field {name!r} (available: {available})")
        return self.data.fields[name]


Operand = tuple[str, int]  # ("leaf" | "const" | "step", index)


class _ChainPlan:
    """The steps of an elementwise chain, its leaves (subformulas computed on their own, each
    once) and its numbers, gathered from a tree: a node is a step where `is_step` says so."""

    def __init__(self, is_step: Callable[[Node], bool]) -> None:
        self.is_step = is_step
        self.steps: list[tuple[str, list[Operand]]] = []
        self.leaves: list[Node] = []
        self.numbers: list[float] = []
        self._seen: dict[str, Operand] = {}

    def add(self, node: Node) -> Operand:
        if isinstance(node, Num):
            self.numbers.append(node.value)
            return ("const", len(self.numbers) - 1)
        key = to_string(node)
        if key not in self._seen:
            if self.is_step(node):
                args = [self.add(a) for a in node.args]  # type: ignore[union-attr]
                self.steps.append((node.op, args))  # type: ignore[union-attr]
                self._seen[key] = ("step", len(self.steps) - 1)
            else:
                self.leaves.append(node)
                self._seen[key] = ("leaf", len(self.leaves) - 1)
        return self._seen[key]

    def run(self, values: list[np.ndarray | float]) -> np.ndarray:
        """The chain's values, given its leaves' values (numbers among them become constants)."""
        panels = [v for v in values if isinstance(v, np.ndarray)]
        numbers = self.numbers + [v for v in values if not isinstance(v, np.ndarray)]
        slots, panel_at, number_at = [], 0, len(self.numbers)
        for value in values:  # leaf i -> its slot: a panel's, or its number's register
            if isinstance(value, np.ndarray):
                slots.append(panel_at)
                panel_at += 1
            else:
                slots.append(CHAIN_LEAVES + number_at)
                number_at += 1

        def slot(operand: Operand) -> int:
            kind, index = operand
            if kind == "leaf":
                return slots[index]
            return CHAIN_LEAVES + index + (len(numbers) if kind == "step" else 0)

        steps = []
        for i, (op, args) in enumerate(self.steps):
            kind, rule = CHAIN_STEPS[op]
            target = -1 if i == len(self.steps) - 1 else slot(("step", i))
            a, b, c = [slot(a) for a in args] + [0] * (3 - len(args))
            steps.append((kind, rule, target, a, b, c))
        return run_chain(steps, panels, numbers, len(numbers) + len(self.steps))


def _nbytes(panel: np.ndarray) -> int:
    return panel.nbytes


def _listed_cells(data: MarketData, extra: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, N) bool: the cells where any daily field (group codes aside) or extra panel has a value."""
    listed = np.zeros((len(data.dates), len(data.instruments)), dtype=bool)
    panels = [array for name, array in data.fields.items() if not data.is_group(name)]
    for array in [*panels, *(extra[name] for name in extra)]:
        listed |= np.isfinite(array)
    return listed


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _sanitized(out: np.ndarray, inputs: list[object]) -> np.ndarray:
    """The kernel's result as a fresh read-only float64 panel.

    Kernels never emit inf (the operator contract, tested for every family), so the values are
    not scanned again here; only a result that is not a new float64 array of its own is copied.
    """
    shared = any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in inputs)
    if shared or not out.flags.writeable or out.dtype != np.float64:
        out = np.array(out, dtype=np.float64)
    return _readonly(out)


def evaluate(formula: str | Node, data: MarketData, evaluator: Evaluator | None = None) -> np.ndarray:
    """Values of a formula on `data` as a `(T, N)` float64 array (NaN where undefined), the
    caller's own: a copy when the values are also the evaluator's or the data's."""
    if evaluator is not None:
        if evaluator.data is not data:
            raise ValueError("the evaluator was built for another MarketData")
        return np.array(evaluator.evaluate(formula))
    return _released(Evaluator(data).evaluate(formula), data)


def _released(result: np.ndarray, data: MarketData) -> np.ndarray:
    """A throwaway evaluator's result, handed over writable without a copy when nothing else holds
    its memory: it is a kernel's fresh output (the evaluator is gone), not a field of `data`."""
    if any(np.may_share_memory(result, field) for field in data.fields.values()):
        return np.array(result)
    try:
        result.setflags(write=True)  # numpy refuses where the memory is not the array's to write
    except ValueError:
        return np.array(result)
    return result
