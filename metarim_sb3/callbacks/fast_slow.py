"""Fast and slow learning of a RIM policy's parameter groups, as a stable-baselines3 callback.

:class:`FastSlowCallback` steps the optimizer's named parameter groups (:data:`~metarim_sb3.policies.GROUP_NAMES`)
at two time scales. The other callbacks live beside it in
:mod:`metarim_sb3.callbacks`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from torch.nn.utils import clip_grad_norm_
from torch.utils.hooks import RemovableHandle

from metarim_sb3.callbacks._common import check_int, check_real
from metarim_sb3.cores.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES

__all__ = ["DEFAULT_SLOW_FRACTION", "MODES", "OTHERS", "FastSlowCallback", "check_fast_slow_settings"]

LearningRate = float | Callable[[float], float]

#: ``rho = slow_lr / fast_lr`` when neither ``slow_lr`` nor ``slow_fraction`` is given (see :class:`FastSlowCallback`,
#: "Why the slow step is scaled").
DEFAULT_SLOW_FRACTION = 0.1
#: Values of :class:`FastSlowCallback`'s ``mode`` and ``other``.
MODES = ("meta", "reversed", "joint")
OTHERS = ("fast", "slow")

# Hooks registered by a FastSlowCallback, per optimizer: removed by the next one even if a learn() call raised.
_LIVE_HOOKS: weakref.WeakKeyDictionary[th.optim.Optimizer, list[RemovableHandle]] = weakref.WeakKeyDictionary()


def _check_lr(name: str, value: Any) -> LearningRate | None:
    """:return: ``value`` (a Python ``float`` if it is a number) if it is ``None``, a schedule or a number >= 0."""
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    return check_real("FastSlowCallback", name, value, low=0.0)


def check_fast_slow_settings(
    *, mode: str = "meta", other: str = "fast", slow_lr: Any = None, slow_fraction: Any = None
) -> float | None:
    """
    The checks of :class:`FastSlowCallback`'s settings that need no model (its constructor calls it; so does a run
    config's check, so the allowed values live here only).

    :param mode: one of :data:`MODES`.
    :param other: one of :data:`OTHERS`.
    :param slow_lr: the absolute slow learning rate (``None`` if not given).
    :param slow_fraction: the ratio ``rho`` of the slow to the fast learning rate, a number >= 0 (``None`` if not
        given).
    :return: ``slow_fraction`` as a Python ``float`` (``None`` if not given).
    :raises ValueError: on a bad ``mode``, ``other`` or ``slow_fraction``, or if both ``slow_lr`` and
        ``slow_fraction`` are given.
    """
    if mode not in MODES:
        raise ValueError(f"FastSlowCallback: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if other not in OTHERS:
        raise ValueError(f"FastSlowCallback: other must be one of {', '.join(OTHERS)}, got {other!r}")
    if slow_lr is not None and slow_fraction is not None:
        raise ValueError(
            "FastSlowCallback: give slow_lr (an absolute learning rate) or slow_fraction (rho, a ratio of the fast "
            f"learning rate), not both; got slow_lr={slow_lr!r} and slow_fraction={slow_fraction!r}"
        )
    if slow_fraction is None:
        return None
    return check_real("FastSlowCallback", "slow_fraction", slow_fraction, low=0.0)


class FastSlowCallback(BaseCallback):
    """
    Meta-RIMs' fast and slow learning for ``RecurrentPPO`` with :class:`~metarim_sb3.policies.RIMPolicy` (or any
    policy whose optimizer groups are named ``"modules"``, ``"attention"``, ``"other"``)::

        model.learn(100_000, callback=FastSlowCallback(fast_lr=7e-4, slow_fraction=0.1, slow_every=4))

    **Fast groups** are stepped at every PPO gradient step (every minibatch of every epoch) with ``fast_lr``.
    **Slow groups** are stepped once per *meta-sequence* of ``slow_every`` rollouts with ``slow_lr``:

    1. during ``backward``, a post-accumulate-grad hook on each slow parameter adds its gradient to a buffer of the
       callback and sets ``.grad`` to ``None``, so SB3's ``clip_grad_norm_`` sees the fast gradients only and
       Adam skips the slow parameters (their moments and step counts do not move);
    2. an optimizer step pre-hook sets every group's learning rate right before each step (SB3 resets all groups
       to the model's schedule once per ``train()``) and counts the gradient steps;
    3. when the ``train()`` after the ``slow_every``-th rollout has finished (at the next ``on_rollout_start``, or
       at ``on_training_end`` after the last one), the callback sets ``.grad`` of the slow parameters to the
       accumulated sum divided by the number ``n`` of accumulated gradient steps, ``.grad`` of the fast parameters
       to ``None``, clips the slow gradient to the model's ``max_grad_norm``, and calls ``optimizer.step()`` once
       more with the slow groups' learning rate multiplied by ``slow_lr_scale``: only the slow parameters move.
       The buffers are zeroed and a new meta-sequence starts.

    This is a first-order reading of Madan et al. (our choice; the paper publishes no code): the slow update
    uses the gradients of the fast steps' losses at the parameters they were computed at.

    **Why the slow step is scaled** (our choice): Adam moves each weight by about its learning rate per step,
    whatever the gradient's size, so one slow step per meta-sequence at the fast learning rate moves the slow
    group ``n`` times less than the fast one (``n`` = epochs x minibatches x ``slow_every``, 64 with the
    presets): attention trained that way stays at its random initialisation. With ``slow_lr_scale="steps"``
    (default) the one slow step stands for the ``n`` fast steps it averages: its learning rate is
    ``slow_lr * n``, so ``rho = slow_lr / fast_lr`` sets how fast the slow group drifts relative to the fast one.
    Measured (``tests/metarim_sb3/callbacks/test_drift.py``, and the preset sizes on GoTo in the *Fast and slow
    learning* guide): after a few meta-sequences the slow group's relative drift from its initialisation is about
    ``1.2 rho`` to ``2.5 rho`` times the fast RIM group's, in ``meta`` and ``reversed`` modes alike; over whole runs the
    ratio grows (fast steps partly cancel, slow ones less). The default ``rho = 0.1`` (:data:`DEFAULT_SLOW_FRACTION`,
    chosen by the ``calibrate`` sweep, ``results/calibrate``) leaves the slow group at about 0.4-0.5 of the distance it
    moves when trained jointly, after 60k GoTo steps.
    ``slow_lr_scale=1.0`` gives the unscaled step (the behaviour before this option existed).
    :class:`~metarim_sb3.callbacks.drift.ParameterDriftCallback` logs the drift of each group.

    Modes: ``"meta"`` (modules fast, attention slow), ``"reversed"`` (attention fast, modules slow), ``"joint"``
    (every group at every step with ``fast_lr``: vanilla RIMs; identical to training without this callback when
    ``fast_lr`` equals the model's learning rate). ``"other"`` (features extractor, heads) follows the fast
    groups unless ``other="slow"``.

    The callback may be reused for several ``learn()`` calls on the same model: a meta-sequence then carries
    over. A new callback (for instance after ``RecurrentPPO.load`` and ``learn(reset_num_timesteps=False)``), or a
    reused one after a ``learn()`` that raised, starts a new meta-sequence: a half-accumulated slow gradient is
    dropped and the rollout count restarts. The optimizer state (Adam moments of both groups) is saved and loaded
    with the model as usual. Hooks are removed at training end; if ``learn()`` raises they turn inert (they
    check which ``learn()`` call is running) and are removed by the next ``FastSlowCallback`` on that optimizer.

    Logs ``train/lr_fast``, ``train/lr_slow``, ``train/slow_updates`` (total so far) and ``train/grad_norm_<group>``:
    the L2 norm of the gradient the optimizer applied to the group (after clipping), averaged over the gradient
    steps of the last ``train()`` for fast groups, at the last slow update for slow groups. SB3's own
    ``train/learning_rate`` still shows the model's schedule, which this callback overrides.

    :param fast_lr: learning rate of the fast groups: a float or a schedule of ``progress_remaining`` (1 → 0);
        ``None``: the model's own learning-rate schedule.
    :param slow_lr: learning rate of the slow groups, per fast step it stands for (float or schedule), absolute;
        ``None``: ``slow_fraction`` times the fast learning rate. Not used in ``"joint"`` mode.
    :param slow_every: ``K``, rollouts per meta-sequence (one slow update each), ``>= 1``.
    :param slow_lr_scale: multiplier of the slow learning rate at the slow step: ``"steps"`` (the number of fast
        gradient steps accumulated in the meta-sequence) or a positive float (``1.0``: no scaling).
    :param mode: ``"meta"``, ``"reversed"`` or ``"joint"``.
    :param other: ``"fast"`` or ``"slow"``: the time scale of the ``"other"`` group.
    :param verbose: ``2`` prints a line at every slow update.
    :param slow_fraction: ``rho``, the slow learning rate as a ratio of the fast one (a number >= 0): the slow lr is
        ``rho`` times the fast lr at each use (a schedule of the fast lr included), so changing the fast lr keeps the
        ratio. ``None`` (and no ``slow_lr``): :data:`DEFAULT_SLOW_FRACTION`. Not both ``slow_lr`` and
        ``slow_fraction``.

    Paper: Madan, Ke, Goyal, Schölkopf, Bengio, "Fast and Slow Learning of Recurrent Independent Mechanisms",
    arXiv 2105.08710.
    Code: this module (the update schedule is ours, not the paper's; the docs guide *Fast and slow learning* states it).
    """

    MODES = MODES

    def __init__(
        self,
        fast_lr: LearningRate | None = None,
        slow_lr: LearningRate | None = None,
        slow_every: int = 4,
        mode: str = "meta",
        other: str = "fast",
        verbose: int = 0,
        slow_lr_scale: str | float = "steps",
        slow_fraction: float | None = None,
    ) -> None:
        super().__init__(verbose)
        slow_fraction = check_fast_slow_settings(mode=mode, other=other, slow_lr=slow_lr, slow_fraction=slow_fraction)
        fast_lr = _check_lr("fast_lr", fast_lr)
        slow_lr = _check_lr("slow_lr", slow_lr)
        slow_every = check_int("FastSlowCallback", "slow_every", slow_every)
        if isinstance(slow_lr_scale, str):
            if slow_lr_scale != "steps":
                raise ValueError(
                    f"FastSlowCallback: slow_lr_scale must be 'steps' or a positive number, got {slow_lr_scale!r}"
                )
        else:
            slow_lr_scale = check_real("FastSlowCallback", "slow_lr_scale", slow_lr_scale, low=0.0, low_open=True)
        self.fast_lr, self.slow_lr = fast_lr, slow_lr
        #: ``rho``: the slow lr as a ratio of the fast one, used when ``slow_lr`` is ``None``.
        self.slow_fraction = DEFAULT_SLOW_FRACTION if slow_fraction is None else slow_fraction
        self.slow_every, self.mode, self.other = slow_every, mode, other
        self.slow_lr_scale = slow_lr_scale if slow_lr_scale == "steps" else float(slow_lr_scale)
        self._slow_multiplier = 1.0  # slow_lr_scale resolved for the slow step in progress
        #: Slow updates applied so far by this callback.
        self.slow_updates = 0
        self._optimizer: th.optim.Optimizer | None = None
        self._fast: list[tuple[str, dict[str, Any]]] = []
        self._slow: list[tuple[str, dict[str, Any]]] = []
        self._fast_params: list[th.nn.Parameter] = []
        self._slow_params: list[th.nn.Parameter] = []
        self._acc: list[th.Tensor] = []
        self._acc_steps = 0  # PPO gradient steps accumulated in the current meta-sequence
        self._rollouts = 0  # rollouts of the current meta-sequence (each followed by a train())
        self._train_pending = False
        self._train_steps = 0
        self._norm_sums: dict[str, th.Tensor] = {}
        self._in_slow_step = False
        self._active = False
        self._token: object = None
        self._restore: dict[str, Any] | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def slow_group_names(self) -> tuple[str, ...]:
        """Names of the slow groups in this configuration (empty in ``"joint"`` mode)."""
        if self.mode == "joint":
            return ()
        names = [ATTENTION if self.mode == "meta" else MODULES]
        return (*names, OTHER) if self.other == "slow" else tuple(names)

    def check_model(self, model: Any) -> None:
        """
        Check, before training, that the callback can work with ``model`` (what ``learn()`` would check at its start).

        :param model: a ``RecurrentPPO`` model.
        :raises ValueError: if its optimizer lacks the groups the mode needs, or the slow or fast side is empty.
        """
        fast, slow = self._fast, self._slow
        fast_params, slow_params = self._fast_params, self._slow_params
        try:
            self._split_groups(model.policy.optimizer)
        finally:
            self._fast, self._slow, self._fast_params, self._slow_params = fast, slow, fast_params, slow_params

    def _split_groups(self, optimizer: th.optim.Optimizer) -> None:
        groups = optimizer.param_groups
        names = [g.get("name") for g in groups]
        slow_names = self.slow_group_names
        if self.mode != "joint":
            needed = ROLE_NAMES
            missing = [n for n in needed if n not in names]
            if missing:
                raise ValueError(
                    f"FastSlowCallback: mode={self.mode!r} needs optimizer param groups named {needed} (as RIMPolicy "
                    f"builds them); the policy's optimizer has groups {names}, missing {missing}"
                )
        self._fast, self._slow = [], []
        for i, group in enumerate(groups):
            name = group.get("name") or f"group{i}"
            (self._slow if name in slow_names else self._fast).append((name, group))
        self._fast_params = [p for _, g in self._fast for p in g["params"]]
        self._slow_params = [p for _, g in self._slow for p in g["params"]]
        if self.mode != "joint":
            for side, params, group_names in (
                ("slow", self._slow_params, slow_names),
                ("fast", self._fast_params, [n for n, _ in self._fast]),
            ):
                if not params:
                    raise ValueError(
                        f"FastSlowCallback: mode={self.mode!r}, other={self.other!r}: the {side} groups "
                        f"{list(group_names)} have no parameters (an LSTM policy has no attention); "
                        "use mode='joint' or other='slow'"
                    )

    def _lr(self, name: str, value: LearningRate | None, fallback: Callable[[float], float]) -> float:
        progress = self.model._current_progress_remaining
        lr = fallback(progress) if value is None else value(progress) if callable(value) else value
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"FastSlowCallback: {name} gave {lr!r} at progress_remaining={progress}; must be >= 0")
        return lr

    def current_lrs(self) -> tuple[float, float]:
        """
        The learning rates the groups get now.

        :return: ``(fast, slow)``; in ``"joint"`` mode both are the fast one.
        """
        fast = self._lr("fast_lr", self.fast_lr, self.model.lr_schedule)
        if self.mode == "joint":
            return fast, fast
        return fast, self._lr("slow_lr", self.slow_lr, lambda _: self.slow_fraction * fast)

    def _on_training_start(self) -> None:
        optimizer = self.model.policy.optimizer
        old_slow = self._slow_params
        interrupted = self._active  # on_training_end did not run: the previous learn() raised
        self._split_groups(optimizer)
        self.current_lrs()  # validates the schedules now rather than inside train()
        for handle in _LIVE_HOOKS.pop(optimizer, []):
            handle.remove()
        same = len(old_slow) == len(self._slow_params) and all(
            a is b for a, b in zip(old_slow, self._slow_params, strict=False)
        )
        if interrupted or not same or optimizer is not self._optimizer:
            self._acc = [th.zeros_like(p, memory_format=th.preserve_format) for p in self._slow_params]
            self._acc_steps = self._rollouts = 0
        restore, self._restore = self._restore, None
        if restore is not None:
            shapes = [tuple(t.shape) for t in restore["acc"]]
            if shapes != [tuple(p.shape) for p in self._slow_params]:
                raise ValueError(
                    f"FastSlowCallback: the loaded state accumulates {len(shapes)} slow tensors of shapes {shapes}; "
                    f"the model's slow groups {list(self.slow_group_names)} do not match (another mode or policy?)"
                )
            pairs = zip(restore["acc"], self._slow_params, strict=True)
            self._acc = [t.to(device=p.device, dtype=p.dtype).clone() for t, p in pairs]
            self._acc_steps, self._rollouts = int(restore["acc_steps"]), int(restore["rollouts"])
        self._optimizer = optimizer
        self._train_pending, self._train_steps, self._in_slow_step = False, 0, False
        self._norm_sums = {}
        handles = [optimizer.register_step_pre_hook(self._pre_step)]
        for index, param in enumerate(self._slow_params):
            if param.requires_grad:
                handles.append(param.register_post_accumulate_grad_hook(self._make_grab(index)))
        _LIVE_HOOKS[optimizer] = handles
        self._token = self.model.start_time  # set anew by every learn() call
        self._active = True

    def _live(self) -> bool:
        return self._active and self.model.start_time == self._token

    def state_dict(self) -> dict[str, Any]:
        """
        :return: the current meta-sequence (the accumulated slow gradient as CPU tensors, its gradient-step and
            rollout counts) and the slow-update count: a checkpoint stores it so that a resumed run finishes the
            same meta-sequence. Take it between rollouts (e.g. in a later callback's ``on_rollout_start``).
        """
        return {
            "acc": [t.detach().cpu().clone() for t in self._acc],
            "acc_steps": self._acc_steps,
            "rollouts": self._rollouts,
            "slow_updates": self.slow_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """
        Continue a meta-sequence from a :meth:`state_dict` at the next ``learn()`` (on a model with the same slow
        groups, e.g. the model loaded from the checkpoint that stored it).

        :param state: a :meth:`state_dict`.
        """
        self._restore = {"acc": list(state["acc"]), "acc_steps": state["acc_steps"], "rollouts": state["rollouts"]}
        self.slow_updates = int(state.get("slow_updates", self.slow_updates))

    # ------------------------------------------------------------------ hooks
    def _make_grab(self, index: int) -> Callable[[th.Tensor], None]:
        def grab(param: th.Tensor) -> None:
            if self._in_slow_step or not self._live() or param.grad is None:
                return
            self._acc[index].add_(param.grad)
            param.grad = None

        return grab

    def _pre_step(self, optimizer: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._live():
            return
        lr_fast, lr_slow = self.current_lrs()
        for _, group in self._fast:
            group["lr"] = lr_fast
        for _, group in self._slow:
            group["lr"] = lr_slow * self._slow_multiplier if self._in_slow_step else lr_slow
        if self._in_slow_step:
            return
        self._train_steps += 1
        if self._slow:
            self._acc_steps += 1
        self._add_norms(self._fast)

    def _add_norms(self, groups: list[tuple[str, dict[str, Any]]]) -> None:
        with th.no_grad():
            for name, group in groups:
                grads = [p.grad for p in group["params"] if p.grad is not None]
                if grads:
                    norm = th.linalg.vector_norm(th.stack(th._foreach_norm(grads)))
                    self._norm_sums[name] = self._norm_sums[name] + norm if name in self._norm_sums else norm

    # ------------------------------------------------------------------ rollout boundaries
    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self._rollouts += 1
        self._train_pending = True  # SB3 calls train() right after this

    def _on_rollout_start(self) -> None:
        self._after_train()

    def _on_training_end(self) -> None:
        try:
            if self._live():
                self._after_train()
        finally:
            for handle in _LIVE_HOOKS.pop(self._optimizer, []) if self._optimizer is not None else []:
                handle.remove()
            self._active = False

    def _after_train(self) -> None:
        if not self._train_pending:
            return
        self._train_pending = False
        lr_fast, lr_slow = self.current_lrs()
        self.logger.record("train/lr_fast", lr_fast)
        self.logger.record("train/lr_slow", lr_slow)
        if self._train_steps:
            for name, total in self._norm_sums.items():
                self.logger.record(f"train/grad_norm_{name}", total.item() / self._train_steps)
        self._norm_sums, self._train_steps = {}, 0
        if self._slow and self._rollouts >= self.slow_every:
            self._slow_update()
        self.logger.record("train/slow_updates", self.slow_updates)

    def _slow_update(self) -> None:
        """Apply the averaged accumulated gradient to the slow groups with one dedicated optimizer step."""
        steps, self._acc_steps, self._rollouts = self._acc_steps, 0, 0
        if steps == 0:  # e.g. target_kl stopped every train() before its first step
            return
        assert self._optimizer is not None
        for param in self._fast_params:
            param.grad = None
        with th.no_grad():
            for param, acc in zip(self._slow_params, self._acc, strict=True):
                param.grad = acc / steps
                acc.zero_()
            max_norm = getattr(self.model, "max_grad_norm", None)
            if max_norm is not None:
                clip_grad_norm_(self._slow_params, max_norm)
        self._norm_sums = {}
        self._add_norms(self._slow)
        for name, norm in self._norm_sums.items():
            self.logger.record(f"train/grad_norm_{name}", norm.item())
        self._norm_sums = {}
        self._slow_multiplier = float(steps) if self.slow_lr_scale == "steps" else float(self.slow_lr_scale)
        self._in_slow_step = True
        try:
            self._optimizer.step()
        finally:
            self._in_slow_step = False
            for param in self._slow_params:
                param.grad = None
        self.slow_updates += 1
        if self.verbose >= 2:
            print(
                f"FastSlowCallback: slow update {self.slow_updates} at {self.model.num_timesteps} steps ({steps} grads)"
            )
