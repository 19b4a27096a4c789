"""Pydantic models of an experiment config, loaded from YAML with one-line errors."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from miner.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSpec(Strict):
    """The synthetic market's settings and their one set of defaults (`miner.market.synthetic`).

    `session: cn` is the A-share mode: A-share codes, prices in 0.01 CNY within the daily price
    limits, limit-up streaks locked at one price (`limit_streak_share` of (day, name) cells start
    one), the ``cn`` trading rules' fields and minute bars on the 240-slot cn clock.
    `minute_slots` defaults to 390 (09:31-16:00) for ``us`` and 240 for ``cn``.
    """

    n_instruments: int = Field(200, ge=2)
    n_days: int = Field(750, ge=8)
    seed: int = 0
    signal_strength: float = Field(0.05, ge=0)
    intraday_strength: float = Field(0.003, ge=0)
    minute_days: int | None = Field(None, ge=1)
    minute_slots: int | None = Field(None, ge=2)
    n_sectors: int = Field(8, ge=1)
    late_listing_share: float = Field(0.1, ge=0, le=1)
    suspension_share: float = Field(0.2, ge=0, le=1)
    session: Literal["us", "cn"] = "us"
    limit_streak_share: float = Field(0.004, ge=0, le=0.2)


class DataSpec(Strict):
    """Where the market comes from: the synthetic market, a market store, or a bar file.

    `session` (us, cn, cn_open or segments) and `rules` (us, cn, cn_locked) restate what a store
    recorded at import (a disagreement is an error) or what the synthetic market's `session`
    implies; for a bar file, `rules` are applied to its bars.
    """

    source: Literal["synthetic", "store", "file"] = "synthetic"
    synthetic: SyntheticSpec = SyntheticSpec()
    path: Path | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    instruments: list[str] | None = None
    minute: bool = False
    session: str | None = None
    rules: Literal["us", "cn", "cn_locked"] | None = None

    @model_validator(mode="after")
    def _path_given(self) -> DataSpec:
        if self.source != "synthetic" and self.path is None:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        return self

    @property
    def location(self) -> Path:
        """The store or file of a non-synthetic source (the validator makes sure there is one)."""
        if self.path is None:
            raise ConfigError(f"data.path is required when data.source is {self.source!r}")
        return self.path


class LabelSpec(Strict):
    """The forward-return label; `tradable`: ``entry`` leaves it NaN where the entry bar (row
    t + delay) is not tradable, ``none`` never, ``auto`` (default) = ``entry`` when the market has
    a ``tradable`` field (data imported with trading rules, the synthetic cn market).
    `neutralize` names a group field (e.g. ``sector``) whose per-date means are taken out of the
    label; `transform` then maps it per date (``rank``, winsorised ``zscore`` or ``raw``)."""

    price: str = "close"
    horizon: int = Field(1, ge=1)
    delay: int = Field(1, ge=0)
    tradable: Literal["auto", "entry", "none"] = "auto"
    transform: Literal["raw", "rank", "zscore"] = "raw"
    neutralize: str | None = None


class Segment(Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class SplitSpec(Strict):
    """Train / valid / test date ranges; `embargo` rows separate them (at least delay + horizon)."""

    train: Segment
    valid: Segment
    test: Segment
    embargo: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _in_order(self) -> SplitSpec:
        if not self.train.end < self.valid.start:
            raise ValueError("splits overlap: train must end before valid starts")
        if not self.valid.end < self.test.start:
            raise ValueError("splits overlap: valid must end before test starts")
        return self


class OperatorSpec(Strict):
    families: list[str] = ["elementwise", "timeseries", "cross_section", "robust"]
    include: list[str] = []
    exclude: list[str] = []


class MutationSpec(Strict):
    subtree: float = Field(0.15, ge=0, le=1)
    point: float = Field(0.1, ge=0, le=1)
    shrink: float = Field(0.05, ge=0, le=1)


class GPSpec(Strict):
    """The search. `search: random` is the baseline a GP must beat: it scores `budget` distinct random
    trees (default population x generations) from the same generator, memo and pruning, in rounds of
    `population`, and admits survivors the same way."""

    search: Literal["gp", "random"] = "gp"
    budget: int | None = Field(None, ge=1)
    population: int = Field(300, ge=4)
    generations: int = Field(10, ge=1)
    tournament_size: int = Field(3, ge=2)
    crossover: float = Field(0.6, ge=0, le=1)
    mutation: MutationSpec = MutationSpec()
    init_depth: tuple[int, int] = (2, 4)
    max_depth: int = Field(6, ge=2, le=17)
    max_size: int = Field(30, ge=3)
    elitism: int = Field(5, ge=0)
    hall_of_fame: int = Field(50, ge=1)
    islands: int = Field(1, ge=1)
    migration_interval: int = Field(3, ge=1)
    migration_size: int = Field(5, ge=1)
    fields: list[str] = ["open", "high", "low", "close", "volume", "vwap", "returns"]
    windows: list[int] = [1, 2, 3, 5, 10, 20, 40, 60]
    constants: list[float] = [0.5, 1.0, 2.0, 3.0]
    terminals: list[str] = []
    seed_zoo: str | None = None
    seed_share: float = Field(0.5, ge=0, le=1)
    niche_correlation: float | None = Field(None, gt=0, le=1)

    @field_validator("windows")
    @classmethod
    def _positive_windows(cls, windows: list[int]) -> list[int]:
        if not windows or min(windows) < 1:
            raise ValueError("windows must be a non-empty list of positive integers")
        return sorted(set(windows))

    @model_validator(mode="after")
    def _init_depth(self) -> GPSpec:
        low, high = self.init_depth
        if not 1 <= low <= high <= self.max_depth:
            raise ValueError(f"init_depth {self.init_depth} must satisfy 1 <= min <= max <= max_depth")
        if self.elitism >= self.population:
            raise ValueError("elitism must be smaller than the population")
        if self.budget is not None and self.search != "random":
            raise ValueError("budget is the number of candidates of a random search (search: random)")
        return self

    @property
    def candidates(self) -> int:
        """The distinct candidates a random search scores."""
        return self.budget if self.budget is not None else self.population * self.generations


class GateSpec(Strict):
    """Degeneracy gates a candidate passes before it is scored (see the README)."""

    enabled: bool = True
    min_coverage: float = Field(0.8, ge=0, le=1)
    min_distinct: float = Field(0.01, ge=0, le=1)
    min_dated_share: float = Field(0.8, ge=0, le=1)


class FitnessSpec(Strict):
    """`objective`: the train score of a candidate's per-date rank IC series (``icir``, the HAC
    ``tstat`` per sqrt(dates), ``mean_std`` over `blocks` contiguous blocks) or NSGA-II."""

    objective: Literal["icir", "tstat", "mean_std", "nsga2"] = "icir"
    parsimony: float = Field(0.002, ge=0)
    min_names: int = Field(10, ge=3)
    blocks: int = Field(4, ge=2)
    beta: float = Field(1.0, ge=0)
    gates: GateSpec = GateSpec()


class PoolSpec(Strict):
    """The factor pool kept during the search (alphagen-style): a ridge combination of admitted
    factors refitted on train. With `enabled`, candidates are scored against the label with the
    pool's fit taken out (their gain over the pool); `zoo` seeds it with a zoo set's top factors,
    which stay in; `patience` stops the search when the pool's valid rank IC has not improved for
    that many generations."""

    enabled: bool = False
    capacity: int = Field(10, ge=1)
    max_correlation: float = Field(0.7, gt=0, le=1)
    replace_ratio: float = Field(1.3, ge=1)
    ridge: float = Field(1.0, ge=0)
    offers: int = Field(20, ge=1)
    zoo: str | None = None
    zoo_top_k: int = Field(10, ge=1)
    patience: int | None = Field(None, ge=1)


class SurvivorSpec(Strict):
    """Admission on valid: thresholds, a t-statistic hurdle controlling for the candidates tested
    (``holm``, ``bh`` or a ``fixed`` t >= `t_min`) over `tests`: the candidates ``examined`` on
    valid (chosen on train, which valid does not see) or every formula ``scored`` in the run; a
    correlation cap with every survivor and library factor, and with `require_gain` an improvement
    of the pool's combined valid rank IC."""

    min_abs_rank_ic: float = Field(0.0, ge=0)
    max_turnover: float = Field(1.0, ge=0)
    min_coverage: float = Field(0.5, ge=0, le=1)
    max_correlation: float = Field(0.5, gt=0, le=1)
    max_survivors: int = Field(10, ge=1)
    hurdle: Literal["holm", "bh", "fixed", "none"] = "bh"
    tests: Literal["examined", "scored"] = "examined"
    alpha: float = Field(0.05, gt=0, lt=1)
    t_min: float = Field(3.0, ge=0)
    require_gain: bool = False


CLUSTER_BACKENDS = {"dask": "distributed", "ray": "ray"}  # backend -> the module it needs


class ParallelSpec(Strict):
    """Where candidates are scored: joblib's `backend` with `n_jobs` workers.

    `dask` and `ray` need `address`: a running scheduler (Dask `tcp://host:8786`, Ray
    `ray://host:10001` or `auto`), or `local` to start a cluster of `n_jobs` single-threaded
    worker processes for the run; on a running cluster `n_jobs` should be its number of worker
    processes (it sizes the scoring batches). `float32` stores the scored panel's fields as
    float32 (half the memory per worker; values are read back as float64, see `miner.search.panels`).
    """

    backend: Literal["loky", "threading", "sequential", "dask", "ray"] = "loky"
    n_jobs: int = Field(1, ge=1)
    batch_size: int | None = Field(None, ge=1)
    address: str | None = None
    worker_cache_mb: int = Field(512, ge=0)
    float32: bool = False

    @model_validator(mode="after")
    def _cluster(self) -> ParallelSpec:
        module = CLUSTER_BACKENDS.get(self.backend)
        if module is None:
            if self.address is not None:
                raise ValueError(f"address is only used by the dask and ray backends, not {self.backend!r}")
            return self
        if not self.address:
            raise ValueError(
                f"backend {self.backend!r} needs an address: a scheduler address, or 'local' for a "
                "cluster on this machine"
            )
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"backend {self.backend!r} needs {module}, which is not installed: "
                f"pip install 'factor-miner[{self.backend}]'"
            )
        return self


class TrackingSpec(Strict):
    """MLflow tracking; with no `uri` here or on the command line, $MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db (`miner.app.tracking.tracking_uri`)."""

    enabled: bool = True
    uri: str | None = None


class LibrarySpec(Strict):
    path: Path | None = None


class BaselineSpec(Strict):
    """What every run reports beside its survivors: their composites by each method, the `zoo` set's
    `top_k` factors picked on valid (`zoo: none` skips them) with their composite, and zoo + mined,
    both combined by `method` (`evaluation.combine`)."""

    zoo: str = "classic"
    top_k: int = Field(10, ge=1)
    method: Literal["ew", "icw", "ridge", "lasso"] = "ridge"


class ExperimentConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    data: DataSpec = DataSpec()
    label: LabelSpec = LabelSpec()
    splits: SplitSpec
    operators: OperatorSpec = OperatorSpec()
    gp: GPSpec = GPSpec()
    fitness: FitnessSpec = FitnessSpec()
    survivors: SurvivorSpec = SurvivorSpec()
    pool: PoolSpec = PoolSpec()
    parallel: ParallelSpec = ParallelSpec()
    tracking: TrackingSpec = TrackingSpec()
    library: LibrarySpec = LibrarySpec()
    baselines: BaselineSpec = BaselineSpec()
    checkpoint_dir: Path | None = None
    _source: str = PrivateAttr("<config>")

    @property
    def source(self) -> str:
        """The file this config was read from (for error messages)."""
        return self._source

    @model_validator(mode="after")
    def _nsga2_population(self) -> ExperimentConfig:
        if self.fitness.objective == "nsga2" and self.gp.population % 4:
            raise ValueError("gp.population must be a multiple of 4 for the nsga2 objective")
        return self

    @property
    def embargo(self) -> int:
        """Rows left out between segments: at least the label's delay + horizon."""
        need = self.label.delay + self.label.horizon
        return max(need, self.splits.embargo or 0)


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def config_from_dict(raw: object, source: str = "<config>") -> ExperimentConfig:
    """Validate a parsed config; the first problem becomes a one-line `ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(f"{source}: {_location(first)}: {message}") from None
    check_operators(config, source)
    config._source = source
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config is YAML text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return config_from_dict(raw, source=str(path))


def check_operators(config: ExperimentConfig, source: str) -> None:
    """Every named operator and family must exist in the registry."""
    from operators import REGISTRY, operators_by_family

    families = set(operators_by_family())
    for i, family in enumerate(config.operators.families):
        if family not in families:
            raise ConfigError(
                f"{source}: operators.families.{i}: unknown family {family!r} "
                f"(known: {', '.join(sorted(families))})"
            )
    for key in ("include", "exclude"):
        for i, name in enumerate(getattr(config.operators, key)):
            if name not in REGISTRY:
                raise ConfigError(f"{source}: operators.{key}.{i}: unknown operator {name!r}")
