"""The mining loop: strongly typed DEAP GP over the operator registry, honest selection.

Each individual is turned into our formula tree, canonicalized, and scored once (a memo keyed by
canonical formula) on the train segment only. Survivors are admitted on the valid segment
(`miner.search.survivors`); test metrics are computed for them and only reported.

`gp.search: random` is the baseline: rounds of fresh trees from the same generator, memo and
pruning (each round `population` formulas new to the run, `gp.candidates` in all), the same hall
of fame and admission.
"""

from __future__ import annotations

import logging
import math
import operator as op
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from deap import base, gp, tools
from joblib import Parallel, delayed

from evaluation.fitness import WORST_FITNESS
from evaluation.gates import Gates
from miner.config import ExperimentConfig
from miner.errors import ConfigError
from miner.lang import Evaluator, Node, canonicalize, size, to_string
from miner.market import MarketData
from miner.market.labels import experiment_label
from miner.search.checkpoint import PoolState, RunState, load_checkpoint, save_checkpoint
from miner.search.language import (
    build_language,
    cx_one_point,
    expressible_subtrees,
    gen_grow,
    gen_half_and_half,
    individual_class,
    same_formula,
    to_formula,
    triviality,
)
from miner.search.members import Context, ZooPick, pick_zoo
from miner.search.niches import distinct_ideas
from miner.search.pool import FactorPool
from miner.search.results import Admission, GenerationStats, MiningResult, Survivor
from miner.search.scoring import Panel, ResidualLabel, Score, ScoringSpec, failed, score_batch
from miner.search.splits import make_segments
from miner.search.survivors import SurvivorSelection, hac_lag
from miner.search.workers import scoring_workers

log = logging.getLogger(__name__)

RANDOM_DRAWS_PER_CANDIDATE = 100
"""A random round gives up after this many draws per wanted candidate (a language with few formulas)."""


class IdeaHallOfFame(tools.HallOfFame):
    """A hall of fame with one place per idea: the best `maxsize` individuals seen whose behaviours
    (their `behaviour` attribute, set when they are scored) pairwise correlate below `max_correlation`."""

    def __init__(self, maxsize: int, max_correlation: float) -> None:
        super().__init__(maxsize)
        self.max_correlation = max_correlation

    def update(self, population: list) -> None:
        candidates = {ind.formula: ind for ind in [*self, *population]}
        ranked = sorted(candidates.values(), key=lambda ind: ind.fitness, reverse=True)
        keep = distinct_ideas([ind.behaviour for ind in ranked], self.max_correlation)
        chosen = [ind for ind, new in zip(ranked, keep) if new][: self.maxsize]
        self.clear()
        for individual in chosen:
            self.insert(individual)


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
        zoo_pick: ZooPick | None = None,
    ) -> None:
        self.config = config
        self.zoo_pick = zoo_pick  # a pick of `pool.zoo` made on this market and config, to reuse
        self.data = data
        self.library_factors = library_factors or {}
        self.on_generation = on_generation
        self.checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else config.checkpoint_dir
        self.segments = make_segments(data.dates, config.splits, config.embargo, config.source)
        self.label = experiment_label(data, config.label)
        self.context = Context(data, self.label, self.segments, config.fitness.min_names)
        self.language = build_language(config, data)
        self.pareto = config.fitness.objective == "nsga2"
        self.random_search = config.gp.search == "random"
        self.memo: dict[str, Score] = {}
        self.spec = scoring_spec(config, self.segments.train.stop - self.segments.train.start)
        self.pool = FactorPool(config.pool, self.context) if config.pool.enabled else None
        self.residual: ResidualLabel | None = None
        self._driver_evaluator: Evaluator | None = None
        self.toolbox = self._toolbox()
        self._cache_hits = self._cache_misses = 0

    # -- setup ------------------------------------------------------------------------------

    def _toolbox(self) -> base.Toolbox:
        gp_cfg, pset = self.config.gp, self.language.pset
        toolbox = base.Toolbox()
        low, high = gp_cfg.init_depth
        toolbox.register("expr", gen_half_and_half, pset=pset, min_=low - 1, max_=high - 1)
        toolbox.register("individual", tools.initIterate, individual_class(self.pareto), toolbox.expr)
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

    def _score_population(
        self, population: list, parallel: Parallel | None, handle
    ) -> tuple[list[str], int, int]:
        """Give every individual its fitness; returns (the newly scored formulas, memo skips, failures)."""
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
            elif not self._pruned(text, node, count):
                pending[text] = count
        batches = self._batches(sorted(pending.items()))
        if batches:
            if parallel is None:
                outputs = [score_batch(handle, batch, self.spec, self.residual) for batch in batches]
            else:
                outputs = parallel(
                    delayed(score_batch)(handle, batch, self.spec, self.residual) for batch in batches
                )
            for scores, hits, misses in outputs:
                self._cache_hits += hits
                self._cache_misses += misses
                for score in scores:
                    self.memo[score.formula] = score
        failures = 0
        for individual in population:
            score = self.memo[individual.formula]
            individual.fitness.values = score.fitness
            individual.behaviour = score.behaviour
            failures += not score.valid
        return list(pending), skipped, failures

    def _pruned(self, text: str, node: Node, count: int) -> bool:
        """True for a trivial formula, which goes to the memo as failed without being scored."""
        reason = triviality(node)
        if reason is not None:
            self.memo[text] = failed(text, count, self.spec.objective, reason)
        return reason is not None

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

    def _random_candidates(self, wanted: int) -> list:
        """Up to `wanted` random trees of the GP's generator whose formulas are new to the run and
        worth scoring: a random-search round."""
        chosen: list = []
        drawn: set[str] = set()
        for _ in range(RANDOM_DRAWS_PER_CANDIDATE * wanted):
            if len(chosen) == wanted:
                break
            individual = self.toolbox.individual()
            node = canonicalize(to_formula(individual, self.language))
            text = to_string(node)
            if text in self.memo or text in drawn or self._pruned(text, node, size(node)):
                continue
            drawn.add(text)
            chosen.append(individual)
        return chosen

    # -- run --------------------------------------------------------------------------------

    @property
    def rounds(self) -> int:
        """The GP's generations, or the rounds of `population` candidates of a random search."""
        gp_cfg = self.config.gp
        return math.ceil(gp_cfg.candidates / gp_cfg.population) if self.random_search else gp_cfg.generations

    def _round_size(self, generation: int) -> int:
        gp_cfg = self.config.gp
        return min(gp_cfg.population, gp_cfg.candidates - generation * gp_cfg.population)

    def run(self, resume: bool = False) -> MiningResult:
        if resume:
            state = load_checkpoint(self.checkpoint_dir, self.data.fingerprint, self._resumable_config())
            self.memo = state.memo
        else:
            random.seed(self.config.seed)
            islands = [
                self._initial_population() for _ in range(0 if self.random_search else self.config.gp.islands)
            ]
            state = RunState(islands, self._hall_of_fame(), [], self.memo, 0)
        self._start_pool(state.pool, resume)
        with scoring_workers(self._train_panel(), self.config.parallel) as (parallel, handle):
            for generation in range(state.generation, self.rounds):
                if self.random_search:
                    state.islands = [self._random_candidates(self._round_size(generation))]
                    if not state.islands[0]:
                        log.warning("random search: no new formula left to draw after %d rounds", generation)
                        break
                stats = self._generation(generation, state.islands, state.hall, parallel, handle)
                state.logbook.append(stats)
                if self.on_generation is not None:
                    self.on_generation(stats)
                state.generation = generation + 1
                stop = self._pool_stalled(state.pool)
                self._save_checkpoint(state)
                if stop:
                    log.info("stopping: the pool's valid rank IC has not improved for %d generations", stop)
                    break
        candidates = [self.memo[ind.formula] for ind in state.hall]
        in_hall = {score.formula for score in candidates}
        pooled = [self.memo[e.formula] for e in self.pool.mined] if self.pool else []
        candidates += [score for score in pooled if score.formula not in in_hall]
        tested = sum(g.scored for g in state.logbook)
        survivors, rejected, admission = self.select_survivors(candidates, tested)
        return MiningResult(
            survivors,
            [self.memo[ind.formula] for ind in state.hall],
            state.logbook,
            rejected,
            self.data.fingerprint,
            self.segments,
            admission,
        )

    # -- the factor pool --------------------------------------------------------------------

    @property
    def driver_evaluator(self) -> Evaluator:
        """An evaluator on the whole market in this process (pool offers, survivors)."""
        if self._driver_evaluator is None:
            self._driver_evaluator = Evaluator(self.data)
        return self._driver_evaluator

    def _start_pool(self, saved: PoolState, resume: bool) -> None:
        """Fill the pool: from the checkpoint when resuming, else with the zoo pick (`pool.zoo`)."""
        if self.pool is None:
            return
        if resume:
            evaluate = self.driver_evaluator.evaluate
            self.pool.restore([(*member, evaluate(member[1])) for member in saved.members])
        elif self.config.pool.zoo is not None:
            self.pool.lock(self._zoo_pick().members)
        self._refresh_residual()

    def _zoo_pick(self) -> ZooPick:
        spec = self.config.pool
        given = self.zoo_pick
        if given is not None and given.set_name == spec.zoo and len(given.members) == spec.zoo_top_k:
            return given
        assert spec.zoo is not None
        self.zoo_pick = pick_zoo(spec.zoo, spec.zoo_top_k, self.context, f"{self.config.source}: pool.zoo")
        return self.zoo_pick

    def _refresh_residual(self) -> None:
        assert self.pool is not None
        values = self.pool.residual_label(self.segments.train.stop)
        if values is None:
            self.residual = None
            return
        values = np.ascontiguousarray(values)
        values.setflags(write=False)
        self.residual = ResidualLabel(f"pool-{self.pool.version}", values)

    def _grow_pool(self, formulas: list[str]) -> None:
        """Offer the best new candidates of the generation to the pool; refit and renew the residual label."""
        assert self.pool is not None
        scored = sorted((self.memo[f] for f in formulas if self.memo[f].valid), key=lambda s: -s.fitness[0])
        for score in scored[: self.config.pool.offers]:
            values = self.driver_evaluator.evaluate(score.formula)
            outcome = self.pool.offer(score.formula, score.formula, values, score.fitness[0])
            log.debug("pool: %s -> %s", score.formula, outcome)
        if self.pool.refit():
            self._refresh_residual()

    def _pool_stalled(self, record: PoolState) -> int:
        """Track the pool's valid rank IC; the patience when it has run out (0: go on)."""
        if self.pool is None:
            return 0
        record.members = self.pool.state()
        figure = self.pool.valid_rank_ic
        if math.isfinite(figure) and not figure <= record.best_valid_rank_ic:
            record.best_valid_rank_ic, record.stale_generations = figure, 0
        else:
            record.stale_generations += 1
        patience = self.config.pool.patience
        return patience if patience is not None and record.stale_generations >= patience else 0

    def _initial_population(self) -> list:
        """Random trees; with `gp.seed_zoo`, a `gp.seed_share` of them drawn from the zoo set's
        formulas and their subtrees that the language can write."""
        gp_cfg = self.config.gp
        seeds = self._zoo_seeds()
        count = min(len(seeds), round(gp_cfg.seed_share * gp_cfg.population))
        make = individual_class(self.pareto)
        chosen = [make(expression) for expression in random.sample(seeds, count)]
        return chosen + self.toolbox.population(n=gp_cfg.population - count)

    def _zoo_seeds(self) -> list[list]:
        gp_cfg = self.config.gp
        if gp_cfg.seed_zoo is None:
            return []
        from miner.zoo import load_zoo

        try:
            formulas = [factor.formula for factor in load_zoo(gp_cfg.seed_zoo)]
        except ConfigError as exc:
            raise ConfigError(f"{self.config.source}: gp.seed_zoo: {exc}") from None
        expressions = expressible_subtrees(formulas, self.language, gp_cfg.max_size)
        deepest = gp_cfg.max_depth - 1
        return [e for e in expressions if gp.PrimitiveTree(e).height <= deepest]

    def _hall_of_fame(self) -> tools.HallOfFame:
        gp_cfg = self.config.gp
        if gp_cfg.niche_correlation is not None:
            return IdeaHallOfFame(gp_cfg.hall_of_fame, gp_cfg.niche_correlation)
        return tools.HallOfFame(gp_cfg.hall_of_fame, similar=same_formula)

    @staticmethod
    def _clear_copies(island: list, max_correlation: float) -> None:
        """Clearing: every individual whose behaviour repeats a fitter one's (`gp.niche_correlation`)
        gets the worst fitness, so selection and elitism see one individual per idea."""
        ranked = sorted(island, key=lambda ind: ind.fitness, reverse=True)
        keep = distinct_ideas([ind.behaviour for ind in ranked], max_correlation)
        for individual, new in zip(ranked, keep):
            if not new:
                individual.fitness.values = (WORST_FITNESS,)

    def _generation(
        self, generation: int, islands: list[list], hall: tools.HallOfFame, parallel: Parallel | None, handle
    ) -> GenerationStats:
        started = time.perf_counter()
        hits0, misses0 = self._cache_hits, self._cache_misses
        if generation > 0 and not self.random_search:
            islands[:] = [self._next_generation(island) for island in islands]
        new: list[str] = []
        skipped = failures = 0
        score_started = time.perf_counter()
        for island in islands:
            formulas, k, f = self._score_population(island, parallel, handle)
            new, skipped, failures = new + formulas, skipped + k, failures + f
        score_seconds = time.perf_counter() - score_started
        if self.pareto:
            islands[:] = [tools.selNSGA2(island, self.config.gp.population) for island in islands]
        if len(islands) > 1 and generation > 0 and generation % self.config.gp.migration_interval == 0:
            tools.migRing(islands, self.config.gp.migration_size, tools.selBest)
        everyone = [ind for island in islands for ind in island]
        hall.update([ind for ind in everyone if self.memo[ind.formula].valid])
        niche = self.config.gp.niche_correlation
        if niche is not None and not (self.pareto or self.random_search):
            for island in islands:
                self._clear_copies(island, niche)
        if self.pool is not None:
            self._grow_pool(new)
        primary = np.array([s.fitness[0] for ind in everyone if (s := self.memo[ind.formula]).valid])
        hits, misses = self._cache_hits - hits0, self._cache_misses - misses0
        gated = Counter(gate for f in new if (gate := self.memo[f].gate) is not None)
        return GenerationStats(
            generation=generation,
            best=float(primary.max()) if primary.size else math.nan,
            median=float(np.median(primary)) if primary.size else math.nan,
            unique_share=len({ind.formula for ind in everyone}) / len(everyone),
            scored=len(new),
            memo_skipped=skipped,
            cache_hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            candidates_per_s=len(new) / score_seconds if score_seconds > 0 else 0.0,
            failed=failures,
            seconds=time.perf_counter() - started,
            gated=dict(gated),
            pool_size=len(self.pool.entries) if self.pool else 0,
            pool_valid_rank_ic=self.pool.valid_rank_ic if self.pool else math.nan,
        )

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self, state: RunState) -> None:
        if self.checkpoint_dir is not None:
            save_checkpoint(Path(self.checkpoint_dir), state, self.data.fingerprint, self._resumable_config())

    def _resumable_config(self) -> dict:
        """The settings a checkpoint must match: everything but where and how fast it runs."""
        settings = self.config.model_dump(
            mode="json", exclude={"parallel", "tracking", "checkpoint_dir", "baselines"}
        )
        settings["float32"] = self.config.parallel.float32  # changes scores, unlike the backend
        return settings

    # -- survivors --------------------------------------------------------------------------

    def select_survivors(
        self, candidates: list[Score], tested: int
    ) -> tuple[list[Survivor], dict[str, str], Admission]:
        """Admit candidates on the valid segment against a hurdle for the `tested` formulas; test
        metrics are only reported."""
        locked = [(e.name, e.standardized) for e in self.pool.entries if e.locked] if self.pool else []
        selection = SurvivorSelection(
            self.config,
            self.data,
            self.label,
            self.segments,
            self.library_factors,
            locked,
            self.driver_evaluator,
        )
        return selection.select(candidates, tested)


def scoring_spec(config: ExperimentConfig, train_dates: int) -> ScoringSpec:
    """How the run scores candidates on train (the HAC lag covers the label's overlap)."""
    fitness, gates = config.fitness, config.fitness.gates
    return ScoringSpec(
        objective=fitness.objective,
        parsimony=fitness.parsimony,
        min_names=fitness.min_names,
        cache_bytes=config.parallel.worker_cache_mb << 20,
        gates=Gates(gates.min_coverage, gates.min_distinct, gates.min_dated_share) if gates.enabled else None,
        hac_lag=hac_lag(train_dates, config.label.horizon),
        blocks=fitness.blocks,
        beta=fitness.beta,
        behaviour=config.gp.niche_correlation is not None,
    )
