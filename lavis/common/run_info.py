"""What a run records about itself when it trains, beside the config the user wrote:
``run_info.json`` in the run folder (``lavis.common.run_dir``).

``config.yaml`` keeps the experiment as written, so a dataset's ``root: data/qvh`` is relative to
wherever training ran. ``run_info.json`` adds each dataset's paths resolved to absolute paths at
that moment, so every command that reads the run (``lavis.report``, ``submission``, ``predict``,
``export``, ``evaluate --run-dir``, the long-video benchmark) finds the data from any directory.
When the data has moved, ``--data-root DIR`` names the folder that holds a dataset now: each
recorded path under the dataset's old root is looked up under ``DIR`` instead.

The file (JSON)::

    {"version": 1,
     "datasets": {"synthetic_av": {"root": "/home/me/sms/data/synthetic_av",
                                   "paths": {"annotations.train": "/home/me/sms/data/synthetic_av/train.jsonl",
                                             "video_root": "/home/me/sms/data/synthetic_av/videos", ...}}},
     "batch": {"world_size": 1, "per_device": 8, "accumulation": 4, "derived": true, "global_batch": 32},
     "span": 30.0}

``batch`` is how a training run's steps were batched (``lavis.runners.batch_layout``; empty for
an evaluation). ``span`` is the longest training video in seconds: what prediction shows the model at once
(``lavis.inference``; a longer video is read in chunks of it). None: a run written before the
record had it, or one that did not train.

``paths`` maps a key of the dataset's config to the absolute path it named. A dataset config takes
part by offering ``data_location()`` (the record) and ``located_at(location)`` (itself with the
recorded paths), as ``lavis.datasets.dataset_config.MomentDatasetConfig`` does; this module knows
no dataset's fields. A new field of the record is one more field of ``RunInfo`` with a default:
files written before it still load (with the default), and a file of a newer ``version`` is
refused by name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lavis.common.errors import InputError, UserError
from lavis.common.typed import ConfigError, from_dict, to_dict

RUN_INFO_VERSION = 1
DATA_ROOT_OPTION = "--data-root"


class RunDataError(UserError, FileNotFoundError):
    """A data file a run needs is not where the run recorded it (the message names the option
    that points elsewhere)."""


@dataclass
class DatasetLocation:
    """Where one dataset's files were when the run trained (absolute paths)."""

    root: str  # the dataset folder
    paths: dict[str, str] = field(default_factory=dict)  # config key -> absolute path

    def moved_to(self, new_root: str | Path) -> DatasetLocation:
        """The same files under ``new_root``: each path under the old root is re-rooted; a path
        outside it (an absolute path of its own in the config) stays as recorded."""
        old, new = Path(self.root), Path(new_root).resolve()

        def move(path: str) -> str:
            try:
                return str(new / Path(path).relative_to(old))
            except ValueError:
                return path

        return DatasetLocation(str(new), {key: move(path) for key, path in self.paths.items()})


@dataclass
class RunInfo:
    """The record of ``run_info.json`` (see the module doc)."""

    version: int = RUN_INFO_VERSION
    datasets: dict[str, DatasetLocation] = field(default_factory=dict)  # builder name -> location
    # How a training run's steps were batched: world_size, per_device, accumulation, global_batch
    # (runners.batch_layout; empty for an evaluation, or a run written before the field existed).
    batch: dict[str, Any] = field(default_factory=dict)
    span: Optional[float] = None  # seconds: the longest training video (None: not recorded)

    @classmethod
    def of(cls, cfg: Any, span: Optional[float] = None) -> RunInfo:
        """The record of an experiment config, its paths resolved against the current directory,
        and the ``span`` it trains for (its longest training video, seconds)."""
        datasets = {name: ds.data_location() for name, ds in cfg.datasets.items() if hasattr(ds, "data_location")}
        return cls(datasets=datasets, span=span)

    def to_json(self) -> str:
        """The record as ``run_info.json`` text (``from_json`` reads it back)."""
        return json.dumps(to_dict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> RunInfo:
        """Parse a ``run_info.json``; ``source`` (its path) names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        version = data.get("version")
        if not isinstance(version, int) or version > RUN_INFO_VERSION:
            raise ConfigError(
                f"{source}: version {version!r} is not one this code reads (up to {RUN_INFO_VERSION}): "
                f"a newer release wrote it"
            )
        return from_dict(cls, data, source)

    def relocated(self, roots: Mapping[str, Path]) -> RunInfo:
        """The record with the datasets named in ``roots`` moved to their new folders."""
        unknown = sorted(set(roots) - set(self.datasets))
        if unknown:
            raise InputError(
                f"{DATA_ROOT_OPTION}: the run has no dataset {unknown[0]!r}; its datasets: {sorted(self.datasets)}"
            )
        moved = {name: loc.moved_to(roots[name]) if name in roots else loc for name, loc in self.datasets.items()}
        return dataclasses.replace(self, datasets=moved)

    def apply(self, cfg: Any) -> Any:
        """``cfg`` with each recorded dataset's paths in place of the paths it names (in place)."""
        for name, location in self.datasets.items():
            if name in cfg.datasets:
                cfg.datasets[name] = cfg.datasets[name].located_at(location)
        return cfg


def parse_data_roots(values: Sequence[str], datasets: Sequence[str]) -> dict[str, Path]:
    """``--data-root DIR`` (a run with one dataset) or ``--data-root NAME=DIR`` (repeatable) ->
    ``{dataset name: DIR}``."""
    roots: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            if len(datasets) != 1:
                raise InputError(f"{DATA_ROOT_OPTION}: the run has datasets {list(datasets)}: give NAME=DIR for each")
            name, folder = datasets[0], value
        if not folder:
            raise InputError(f"{DATA_ROOT_OPTION}: {value!r} names no folder")
        roots[name] = Path(folder)
    return roots


def missing_data(what: str, path: Path, option: str = DATA_ROOT_OPTION, alternative: str = "") -> RunDataError:
    """The error for a data file of the run that is not where the run recorded it: it names
    ``option``, the one that points elsewhere (``alternative``: another way, e.g. ``--ann``)."""
    return RunDataError(
        f"{what} not found: {path} (has the run's data moved since it trained? point at the folder "
        f"that holds it now with {option} DIR{alternative})"
    )
