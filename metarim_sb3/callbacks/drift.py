"""How far each parameter group has moved: drift telemetry for fast/slow training, as a stable-baselines3 callback."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from metarim_sb3.callbacks._common import append_csv_row

__all__ = ["ParameterDriftCallback", "group_distance", "group_norm"]


def group_norm(params: Iterable[th.Tensor]) -> float:
    """
    L2 norm of a group of tensors taken as one vector.

    :param params: the tensors.
    :return: ``sqrt(sum of squares)``; ``0.0`` for an empty group.
    """
    squares = [p.detach().double().square().sum() for p in params]
    return math.sqrt(float(th.stack(squares).sum())) if squares else 0.0


def group_distance(a: Sequence[th.Tensor], b: Sequence[th.Tensor]) -> float:
    """
    L2 distance between two groups of tensors of the same shapes, taken as vectors.

    :param a: the first group.
    :param b: the second group, in the same order.
    :return: ``||a - b||``.
    """
    if len(a) != len(b):
        raise ValueError(f"groups must have the same length, got {len(a)} and {len(b)}")
    return group_norm([x.detach() - y.detach() for x, y in zip(a, b, strict=True)])


class ParameterDriftCallback(BaseCallback):
    """
    Logs, for every named parameter group of the policy's optimizer (``modules``, ``attention``, ``other`` for a
    :class:`~metarim_sb3.policies.RIMPolicy`), how far it has moved from its starting point and how far it moved in
    the last rollout's update, so that one sees at a glance whether "slow" means slower or frozen.

    At the end of every rollout (that is, after the previous ``train()`` and any slow update a
    :class:`~metarim_sb3.callbacks.FastSlowCallback` made at the start of this rollout, in whichever order the two
    callbacks are listed) and at training end (list it after the ``FastSlowCallback`` to include a slow update made
    there), it records for each group ``g`` with reference parameters
    ``θ0`` (their values when this callback first started training), previous values ``θp`` (at the previous
    record) and current values ``θ``:

    - ``rim/drift/<g>`` = ``||θ - θ0|| / ||θ0||``: relative L2 distance from the start;
    - ``rim/update/<g>`` = ``||θ - θp|| / ||θ0||``: relative size of the updates since the previous record.

    Norms are over the whole group taken as one vector. The same numbers are appended to ``<log_dir>/<file_name>.csv``
    (columns ``timesteps``, then ``drift_<g>`` and ``update_<g>`` per group). With a ``log_dir``, the reference
    ``θ0`` is saved to ``<log_dir>/<file_name>_reference.pt`` and read back by a later callback in the same folder,
    so a resumed run keeps measuring drift from the run's true start.

    :param log_dir: folder of the CSV and the reference file; ``None``: log to the model's logger only.
    :param file_name: base name of the files.
    :param verbose: ``1`` prints each record.
    """

    def __init__(
        self, log_dir: str | os.PathLike[str] | None = None, file_name: str = "drift", verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        if not isinstance(file_name, str) or not file_name or "/" in file_name or os.sep in file_name:
            raise ValueError(f"ParameterDriftCallback: file_name must be a plain file name, got {file_name!r}")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.file_name = file_name
        self._groups: dict[str, list[th.nn.Parameter]] = {}
        self._reference: dict[str, list[th.Tensor]] = {}
        self._reference_norm: dict[str, float] = {}
        self._previous: dict[str, list[th.Tensor]] = {}
        #: The last record: ``{"drift": {group: value}, "update": {group: value}}``.
        self.last: dict[str, dict[str, float]] = {"drift": {}, "update": {}}

    @staticmethod
    def _named_groups(optimizer: th.optim.Optimizer) -> dict[str, list[th.nn.Parameter]]:
        return {str(g.get("name") or f"group{i}"): list(g["params"]) for i, g in enumerate(optimizer.param_groups)}

    def _reference_path(self) -> Path | None:
        return None if self.log_dir is None else self.log_dir / f"{self.file_name}_reference.pt"

    def _on_training_start(self) -> None:
        groups = self._named_groups(self.model.policy.optimizer)
        if self._groups and {n: [id(p) for p in ps] for n, ps in groups.items()} == {
            n: [id(p) for p in ps] for n, ps in self._groups.items()
        }:
            return  # the same model again (another learn() call): keep measuring from the same start
        self._groups = groups
        current = {name: [p.detach().clone() for p in params] for name, params in groups.items()}
        path = self._reference_path()
        reference = current
        if path is not None and path.is_file():
            saved = th.load(path, map_location="cpu", weights_only=True)
            if self._matches(saved, current):
                reference = {name: [t.to(current[name][0].device) for t in ts] for name, ts in saved.items()}
        elif path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            th.save({name: [t.cpu() for t in ts] for name, ts in current.items()}, tmp)
            os.replace(tmp, path)
        self._reference = reference
        self._reference_norm = {name: group_norm(ts) for name, ts in reference.items()}
        self._previous = {name: list(ts) for name, ts in current.items()}  # its own dict: record() rebinds entries

    @staticmethod
    def _matches(saved: object, current: Mapping[str, list[th.Tensor]]) -> bool:
        if not isinstance(saved, dict) or set(saved) != set(current):
            return False
        return all(
            len(saved[n]) == len(ts) and all(a.shape == b.shape for a, b in zip(saved[n], ts, strict=True))
            for n, ts in current.items()
        )

    def record(self) -> dict[str, dict[str, float]]:
        """
        Measure every group now, log the values and append a CSV row.

        :return: ``{"drift": {group: value}, "update": {group: value}}``.
        """
        drift, update = {}, {}
        for name, params in self._groups.items():
            scale = self._reference_norm[name] or 1.0  # an all-zero or empty group: absolute distances
            drift[name] = group_distance(params, self._reference[name]) / scale
            update[name] = group_distance(params, self._previous[name]) / scale
            self._previous[name] = [p.detach().clone() for p in params]
            self.logger.record(f"rim/drift/{name}", drift[name])
            self.logger.record(f"rim/update/{name}", update[name])
        self.last = {"drift": drift, "update": update}
        if self.log_dir is not None:
            names = list(self._groups)
            header = ["timesteps", *(f"drift_{n}" for n in names), *(f"update_{n}" for n in names)]
            row = [self.num_timesteps, *(drift[n] for n in names), *(update[n] for n in names)]
            append_csv_row(self.log_dir / f"{self.file_name}.csv", header, row)
        if self.verbose >= 1:
            shown = ", ".join(f"{n} {drift[n]:.3g} (+{update[n]:.2g})" for n in self._groups)
            print(f"ParameterDriftCallback at {self.num_timesteps} steps: drift {shown}")
        return self.last

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.record()

    def _on_training_end(self) -> None:
        if self._groups:
            self.record()
