"""The mining loop: strongly typed DEAP GP over the operator registry, honest selection.

DEAP owns the genetic operators (selection, crossover, mutation, NSGA-II, migration); trees
are never compiled: each individual is turned into our formula tree, canonicalized, and
scored once (a memo keyed by canonical formula) on the train segment only. Survivors are
admitted on the valid segment; test metrics are computed for them and only reported.
"""

from __future__ import annotations

import logging
import math
import operator as op
import pickle
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from deap import base, creator, gp, tools
from joblib import Parallel, delayed

from evaluation import forward_returns, metrics
from evaluation.fitness import SurvivorThresholds, admit
from miner.config import ExperimentConfig
from miner.data import MarketData
from miner.errors import ConfigError, FormulaError
from miner.expression import (
    Call,
    Evaluator,
    Name,
    Node,
    Num,
    canonicalize,
    lookback,
    parse,
    size,
    to_string,
)
from miner.scoring import Panel, Score, ScoringSpec, failed, score_batch, scoring_workers
from miner.splits import Segments, make_segments
from operators import REGISTRY, Arg, Kind, Operator, operators_by_family

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pkl"


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

creator.create("ScalarFitness", base.Fitness, weights=(1.0,))
creator.create("ParetoFitness", base.Fitness, weights=(1.0, -1.0, -1.0))
creator.create("ScalarFactor", gp.PrimitiveTree, fitness=creator.ScalarFitness)
creator.create("ParetoFactor", gp.PrimitiveTree, fitness=creator.ParetoFitness)


def _never_called(*args: object) -> None:
    raise AssertionError("factor trees are interpreted by miner.expression, never compiled")


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
    chosen.update({REGISTRY[n].name: REGISTRY[n] for n in config.operators.include})
    for name in config.operators.exclude:
        chosen.pop(REGISTRY[name].name, None)
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
    for i, text in enumerate(gp_cfg.terminals):
        try:
            add(f"t{i}", canonicalize(parse(text)), SeriesT)
        except FormulaError as exc:
            raise ConfigError(f"gp.terminals.{i}: {exc}") from None
    for w in gp_cfg.windows:
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


def same_formula(a: gp.PrimitiveTree, b: gp.PrimitiveTree) -> bool:
    """Hall-of-fame identity: two trees with one canonical formula are one candidate."""
    return a.formula == b.formula


def triviality(node: Node) -> str | None:
    """Why a formula is not worth scoring: no data in it, a 1-row window, or `op(a, a)`."""
    if not any(isinstance(n, Name) for n in _walk(node)):
        return "constant formula"
    for n in _walk(node):
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


def _walk(node: Node) -> Iterable[Node]:
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from _walk(arg)


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class GenerationStats:
    generation: int
    best: float
    median: float
    unique_share: float
    scored: int
    memo_skipped: int
    cache_hit_rate: float
    candidates_per_s: float
    failed: int
    seconds: float


@dataclass
class SegmentMetrics:
    rank_ic: float
    icir: float
    turnover: float
    coverage: float
    ic: float = math.nan


@dataclass
class Survivor:
    name: str
    formula: str
    size: int
    lookback: int
    train_fitness: float
    segments: dict[str, SegmentMetrics]
    decay: dict[int, float] = field(default_factory=dict)
    half_life: float = math.nan


@dataclass
class MiningResult:
    survivors: list[Survivor]
    hall_of_fame: list[Score]
    logbook: list[GenerationStats]
    rejected: dict[str, str]
    data_fingerprint: str
    segments: Segments


# ---------------------------------------------------------------------------------------------
# the loop


class Miner:
    """One mining run: `run()` evolves, then selects survivors on the valid segment."""

    def __init__(
        self,
        config: ExperimentConfig,
        data: MarketData,
        *,
        library_factors: dict[str, np.ndarray] | None = None,
        on_generation: Callable[[GenerationStats], None] | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.library_factors = library_factors or {}
        self.on_generation = on_generation
        self.checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else config.checkpoint_dir
        self.segments = make_segments(data.dates, config.splits, config.embargo, config.source)
        self.label = forward_returns(data.field(config.label.price), config.label.horizon, config.label.delay)
        self.language = build_language(config, data)
        self.pareto = config.fitness.objective == "nsga2"
        self.memo: dict[str, Score] = {}
        self.spec = ScoringSpec(
            config.fitness.objective,
            config.fitness.parsimony,
            config.fitness.min_names,
            config.parallel.worker_cache_mb << 20,
        )
        self.toolbox = self._toolbox()
        self._cache_hits = self._cache_misses = 0

    # -- setup ------------------------------------------------------------------------------

    def _toolbox(self) -> base.Toolbox:
        gp_cfg, pset = self.config.gp, self.language.pset
        toolbox = base.Toolbox()
        individual_class = creator.ParetoFactor if self.pareto else creator.ScalarFactor
        low, high = gp_cfg.init_depth
        toolbox.register("expr", gen_half_and_half, pset=pset, min_=low - 1, max_=high - 1)
        toolbox.register("individual", tools.initIterate, individual_class, toolbox.expr)
        toolbox.register("population", tools.initRepeat, list, toolbox.individual)
        toolbox.register("select", tools.selTournament, tournsize=gp_cfg.tournament_size)
        toolbox.register("mate", cx_one_point)
        toolbox.register("expr_mut", gen_grow, min_=0, max_=2)
        toolbox.register("mut_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
        toolbox.register("mut_point", gp.mutNodeReplacement, pset=pset)
        toolbox.register("mut_shrink", gp.mutShrink)
        limits = [
            gp.staticLimit(key=op.attrgetter("height"), max_value=gp_cfg.max_depth - 1),
            gp.staticLimit(key=len, max_value=gp_cfg.max_size),
        ]
        for name in ("mate", "mut_subtree", "mut_point", "mut_shrink"):
            for limit in limits:
                toolbox.decorate(name, limit)
        return toolbox

    def _train_panel(self) -> Panel:
        stop = self.segments.train.stop
        train = self.data.slice_rows(0, stop)
        label = np.ascontiguousarray(self.label[:stop])
        label.setflags(write=False)
        return Panel(train, label, self.segments.train)

    # -- scoring ----------------------------------------------------------------------------

    def _score_population(self, population: list, parallel: Parallel | None, handle) -> tuple[int, int, int]:
        """Give every individual its fitness; returns (newly scored, memo skips, failures)."""
        formulas = []
        for individual in population:
            node = canonicalize(to_formula(individual, self.language))
            individual.formula = to_string(node)
            individual.node_count = size(node)
            formulas.append((individual.formula, individual.node_count, node))
        pending: dict[str, int] = {}
        skipped = 0
        for text, count, node in formulas:
            if text in self.memo or text in pending:
                skipped += 1
                continue
            reason = triviality(node)
            if reason is not None:
                self.memo[text] = failed(text, count, self.spec.objective, reason)
                continue
            pending[text] = count
        batches = self._batches(sorted(pending.items()))
        if batches:
            if parallel is None:
                outputs = [score_batch(handle, batch, self.spec) for batch in batches]
            else:
                outputs = parallel(delayed(score_batch)(handle, batch, self.spec) for batch in batches)
            for scores, hits, misses in outputs:
                self._cache_hits += hits
                self._cache_misses += misses
                for score in scores:
                    self.memo[score.formula] = score
        failures = 0
        for individual in population:
            score = self.memo[individual.formula]
            individual.fitness.values = score.fitness
            failures += not score.valid
        return len(pending), skipped, failures

    def _batches(self, items: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
        if not items:
            return []
        n_jobs = self.config.parallel.n_jobs
        per_batch = self.config.parallel.batch_size or max(1, math.ceil(len(items) / (8 * n_jobs)))
        return [items[i : i + per_batch] for i in range(0, len(items), per_batch)]

    # -- variation --------------------------------------------------------------------------

    def _vary(self, offspring: list) -> list:
        gp_cfg, toolbox = self.config.gp, self.toolbox
        offspring = [toolbox.clone(ind) for ind in offspring]
        for i in range(1, len(offspring), 2):
            if random.random() < gp_cfg.crossover:
                offspring[i - 1], offspring[i] = toolbox.mate(offspring[i - 1], offspring[i])
                del offspring[i - 1].fitness.values, offspring[i].fitness.values
        mutation = gp_cfg.mutation
        for i, individual in enumerate(offspring):
            draw = random.random()
            for probability, name in (
                (mutation.subtree, "mut_subtree"),
                (mutation.point, "mut_point"),
                (mutation.shrink, "mut_shrink"),
            ):
                if draw < probability:
                    (offspring[i],) = getattr(toolbox, name)(individual)
                    del offspring[i].fitness.values
                    break
                draw -= probability
        return offspring

    def _next_generation(self, population: list) -> list:
        """Scalar: elites + varied tournament winners. NSGA-II: parents + offspring, halved after scoring."""
        if self.pareto:
            return population + self._vary(tools.selTournamentDCD(population, len(population)))
        elite = tools.selBest(population, self.config.gp.elitism)
        offspring = self._vary(self.toolbox.select(population, len(population) - len(elite)))
        return self._immigrants_for_duplicates([self.toolbox.clone(e) for e in elite] + offspring)

    def _immigrants_for_duplicates(self, population: list) -> list:
        """Replace every repeat of a formula already in the population by a fresh random tree."""
        seen: set[str] = set()
        out = []
        for individual in population:
            text = to_string(canonicalize(to_formula(individual, self.language)))
            if text in seen:
                individual = self.toolbox.individual()
            seen.add(text)
            out.append(individual)
        return out

    # -- run --------------------------------------------------------------------------------

    def run(self, resume: bool = False) -> MiningResult:
        gp_cfg = self.config.gp
        state = self._load_checkpoint() if resume else None
        if state is None:
            random.seed(self.config.seed)
            islands = [self.toolbox.population(n=gp_cfg.population) for _ in range(gp_cfg.islands)]
            hall = self._hall_of_fame()
            logbook: list[GenerationStats] = []
            start = 0
        else:
            islands, hall, logbook, self.memo, start = state
        with scoring_workers(self._train_panel(), self.config.parallel) as (parallel, handle):
            for generation in range(start, gp_cfg.generations):
                stats = self._generation(generation, islands, hall, parallel, handle)
                logbook.append(stats)
                if self.on_generation is not None:
                    self.on_generation(stats)
                self._save_checkpoint(islands, hall, logbook, generation + 1)
        survivors, rejected = self.select_survivors([self.memo[ind.formula] for ind in hall])
        return MiningResult(
            survivors,
            [self.memo[ind.formula] for ind in hall],
            logbook,
            rejected,
            self.data.fingerprint,
            self.segments,
        )

    def _hall_of_fame(self) -> tools.HallOfFame:
        return tools.HallOfFame(self.config.gp.hall_of_fame, similar=same_formula)

    def _generation(
        self, generation: int, islands: list[list], hall: tools.HallOfFame, parallel: Parallel | None, handle
    ) -> GenerationStats:
        started = time.perf_counter()
        hits0, misses0 = self._cache_hits, self._cache_misses
        if generation > 0:
            islands[:] = [self._next_generation(island) for island in islands]
        scored = skipped = failures = 0
        score_started = time.perf_counter()
        for island in islands:
            s, k, f = self._score_population(island, parallel, handle)
            scored, skipped, failures = scored + s, skipped + k, failures + f
        score_seconds = time.perf_counter() - score_started
        if self.pareto:
            islands[:] = [tools.selNSGA2(island, self.config.gp.population) for island in islands]
        if len(islands) > 1 and generation > 0 and generation % self.config.gp.migration_interval == 0:
            tools.migRing(islands, self.config.gp.migration_size, tools.selBest)
        everyone = [ind for island in islands for ind in island]
        hall.update([ind for ind in everyone if self.memo[ind.formula].valid])
        primary = np.array([ind.fitness.values[0] for ind in everyone if self.memo[ind.formula].valid])
        hits, misses = self._cache_hits - hits0, self._cache_misses - misses0
        return GenerationStats(
            generation=generation,
            best=float(primary.max()) if primary.size else math.nan,
            median=float(np.median(primary)) if primary.size else math.nan,
            unique_share=len({ind.formula for ind in everyone}) / len(everyone),
            scored=scored,
            memo_skipped=skipped,
            cache_hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            candidates_per_s=scored / score_seconds if score_seconds > 0 else 0.0,
            failed=failures,
            seconds=time.perf_counter() - started,
        )

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(
        self, islands: list, hall: tools.HallOfFame, logbook: list, next_generation: int
    ) -> None:
        if self.checkpoint_dir is None:
            return
        directory = Path(self.checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "islands": islands,
            "hall": hall,
            "logbook": logbook,
            "memo": self.memo,
            "generation": next_generation,
            "random": random.getstate(),
            "fingerprint": self.data.fingerprint,
            "config": self._resumable_config(),
        }
        partial_path = directory / (CHECKPOINT_FILE + ".tmp")
        with partial_path.open("wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        partial_path.replace(directory / CHECKPOINT_FILE)

    def _resumable_config(self) -> dict:
        """The settings a checkpoint must match: everything but where and how fast it runs."""
        settings = self.config.model_dump(mode="json", exclude={"parallel", "tracking", "checkpoint_dir"})
        settings["float32"] = self.config.parallel.float32  # changes scores, unlike the backend
        return settings

    def _load_checkpoint(self):
        if self.checkpoint_dir is None:
            raise ConfigError("--resume needs a checkpoint directory (checkpoint_dir in the config)")
        path = Path(self.checkpoint_dir) / CHECKPOINT_FILE
        if not path.exists():
            raise ConfigError(f"{path}: no checkpoint to resume from")
        with path.open("rb") as handle:
            state = pickle.load(handle)
        if state["fingerprint"] != self.data.fingerprint:
            raise ConfigError(f"{path}: the checkpoint was made on other data (fingerprint differs)")
        if state["config"] != self._resumable_config():
            raise ConfigError(f"{path}: the checkpoint was made with another config")
        random.setstate(state["random"])
        return state["islands"], state["hall"], state["logbook"], state["memo"], state["generation"]

    # -- survivors --------------------------------------------------------------------------

    def select_survivors(self, candidates: list[Score]) -> tuple[list[Survivor], dict[str, str]]:
        """Admit hall-of-fame members on the valid segment; test metrics are only reported."""
        rules = self.config.survivors
        evaluator = Evaluator(self.data)
        admitted: list[tuple[Survivor, np.ndarray]] = []
        rejected: dict[str, str] = {}
        valid_rows = self.segments.valid
        ranked_labels = {
            name: metrics.prepare_label(self.label, rows=rows)
            for name, rows in self.segments.as_dict().items()
        }
        decay_labels = self._decay_labels()
        for score in sorted(candidates, key=lambda s: -s.fitness[0]):
            if len(admitted) >= rules.max_survivors:
                break
            values = evaluator.evaluate(score.formula)
            seg = {
                name: self._segment_metrics(values, rows, ranked_labels[name])
                for name, rows in self.segments.as_dict().items()
            }
            train, valid = seg["train"], seg["valid"]
            reason = _admission_failure(train, valid, rules)
            if reason is None:
                reason = self._too_correlated(values, admitted, valid_rows, rules.max_correlation)
            if reason is not None:
                rejected[score.formula] = reason
                continue
            name = f"{self.config.name}_{len(admitted) + 1:03d}"
            survivor = Survivor(
                name, score.formula, score.size, lookback(score.formula), score.fitness[0], seg
            )
            self._add_decay(survivor, values, decay_labels)
            admitted.append((survivor, values))
        return [s for s, _ in admitted], rejected

    def _segment_metrics(
        self, values: np.ndarray, rows: slice, ranked_label: metrics.LabelRanks
    ) -> SegmentMetrics:
        min_names = self.config.fitness.min_names
        stats = metrics.ic_stats(metrics.rank_ic_fast(values, ranked_label, min_names=min_names)[rows])
        pearson = metrics.ic_stats(metrics.ic(values, self.label, min_names=min_names, rows=rows)[rows])
        return SegmentMetrics(
            rank_ic=stats["mean"],
            icir=stats["icir"],
            turnover=metrics.factor_turnover(values, rows=rows),
            coverage=metrics.coverage(values, universe=np.isfinite(self.label), rows=rows),
            ic=pearson["mean"],
        )

    def _too_correlated(
        self, values: np.ndarray, admitted: list[tuple[Survivor, np.ndarray]], rows: slice, limit: float
    ) -> str | None:
        others = [(s.name, v) for s, v in admitted] + list(self.library_factors.items())
        for name, other in others:
            rho = metrics.factor_correlation(values, other, rows=rows)
            if math.isfinite(rho) and abs(rho) >= limit:
                return f"|correlation| {abs(rho):.2f} with {name} on valid >= {limit}"
        return None

    def _decay_labels(self) -> dict[int, np.ndarray]:
        """Forward returns at the horizons survivors' IC decay is measured on."""
        price = self.data.field(self.config.label.price)
        return {h: forward_returns(price, h, self.config.label.delay) for h in (1, 5, 10, 20)}

    def _add_decay(self, survivor: Survivor, values: np.ndarray, labels: dict[int, np.ndarray]) -> None:
        rows = self.segments.valid
        decay = metrics.ic_decay(values, labels, rows=rows, min_names=self.config.fitness.min_names)
        survivor.decay = {int(h): float(v) for h, v in decay.items()}
        survivor.half_life = float(metrics.half_life(decay))


def _admission_failure(train: SegmentMetrics, valid: SegmentMetrics, rules) -> str | None:
    """Why a candidate is not admitted on valid (`evaluation.fitness.admit`), or None."""
    thresholds = SurvivorThresholds(rules.min_abs_rank_ic, rules.max_turnover, rules.min_coverage)
    stats = {"rank_ic_mean": valid.rank_ic, "turnover": valid.turnover, "coverage": valid.coverage}
    admitted, reason = admit(stats, train.rank_ic, thresholds)
    return None if admitted else f"valid segment: {reason}"
