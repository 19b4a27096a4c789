"""The train panel a run scores on, and the handles that carry it to workers without copies per batch.

* `loky` / `threading`: memory-mapped `.npy` files written once (`MemmapPanel`);
* `dask`: the `Panel` scattered to every worker (`client.scatter(..., broadcast=True)`); the
  handle is a Dask Future, which Dask resolves to the worker's copy in each task's arguments;
* `ray`: the `Panel` in Ray's object store (`RayPanel`); workers `ray.get` it, zero-copy.

With `float32` the panel's numeric fields are stored as float32 (half the bytes in memory maps,
scattered copies and the object store) and each read of a field by the evaluator upcasts it to a
fresh float64 array, since kernels take float64; group codes, intraday cubes and the label stay
float64.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miner.market import MarketData


@dataclass
class Panel:
    """The train slice of the market, its label and the rows that count, in this process.

    `float32_fields` holds the numeric fields taken out of `data` by `with_float32_fields`.
    """

    data: MarketData
    label: np.ndarray
    rows: slice
    key: str = field(default="")
    float32_fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"mem:{uuid.uuid4().hex}"

    def with_float32_fields(self) -> Panel:
        """This panel with its numeric fields stored as float32 (group codes stay in `data`)."""
        data = self.data
        groups = {name: data.fields[name] for name in data.groups}
        narrow = {
            name: _read_only(array.astype(np.float32))
            for name, array in data.fields.items()
            if name not in groups
        }
        slim = MarketData(data.dates, data.instruments, groups, data.intraday, data.groups)
        return Panel(slim, self.label, self.rows, float32_fields=narrow)

    def save(self, directory: Path) -> MemmapPanel:
        """Write every array once as `.npy`; workers map them read-only."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "dates": [str(d) for d in self.data.dates],
            "instruments": [str(i) for i in self.data.instruments],
            "fields": sorted(self.data.fields),
            "float32_fields": sorted(self.float32_fields),
            "intraday": sorted(self.data.intraday),
            "groups": {k: list(v) for k, v in self.data.groups.items()},
            "rows": [self.rows.start, self.rows.stop],
            "fingerprint": self.data.fingerprint,
        }
        for name, array in self.data.fields.items():
            np.save(directory / f"field.{name}.npy", array)
        for name, array in self.float32_fields.items():
            np.save(directory / f"float32.{name}.npy", array)
        for name, array in self.data.intraday.items():
            np.save(directory / f"intraday.{name}.npy", array)
        np.save(directory / "label.npy", self.label)
        (directory / "meta.json").write_text(json.dumps(meta))
        return MemmapPanel(str(directory))


@dataclass(frozen=True)
class MemmapPanel:
    """A picklable handle on a saved `Panel`: only the directory travels to workers."""

    directory: str

    @property
    def key(self) -> str:
        return f"mmap:{self.directory}"

    def load(self) -> Panel:
        root = Path(self.directory)
        meta = json.loads((root / "meta.json").read_text())
        data = MarketData(
            dates=np.array(meta["dates"], dtype="datetime64[D]"),
            instruments=np.array(meta["instruments"], dtype=object),
            fields={n: np.load(root / f"field.{n}.npy", mmap_mode="r") for n in meta["fields"]},
            intraday={n: np.load(root / f"intraday.{n}.npy", mmap_mode="r") for n in meta["intraday"]},
            groups={k: tuple(v) for k, v in meta["groups"].items()},
        )
        narrow = {n: np.load(root / f"float32.{n}.npy", mmap_mode="r") for n in meta["float32_fields"]}
        label = np.load(root / "label.npy", mmap_mode="r")
        return Panel(data, label, slice(*meta["rows"]), key=self.key, float32_fields=narrow)


@dataclass(frozen=True)
class RayPanel:
    """A picklable handle on a `Panel` in Ray's object store: only the object reference travels."""

    ref: Any  # ray.ObjectRef (ray is an optional extra)

    @property
    def key(self) -> str:
        return f"ray:{self.ref.hex()}"

    def load(self) -> Panel:
        import ray

        return ray.get(self.ref)


PanelHandle = Panel | MemmapPanel | RayPanel  # a Dask Future of a Panel arrives as the Panel


class Float64Fields(Mapping):
    """Stored fields as the kernels take them: each read of a float32 field is a fresh float64 copy."""

    def __init__(self, stored: Mapping[str, np.ndarray]) -> None:
        self._stored = stored

    def __getitem__(self, name: str) -> np.ndarray:
        return _read_only(np.asarray(self._stored[name], dtype=np.float64))

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
