"""Checkpoints: the whole state of a run after each generation, so `--resume` ends exactly as an
uninterrupted run would.

A checkpoint file starts with `MAGIC`, then the pickled state: a file that does not (another
program's pickle, an empty file) is refused before anything is unpickled, and a truncated or
damaged one is a one-line error too.
"""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miner.errors import ConfigError, MinerError

CHECKPOINT_FILE = "checkpoint.pkl"
MAGIC = b"factor-miner checkpoint 2\n"
_PAYLOAD_KEYS = frozenset(
    {"islands", "hall", "logbook", "memo", "generation", "pool", "random", "fingerprint", "config"}
)


@dataclass
class RunState:
    """Everything the loop carries from one generation to the next."""

    islands: list[list[Any]]
    hall: Any  # deap.tools.HallOfFame
    logbook: list[Any]
    memo: dict[str, Any]
    generation: int  # the next generation to run
    pool: PoolState = field(default_factory=lambda: PoolState([], math.nan, 0))


@dataclass
class PoolState:
    """The factor pool's members in order, and its early-stopping record."""

    members: list[tuple[str, str, float, bool]]  # (name, formula, score, locked)
    best_valid_rank_ic: float
    stale_generations: int


def require_writable(directory: Path, source: str) -> None:
    """A ConfigError naming the config's checkpoint_dir when checkpoints cannot be written there
    (checked before the first generation, not after it)."""
    probe = directory / (CHECKPOINT_FILE + ".probe")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{source}: checkpoint_dir: cannot write checkpoints to {directory}: {exc.strerror}"
        ) from None


def save_checkpoint(directory: Path, state: RunState, fingerprint: str, settings: dict) -> None:
    """Write the state atomically (a temporary file, then a rename)."""
    payload = {
        "islands": state.islands,
        "hall": state.hall,
        "logbook": state.logbook,
        "memo": state.memo,
        "generation": state.generation,
        "pool": state.pool,
        "random": random.getstate(),
        "fingerprint": fingerprint,
        "config": settings,
    }
    partial_path = directory / (CHECKPOINT_FILE + ".tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with partial_path.open("wb") as handle:
            handle.write(MAGIC)
            pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
        partial_path.replace(directory / CHECKPOINT_FILE)
    except OSError as exc:
        raise MinerError(f"cannot write the checkpoint {partial_path}: {exc.strerror}") from None


def load_checkpoint(directory: Path | None, fingerprint: str, settings: dict) -> RunState:
    """The saved state, with the `random` stream restored; a ConfigError when it cannot be resumed."""
    if directory is None:
        raise ConfigError("--resume needs a checkpoint directory (checkpoint_dir in the config)")
    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        raise ConfigError(f"{path}: no checkpoint to resume from")
    payload = _read(path)
    if payload["fingerprint"] != fingerprint:
        raise ConfigError(f"{path}: the checkpoint was made on other data (fingerprint differs)")
    if payload["config"] != settings:
        raise ConfigError(f"{path}: the checkpoint was made with another config")
    random.setstate(payload["random"])
    return RunState(
        payload["islands"],
        payload["hall"],
        payload["logbook"],
        payload["memo"],
        payload["generation"],
        payload["pool"],
    )


def _read(path: Path) -> dict:
    advice = "delete it, or run without --resume"
    with path.open("rb") as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise ConfigError(f"{path}: not a factor-miner checkpoint ({advice})")
        try:
            payload = pickle.load(handle)
        except Exception as exc:  # unpickling fails in many ways; the user needs one line
            raise ConfigError(
                f"{path}: the checkpoint is truncated or damaged ({type(exc).__name__}; {advice})"
            ) from None
    if not isinstance(payload, dict) or not _PAYLOAD_KEYS <= payload.keys():
        raise ConfigError(f"{path}: the checkpoint is truncated or damaged (missing state; {advice})")
    return payload
