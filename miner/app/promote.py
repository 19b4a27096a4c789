"""Promotion: a mining run's survivors (read through MLflow) into the factor library."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from miner.app.tracking import CONFIG_FILE, SURVIVORS_FILE, check_tracking, tracking_uri
from miner.config import ExperimentConfig, config_from_dict
from miner.errors import MinerError
from miner.lang import canonical
from miner.library import FactorLibrary
from miner.market.ingest import read_bar_file
from miner.market.synthetic import RULES_OF_SESSION, synthetic_frames


@dataclass(frozen=True)
class Promotion:
    name: str
    formula: str
    registered: bool
    message: str


def read_run(client: MlflowClient, run_id: str) -> tuple[dict, ExperimentConfig]:
    """The run's survivors document and resolved config, downloaded through the MLflow API."""
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise MinerError(f"no MLflow run {run_id!r} at {client.tracking_uri}") from None
        raise MinerError(f"MLflow tracking at {client.tracking_uri}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="factor-miner-promote-") as folder:
        try:
            survivors = client.download_artifacts(run_id, SURVIVORS_FILE, folder)
            config = client.download_artifacts(run_id, CONFIG_FILE, folder)
        except (MlflowException, OSError):
            raise MinerError(
                f"MLflow run {run_id} has no {SURVIVORS_FILE}: is it a finished mining run?"
            ) from None
        document = json.loads(Path(survivors).read_text())
        resolved = config_from_dict(
            yaml.safe_load(Path(config).read_text()), source=f"run {run_id}/{CONFIG_FILE}"
        )
    return document, resolved


def chosen_survivors(document: dict, names: list[str] | None, everything: bool) -> list[dict]:
    survivors = document["survivors"]
    if everything:
        return survivors
    if not names:
        raise MinerError("name the factors to promote with --factor NAME (repeatable), or pass --all")
    by_name = {s["name"]: s for s in survivors}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none"
        raise MinerError(f"run has no survivor named {', '.join(unknown)} (survivors: {known})")
    return [by_name[n] for n in names]


def ensure_market(library: FactorLibrary, config: ExperimentConfig) -> None:
    """A library with no market data gets the run's market (synthetic runs regenerate it)."""
    if library.market_store.daily_row_count():
        return
    source = config.data
    if source.source == "synthetic":
        session = source.synthetic.session
        daily, minute = synthetic_frames(**source.synthetic.model_dump())
        store = library.market_store
        store.import_frame(daily, "daily", source="synthetic market", rules=RULES_OF_SESSION[session])
        if minute is not None:
            store.import_frame(minute, "minute", source="synthetic market", session=session)
    elif source.source == "file":
        library.market_store.import_frame(
            read_bar_file(source.location), "daily", source=str(source.location), rules=source.rules
        )
    else:
        raise MinerError(
            f"factor library {library.path} has no market data: open it with the run's store "
            f"(--store {source.path}) or import bars with `miner data import ... --store {library.path}`"
        )


def promote(
    run_id: str,
    uri: str | None,
    library_path: Path,
    names: list[str] | None = None,
    everything: bool = False,
    store: Path | None = None,
) -> list[Promotion]:
    """Register the chosen survivors with the run as their source; tag the run `promoted=...`.
    `uri` None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db (`tracking_uri`)."""
    resolved = tracking_uri(uri)
    check_tracking(resolved, existing=True)
    client = MlflowClient(tracking_uri=resolved)
    document, config = read_run(client, run_id)
    chosen = chosen_survivors(document, names, everything)
    outcomes = []
    with FactorLibrary(library_path, market_store=store) as library:
        if store is None:
            ensure_market(library, config)
        existing = {canonical(f): i for i, f in zip(*_ids_and_formulas(library), strict=True)}
        for survivor in chosen:
            formula = canonical(survivor["formula"])
            if formula in existing:
                message = f"{survivor['name']}: already in the library as {existing[formula]} (nothing to do)"
                outcomes.append(Promotion(survivor["name"], formula, False, message))
                continue
            library.register_factor(
                survivor["name"],
                formula,
                description=f"mined by run {run_id} ({document['experiment']}, seed {document['seed']})",
                category="mined",
                source=run_id,
                metrics={
                    "segments": survivor["segments"],
                    "decay": survivor["decay"],
                    "half_life": survivor["half_life"],
                    "lookback": survivor["lookback"],
                },
            )
            existing[formula] = survivor["name"]
            outcomes.append(
                Promotion(survivor["name"], formula, True, f"{survivor['name']}: registered {formula}")
            )
    promoted = sorted({o.name for o in outcomes if o.registered})
    if promoted:
        previous = client.get_run(run_id).data.tags.get("promoted")
        tags = sorted(set(previous.split(",")) | set(promoted)) if previous else promoted
        client.set_tag(run_id, "promoted", ",".join(tags))
    return outcomes


def _ids_and_formulas(library: FactorLibrary) -> tuple[list[str], list[str]]:
    listed = library.list_factors()
    return list(listed["factor_id"]), list(listed["formula"])
