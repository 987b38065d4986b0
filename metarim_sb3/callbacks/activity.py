"""Which RIM units are active on which task: a callback that records the units' activation masks in rollouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from torch.utils.hooks import RemovableHandle

from metarim_sb3.callbacks._common import log_path, write_csv
from metarim_sb3.cores.rim import RIM

__all__ = ["UnitActivityCallback"]


def _is_rim_core(core: object) -> bool:
    return isinstance(core, RIM)


class UnitActivityCallback(BaseCallback):
    """
    Records how often each RIM unit is active, overall and per task, during rollout collection.

    A forward hook on the policy module fires at every rollout step (``RecurrentPPO`` calls ``policy(obs, ...)``
    there, and nowhere else: ``predict()``, evaluation and training use other methods) and reads each RIM core's
    ``last_active`` mask, shape ``(1, n_envs, n_units)``; ``_on_step`` pairs it with ``info["task"]`` of the
    same step. The masks of a rollout are stacked and counted with one ``index_add_`` per core at rollout end, so
    the per-step cost is a few list appends.

    Logs ``rim/active_fraction/unit_<i>`` (actor core) and ``rim_critic/active_fraction/unit_<i>`` (critic core,
    if it is a RIM): the fraction of the last rollout's steps on which unit ``i`` was active. At training end
    writes ``<log_dir>/<file_name>.csv`` (one row per core and task, plus ``all``: ``core, task, steps,
    unit_0 .. unit_<N-1>``) and ``<log_dir>/<file_name>.npz`` (``tasks``, ``steps`` per task, and per core
    ``<core>_fraction`` of shape ``(n_tasks, n_units)`` and ``<core>_overall`` of shape ``(n_units,)``). Each
    row of a fraction matrix sums to ``k``. Counts accumulate over every ``learn()`` call the callback is used in.

    :param log_dir: folder of the files; ``None``: the model logger's folder (no files if it has none).
    :param file_name: base name of the ``.csv`` and ``.npz`` files.
    :param verbose: ``1`` prints where the files were written.
    """

    def __init__(self, log_dir: str | None = None, file_name: str = "rim_activity", verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"UnitActivityCallback: file_name must be a non-empty string, got {file_name!r}")
        self.log_dir, self.file_name = log_dir, file_name
        #: Task names, in order of first appearance (the rows of :meth:`activation_matrix`).
        self.tasks: list[str] = []
        self._task_ids: dict[str, int] = {}
        self._cores: dict[str, RIM] = {}  # name -> RIM core
        self._counts: dict[str, th.Tensor] = {}  # core -> (n_tasks, n_units) int64 active-step counts
        self._task_steps = np.zeros(0, dtype=np.int64)
        self._pending: dict[str, th.Tensor] = {}
        self._masks: dict[str, list[th.Tensor]] = {}
        self._rows: list[list[int]] = []
        self._n_envs = 0
        self._collecting = False
        self._handle: RemovableHandle | None = None
        #: Paths of the files written at the last training end (``None`` before).
        self.csv_path: str | None = None
        self.npz_path: str | None = None

    @staticmethod
    def _rim_cores(model: Any) -> dict[str, Any]:
        policy = model.policy
        actor: Any = getattr(policy, "lstm_actor", None)
        critic: Any = getattr(policy, "lstm_critic", None)
        if not _is_rim_core(actor):
            raise ValueError(
                "UnitActivityCallback needs a policy with a RIM core (policy.lstm_actor with last_active, n_units "
                f"and k, e.g. RIMPolicy); got {type(actor).__name__} in {type(policy).__name__}"
            )
        return {"actor": actor} if not _is_rim_core(critic) else {"actor": actor, "critic": critic}

    def check_model(self, model: Any) -> None:
        """
        Check, before training, that the callback can work with ``model`` (what ``learn()`` would check at its start).

        :param model: a ``RecurrentPPO`` model.
        :raises ValueError: if its policy has no RIM core.
        """
        self._rim_cores(model)

    def _on_training_start(self) -> None:
        policy = self.model.policy
        cores = self._rim_cores(self.model)
        shapes = {name: (core.n_units, core.k) for name, core in cores.items()}
        if shapes != {name: (c.n_units, c.k) for name, c in self._cores.items()}:
            self._counts = {name: th.zeros(0, core.n_units, dtype=th.int64) for name, core in cores.items()}
            self.tasks, self._task_ids, self._task_steps = [], {}, np.zeros(0, dtype=np.int64)
        self._cores = cores
        self._n_envs = self.training_env.num_envs
        self._pending, self._rows = {}, []
        self._masks = {name: [] for name in cores}
        if self._handle is not None:
            self._handle.remove()
        self._handle = policy.register_forward_hook(self._grab)

    def _grab(self, module: nn.Module, args: Any, output: Any) -> None:
        if not self._collecting:
            return
        for name, core in self._cores.items():
            mask = core.last_active
            if mask is not None and mask.shape[0] == 1 and mask.shape[1] == self._n_envs:
                self._pending[name] = mask[0]

    def _on_rollout_start(self) -> None:
        self._collecting = True

    def _task_id(self, name: str) -> int:
        index = self._task_ids.get(name)
        if index is None:
            index = self._task_ids[name] = len(self.tasks)
            self.tasks.append(name)
        return index

    def _on_step(self) -> bool:
        pending, self._pending = self._pending, {}
        if len(pending) == len(self._cores):
            self._rows.append([self._task_id(str(info.get("task", ""))) for info in self.locals["infos"]])
            for name, mask in pending.items():
                self._masks[name].append(mask)
        return True

    def _flush(self) -> dict[str, th.Tensor]:
        """Count the buffered masks; return each core's per-unit active fraction over them."""
        if not self._rows:
            return {}
        n_tasks = len(self.tasks)
        index = th.tensor(self._rows, dtype=th.int64).reshape(-1)
        grown = np.zeros(n_tasks, dtype=np.int64)
        grown[: len(self._task_steps)] = self._task_steps
        self._task_steps = grown + np.bincount(index.numpy(), minlength=n_tasks)
        fractions = {}
        for name, masks in self._masks.items():
            flat = th.stack(masks).reshape(index.numel(), -1).to("cpu", th.int64)
            counts = self._counts[name]
            if counts.shape[0] < n_tasks:
                counts = th.cat((counts, counts.new_zeros(n_tasks - counts.shape[0], counts.shape[1])))
            self._counts[name] = counts.index_add_(0, index, flat)
            fractions[name] = flat.sum(0) / flat.shape[0]
            masks.clear()
        self._rows = []
        return fractions

    def _on_rollout_end(self) -> None:
        self._collecting = False
        for name, fraction in self._flush().items():
            prefix = "rim" if name == "actor" else f"rim_{name}"
            for unit, value in enumerate(fraction.tolist()):
                self.logger.record(f"{prefix}/active_fraction/unit_{unit}", value)

    def activation_matrix(self, core: str = "actor") -> tuple[list[str], np.ndarray]:
        """
        The task × unit activation matrix so far.

        :param core: ``"actor"`` or ``"critic"``.
        :return: the task names and an array ``(n_tasks, n_units)``: the fraction of that task's recorded steps
            (summed over environments) on which each unit was active. Each row sums to the core's ``k``.
        """
        if core not in self._counts:
            raise ValueError(f"UnitActivityCallback: no recorded core {core!r}; have {sorted(self._counts)}")
        counts = self._counts[core].numpy().astype(np.float64)
        steps = self._task_steps[: counts.shape[0]].astype(np.float64)
        return list(self.tasks), counts / np.maximum(steps, 1.0)[:, None]

    def overall_fraction(self, core: str = "actor") -> np.ndarray:
        """
        :param core: ``"actor"`` or ``"critic"``.
        :return: ``(n_units,)``: the fraction of all recorded steps on which each unit was active.
        """
        _, matrix = self.activation_matrix(core)
        steps = self._task_steps[: matrix.shape[0]]
        return (matrix * steps[:, None]).sum(0) / max(int(steps.sum()), 1)

    def _on_training_end(self) -> None:
        self._collecting = False
        self._flush()
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if not self._counts:
            return
        csv_path = log_path(self.log_dir, self.logger, f"{self.file_name}.csv")
        if csv_path is None:
            return
        self.csv_path, self.npz_path = csv_path, csv_path[: -len(".csv")] + ".npz"
        arrays: dict[str, np.ndarray] = {"tasks": np.array(self.tasks, dtype=str), "steps": self._task_steps}
        n_units = next(iter(self._counts.values())).shape[1]
        rows: list[list[Any]] = []
        for core in self._counts:
            tasks, matrix = self.activation_matrix(core)
            overall = self.overall_fraction(core)
            arrays[f"{core}_fraction"], arrays[f"{core}_overall"] = matrix, overall
            for task, steps, row in zip(tasks, self._task_steps.tolist(), matrix.tolist(), strict=True):
                rows.append([core, task, steps, *row])
            rows.append([core, "all", int(self._task_steps.sum()), *overall.tolist()])
        write_csv(csv_path, [["core", "task", "steps", *(f"unit_{i}" for i in range(n_units))], *rows])
        np.savez(self.npz_path, **arrays)  # type: ignore[arg-type]
        if self.verbose >= 1:
            print(f"UnitActivityCallback: wrote {self.csv_path} and {self.npz_path}")
