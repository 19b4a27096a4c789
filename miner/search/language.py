"""The GP's language: a strongly typed DEAP primitive set derived from the operator registry, tree
generation without type dead ends, crossover, and the map from DEAP trees to formula trees.

DEAP owns the genetic operators; trees are never compiled (`gp.compile`): each individual is turned
into our formula tree and interpreted by `miner.lang`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from deap import base, creator, gp

from miner.config import ExperimentConfig
from miner.errors import ConfigError, FormulaError
from miner.lang import Call, Evaluator, Name, Node, Num, canonicalize, parse, to_string, walk
from miner.lang.parser import MAX_WINDOW
from miner.market import MarketData
from operators import REGISTRY, Arg, Kind, Operator, operators_by_family


class SeriesT:
    """DEAP type of a daily panel."""


class WindowT:
    """DEAP type of a window or lag length."""


class ConstT:
    """DEAP type of a numeric constant."""


class GroupT:
    """DEAP type of a group-label field."""


class IntradayT:
    """DEAP type of an intraday field."""


_GP_TYPES = {
    Kind.SERIES: SeriesT,
    Kind.WINDOW: WindowT,
    Kind.LAG: WindowT,
    Kind.CONST: ConstT,
    Kind.GROUP: GroupT,
    Kind.INTRADAY: IntradayT,
}


def individual_class(pareto: bool) -> type:
    """The DEAP individual class of a scalar (maximised) or Pareto (NSGA-II) fitness.

    Created in DEAP's `creator` on first use rather than at import, so that importing this module
    has no side effects; checkpoints pickle individuals of these classes by name.
    """
    if not hasattr(creator, "ScalarFactor"):
        creator.create("ScalarFitness", base.Fitness, weights=(1.0,))
        creator.create("ParetoFitness", base.Fitness, weights=(1.0, -1.0, -1.0))
        creator.create("ScalarFactor", gp.PrimitiveTree, fitness=creator.ScalarFitness)
        creator.create("ParetoFactor", gp.PrimitiveTree, fitness=creator.ParetoFitness)
    return creator.ParetoFactor if pareto else creator.ScalarFactor


def _never_called(*args: object) -> None:
    raise AssertionError("factor trees are interpreted by miner.lang, never compiled")


def is_gp_argument(arg: Arg) -> bool:
    """Constants that have a default stay at it; everything else is evolved."""
    return not (arg.kind is Kind.CONST and arg.default is not None)


# ---------------------------------------------------------------------------------------------
# the primitive set


@dataclass
class Language:
    """The DEAP primitive set and the map from its terminal names to formula nodes."""

    pset: gp.PrimitiveSetTyped
    terminals: dict[str, Node]


def enabled_operators(config: ExperimentConfig) -> list[Operator]:
    chosen = {
        s.name: s
        for f, specs in operators_by_family().items()
        if f in config.operators.families
        for s in specs
    }
    chosen.update({name: REGISTRY[name] for name in config.operators.include})
    for name in config.operators.exclude:
        chosen.pop(name, None)
    return list(chosen.values())


def build_language(config: ExperimentConfig, data: MarketData) -> Language:
    """A strongly typed primitive set in which every argument type has terminals."""
    gp_cfg = config.gp
    pset = gp.PrimitiveSetTyped("FACTOR", [], SeriesT)
    terminals: dict[str, Node] = {}

    def add(name: str, node: Node, gp_type: type) -> None:
        pset.addTerminal(name, gp_type, name=name)
        terminals[name] = node

    for name in gp_cfg.fields:
        if name not in data.fields or data.is_group(name):
            raise ConfigError(f"gp.fields: {name!r} is not a numeric field of the data")
        add(name, Name(name), SeriesT)
    first_row = data.slice_rows(0, 1)
    for i, text in enumerate(gp_cfg.terminals):
        try:
            terminal = canonicalize(parse(text))
            Evaluator(first_row).evaluate(terminal)  # fields, groups and minute data exist
        except FormulaError as exc:
            raise ConfigError(f"gp.terminals.{i}: {exc}") from None
        add(f"t{i}", terminal, SeriesT)
    for w in gp_cfg.windows:
        if w > MAX_WINDOW:
            raise ConfigError(f"gp.windows: {w} is longer than any formula may use ({MAX_WINDOW} rows)")
        add(f"w{w}", Num(float(w)), WindowT)
    for i, value in enumerate(gp_cfg.constants):
        add(f"c{i}", Num(float(value)), ConstT)
    for name in sorted(data.groups):
        add(f"g_{name}", Name(name), GroupT)
    for name in sorted(data.intraday):
        add(f"i_{name}", Name(name), IntradayT)

    available = {t for t in (SeriesT, WindowT, ConstT, GroupT, IntradayT) if pset.terminals[t]}
    for spec in enabled_operators(config):
        arg_types = [_GP_TYPES[a.kind] for a in spec.args if is_gp_argument(a)]
        if set(arg_types) <= available:
            pset.addPrimitive(_never_called, arg_types, SeriesT, name=spec.name)
    if not pset.primitives[SeriesT]:
        raise ConfigError("operators: no enabled operator can be built from the data's fields")
    return Language(pset, terminals)


def generate(
    pset: gp.PrimitiveSetTyped,
    min_: int,
    max_: int,
    condition: Callable[[int, int], bool],
    type_: type | None = None,
) -> list:
    """Like `gp.generate`, but a type without primitives takes a terminal (no STGP dead ends)."""
    type_ = pset.ret if type_ is None else type_
    expr: list = []
    height = random.randint(min_, max_)
    stack = [(0, type_)]
    while stack:
        depth, wanted = stack.pop()
        primitives, terminals = pset.primitives[wanted], pset.terminals[wanted]
        if not primitives or (terminals and condition(height, depth)):
            expr.append(random.choice(terminals))
        else:
            primitive = random.choice(primitives)
            expr.append(primitive)
            stack.extend((depth + 1, a) for a in reversed(primitive.args))
    return expr


def gen_full(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    return generate(pset, min_, max_, lambda height, depth: depth == height, type_)


def gen_grow(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    def condition(height: int, depth: int) -> bool:
        return depth == height or (depth >= min_ and random.random() < pset.terminalRatio)

    return generate(pset, min_, max_, condition, type_)


def gen_half_and_half(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    method = random.choice((gen_grow, gen_full))
    return method(pset, min_, max_, type_)


def cx_one_point(ind1: gp.PrimitiveTree, ind2: gp.PrimitiveTree) -> tuple[gp.PrimitiveTree, gp.PrimitiveTree]:
    """`gp.cxOnePoint` with the crossover type drawn from a *sorted* list of the common types.

    DEAP draws it from a set of classes, whose order follows their memory addresses and so
    changes between processes: the same seed would breed different children after a restart.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    positions1: dict[type, list[int]] = {}
    positions2: dict[type, list[int]] = {}
    for index, node in enumerate(ind1[1:], 1):
        positions1.setdefault(node.ret, []).append(index)
    for index, node in enumerate(ind2[1:], 1):
        positions2.setdefault(node.ret, []).append(index)
    common = sorted(set(positions1) & set(positions2), key=lambda t: t.__name__)
    if common:
        chosen = random.choice(common)
        slice1 = ind1.searchSubtree(random.choice(positions1[chosen]))
        slice2 = ind2.searchSubtree(random.choice(positions2[chosen]))
        ind1[slice1], ind2[slice2] = ind2[slice2], ind1[slice1]
    return ind1, ind2


# ---------------------------------------------------------------------------------------------
# trees <-> formulas


def to_formula(individual: gp.PrimitiveTree, language: Language) -> Node:
    """The formula tree of a DEAP individual (constants with defaults filled in)."""

    def build(i: int) -> tuple[Node, int]:
        item = individual[i]
        if isinstance(item, gp.Terminal):
            return language.terminals[item.name], i + 1
        spec = REGISTRY[item.name]
        args: list[Node] = []
        j = i + 1
        for arg in spec.args:
            if is_gp_argument(arg):
                node, j = build(j)
            else:
                node = Num(float(arg.default))  # type: ignore[arg-type]
            args.append(node)
        return Call(spec.name, tuple(args)), j

    return build(0)[0]


def to_tree(node: Node, language: Language) -> list | None:
    """The DEAP expression (prefix list of primitives and terminals) of a formula tree, or None when
    the language cannot write it (an operator, field, window or constant it does not have)."""
    pset = language.pset
    by_node = {
        (gp_type, term_node): term
        for gp_type, terms in pset.terminals.items()
        for term in terms
        if (term_node := language.terminals.get(term.name)) is not None
    }
    primitives = {p.name: p for p in pset.primitives[SeriesT]}

    def build(item: Node, gp_type: type) -> list | None:
        terminal = by_node.get((gp_type, item))
        if terminal is not None:
            return [terminal]
        if not isinstance(item, Call) or gp_type is not SeriesT or item.op not in primitives:
            return None
        spec = REGISTRY[item.op]
        out: list = [primitives[item.op]]
        for arg, value in zip(spec.args, item.args):
            if not is_gp_argument(arg):
                if value != Num(float(arg.default)):  # type: ignore[arg-type]
                    return None
                continue
            part = build(value, _GP_TYPES[arg.kind])
            if part is None:
                return None
            out += part
        return out

    return build(node, SeriesT)


def expressible_subtrees(formulas: list[str], language: Language, max_size: int) -> list[list]:
    """DEAP expressions of the formulas and of their operator subtrees that the language can write,
    no larger than `max_size` nodes, each canonical formula once, in a stable order."""
    seen: set[str] = set()
    out: list[list] = []
    for text in formulas:
        for node in walk(canonicalize(parse(text))):
            if not isinstance(node, Call) or (key := to_string(node)) in seen:
                continue
            seen.add(key)
            expression = to_tree(node, language)
            if expression is not None and 1 < len(expression) <= max_size:
                out.append(expression)
    return out


def same_formula(a: gp.PrimitiveTree, b: gp.PrimitiveTree) -> bool:
    """Hall-of-fame identity: two trees with one canonical formula are one candidate."""
    return a.formula == b.formula


def triviality(node: Node) -> str | None:
    """Why a formula is not worth scoring: no data in it, a 1-row window, or `op(a, a)`."""
    if not any(isinstance(n, Name) for n in walk(node)):
        return "constant formula"
    for n in walk(node):
        if not isinstance(n, Call):
            continue
        spec = REGISTRY[n.op]
        kinds = [a.kind for a in spec.args]
        if any(k is Kind.WINDOW and v == Num(1.0) for k, v in zip(kinds, n.args)):
            return f"{n.op} over a 1-row window"
        series = [v for k, v in zip(kinds, n.args) if k is Kind.SERIES]
        if len(series) >= 2 and all(s == series[0] for s in series):
            return f"{n.op} of an argument with itself"
    return None
