"""The operator spec and the single registry every other part derives from.

An operator is declared once, next to its kernel, with the `operator` decorator:

    @operator("ts_mean", Arg.series("x"), Arg.window("d"), family="timeseries",
              lookback=window_lookback("d"), doc="mean of the valid values of the trailing d rows")
    def ts_mean(x, d): ...

The parser, the printer, the evaluator, the lookback analysis, the DEAP primitive set and
`miner operators` all read `REGISTRY`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar


class Kind(enum.Enum):
    """What an argument (or a result) is."""

    SERIES = "series"  # a (T, N) daily panel; a number is broadcast where `scalar_ok`
    WINDOW = "window"  # a positive integer literal: a number of trailing rows
    LAG = "lag"  # a non-negative integer literal: how many rows back
    CONST = "const"  # a numeric literal
    GROUP = "group"  # a group-label field (integer codes), e.g. sector
    INTRADAY = "intraday"  # a (T, N, M) intraday field, e.g. minute volume


@dataclass(frozen=True)
class Arg:
    """One formal argument of an operator."""

    name: str
    kind: Kind
    default: float | None = None
    scalar_ok: bool = False  # a SERIES argument that also accepts a plain number
    lower: float | None = None  # inclusive lower bound of a CONST
    upper: float | None = None  # inclusive upper bound of a CONST

    @staticmethod
    def series(name: str = "x", scalar_ok: bool = False) -> Arg:
        return Arg(name, Kind.SERIES, scalar_ok=scalar_ok)

    @staticmethod
    def window(name: str = "d") -> Arg:
        return Arg(name, Kind.WINDOW)

    @staticmethod
    def lag(name: str = "d") -> Arg:
        return Arg(name, Kind.LAG)

    @staticmethod
    def const(
        name: str,
        default: float | None = None,
        lower: float | None = None,
        upper: float | None = None,
    ) -> Arg:
        return Arg(name, Kind.CONST, default=default, lower=lower, upper=upper)

    @staticmethod
    def group(name: str = "g") -> Arg:
        return Arg(name, Kind.GROUP)

    @staticmethod
    def intraday(name: str = "x") -> Arg:
        return Arg(name, Kind.INTRADAY)

    @property
    def is_literal(self) -> bool:
        """True for arguments written as numbers (windows, lags, constants)."""
        return self.kind in (Kind.WINDOW, Kind.LAG, Kind.CONST)


LookbackRule = Callable[[Mapping[str, float]], int]

KernelT = TypeVar("KernelT", bound=Callable[..., Any])
"""A kernel's own type: declaring it leaves its signature as it is."""


def no_lookback(literals: Mapping[str, float]) -> int:
    """Elementwise and cross-sectional operators need no past rows of their own."""
    return 0


def window_lookback(name: str = "d") -> LookbackRule:
    """A trailing window of w rows needs w - 1 past rows."""

    def rule(literals: Mapping[str, float]) -> int:
        return int(literals[name]) - 1

    return rule


def lag_lookback(name: str = "d") -> LookbackRule:
    """A shift by d rows needs d past rows."""

    def rule(literals: Mapping[str, float]) -> int:
        return int(literals[name])

    return rule


@dataclass(frozen=True)
class Operator:
    """The one declaration of an operator."""

    name: str
    kernel: Callable[..., Any]
    args: tuple[Arg, ...]
    family: str
    doc: str
    lookback: LookbackRule = no_lookback
    commutative: bool = False
    infix: str | None = None  # printed as `a <infix> b` (or `<infix>a` when unary)

    @property
    def arity(self) -> int:
        return len(self.args)

    @property
    def min_arity(self) -> int:
        return sum(1 for a in self.args if a.default is None)

    @property
    def signature(self) -> str:
        parts = []
        for a in self.args:
            text = f"{a.name}: {a.kind.value}"
            if a.default is not None:
                text += f" = {a.default:g}"
            parts.append(text)
        return f"{self.name}({', '.join(parts)})"


_REGISTRY: dict[str, Operator] = {}
REGISTRY: Mapping[str, Operator] = MappingProxyType(_REGISTRY)


def operator(
    name: str,
    *args: Arg,
    family: str,
    doc: str,
    lookback: LookbackRule = no_lookback,
    commutative: bool = False,
    infix: str | None = None,
) -> Callable[[KernelT], KernelT]:
    """Declare `name` with the decorated kernel; a second declaration is an error."""

    def decorate(kernel: KernelT) -> KernelT:
        spec = Operator(
            name=name,
            kernel=kernel,
            args=tuple(args),
            family=family,
            doc=doc,
            lookback=lookback,
            commutative=commutative,
            infix=infix,
        )
        if name in _REGISTRY:
            raise ValueError(f"operator {name!r} is declared twice")
        _REGISTRY[name] = spec
        return kernel

    return decorate


def operators_by_family() -> dict[str, list[Operator]]:
    """Operators grouped by family, in declaration order."""
    out: dict[str, list[Operator]] = {}
    for spec in _REGISTRY.values():
        out.setdefault(spec.family, []).append(spec)
    return out
