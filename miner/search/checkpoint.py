"""Checkpoints: the whole state of a run after each generation, so `--resume` ends exactly as an
uninterrupted run would."""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miner.errors import ConfigError

CHECKPOINT_FILE = "checkpoint.pkl"


@dataclass
class RunState:
    """Everything the loop carries from one generation to the next."""

    islands: list[list[Any]]
    hall: Any  # deap.tools.HallOfFame
    logbook: list[Any]
    memo: dict[str, Any]
    generation: int  # the next generation to run


def save_checkpoint(directory: Path, state: RunState, fingerprint: str, settings: dict) -> None:
    """Write the state atomically (a temporary file, then a rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "islands": state.islands,
        "hall": state.hall,
        "logbook": state.logbook,
        "memo": state.memo,
        "generation": state.generation,
        "random": random.getstate(),
        "fingerprint": fingerprint,
        "config": settings,
    }
    partial_path = directory / (CHECKPOINT_FILE + ".tmp")
    with partial_path.open("wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    partial_path.replace(directory / CHECKPOINT_FILE)


def load_checkpoint(directory: Path | None, fingerprint: str, settings: dict) -> RunState:
    """The saved state, with the `random` stream restored; a ConfigError when it cannot be resumed."""
    if directory is None:
        raise ConfigError("--resume needs a checkpoint directory (checkpoint_dir in the config)")
    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        raise ConfigError(f"{path}: no checkpoint to resume from")
    with path.open("rb") as handle:
        payload = pickle.load(handle)
    if payload["fingerprint"] != fingerprint:
        raise ConfigError(f"{path}: the checkpoint was made on other data (fingerprint differs)")
    if payload["config"] != settings:
        raise ConfigError(f"{path}: the checkpoint was made with another config")
    random.setstate(payload["random"])
    return RunState(
        payload["islands"], payload["hall"], payload["logbook"], payload["memo"], payload["generation"]
    )
