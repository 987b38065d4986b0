"""The PPO update of ``S`` seeds at once, each seed's statistics its own.

:func:`train_seed_batch` is ``ChunkedRecurrentPPO.train()`` (sb3-contrib's ``RecurrentPPO.train`` over the chunked
buffers of :mod:`metarim_sb3.ppo.buffers`) for a :class:`~metarim_sb3.seed_batch.policy.SeedBatchPolicy`, with the
:class:`~metarim_sb3.callbacks.fast_slow.FastSlowCallback` schedule folded in (:class:`SeedFastSlow`). Nothing
statistical is shared between seeds:

* each seed's minibatch order comes from its own ``numpy.random.RandomState`` (drawn as the chunked buffer draws
  from numpy's global one, so a stream seeded like a separate run's global state gives that run's order);
* advantages are normalised per seed; the loss of seed ``s`` is its own (the total is their sum, whose gradient
  with respect to seed ``s``'s parameter slices is seed ``s``'s gradient);
* gradients are clipped per seed (each seed's slices of the gradients scaled by its own factor);
* :class:`SeedAdam` keeps Adam's moments and step counts per seed and steps only the seeds told to;
* the ``target_kl`` early stop, the slow gradient accumulation and its step counts are per seed.

Only the chunked layout (fixed-length chunks, no padding) is supported: every seed's minibatches have one shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from torch import Tensor, nn

from metarim_sb3.callbacks.fast_slow import DEFAULT_SLOW_FRACTION
from metarim_sb3.cores.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES
from metarim_sb3.seed_batch.policy import SeedBatchPolicy

__all__ = ["PPOSettings", "SeedAdam", "SeedFastSlow", "SeedRollout", "clip_grad_norm_per_seed", "train_seed_batch"]

Schedule = Callable[[float], float]


def _env_major(a: np.ndarray) -> np.ndarray:
    """``[n_steps, n_envs, ...]`` -> ``[n_envs * n_steps, ...]`` (flat index ``env * n_steps + t``, as SB3)."""
    return a.swapaxes(0, 1).reshape(a.shape[0] * a.shape[1], *a.shape[2:])


@dataclass
class SeedRollout:
    """One rollout of every seed, flattened env-major (``N = n_envs * n_steps``), each tensor ``[S, N, ...]``.

    :param observations: raw observations (a Dict of tensors or one tensor).
    :param actions: action indices ``[S, N]``.
    :param values: values at collection ``[S, N]``.
    :param log_probs: log-probabilities at collection ``[S, N]``.
    :param advantages: GAE advantages ``[S, N]``.
    :param returns: returns ``[S, N]``.
    :param episode_starts: ``[S, N]``.
    :param states: stored actor and critic ``(h, c)`` before each step, each ``[S, N, hidden]``.
    :param n_steps: steps per environment (chunks never cross environments).
    """

    observations: Tensor | dict[str, Tensor]
    actions: Tensor
    values: Tensor
    log_probs: Tensor
    advantages: Tensor
    returns: Tensor
    episode_starts: Tensor
    states: RNNStates
    n_steps: int

    @classmethod
    def from_buffers(cls, buffers: Sequence[Any]) -> SeedRollout:
        """Stack full sb3-contrib recurrent rollout buffers (one per seed, returns computed, not yet read).

        :param buffers: ``RecurrentRolloutBuffer`` or ``RecurrentDictRolloutBuffer`` (chunked or not), one layer.
        :return: the stacked rollout (the buffers are not modified).
        """

        def stack(get: Callable[[Any], np.ndarray]) -> Tensor:
            return torch.as_tensor(np.stack([_env_major(get(b)) for b in buffers]))

        first = buffers[0]

        def key_getter(key: str) -> Callable[[Any], np.ndarray]:
            return lambda b: b.observations[key]  # type: ignore[no-any-return]

        if isinstance(first.observations, dict):
            observations: Tensor | dict[str, Tensor] = {k: stack(key_getter(k)) for k in first.observations}
        else:
            observations = stack(lambda b: b.observations)

        def state(name: str) -> Tensor:  # [n_steps, 1, n_envs, H] -> [S, N, H]
            return stack(lambda b: getattr(b, name)[:, 0])

        return cls(
            observations=observations,
            actions=stack(lambda b: b.actions).reshape(len(buffers), -1),
            values=stack(lambda b: b.values),
            log_probs=stack(lambda b: b.log_probs),
            advantages=stack(lambda b: b.advantages),
            returns=stack(lambda b: b.returns),
            episode_starts=stack(lambda b: b.episode_starts),
            states=RNNStates(
                (state("hidden_states_pi"), state("cell_states_pi")),
                (state("hidden_states_vf"), state("cell_states_vf")),
            ),
            n_steps=first.buffer_size,
        )


@dataclass
class PPOSettings:
    """The PPO settings of ``ChunkedRecurrentPPO`` that the update reads (same meanings and defaults).

    :param learning_rate: a float or a schedule of ``progress_remaining``.
    :param n_epochs: epochs over the rollout.
    :param batch_size: samples per minibatch (whole chunks).
    :param chunk_len: steps per chunk.
    :param clip_range: PPO's clip range.
    :param ent_coef: entropy coefficient.
    :param vf_coef: value-loss coefficient.
    :param max_grad_norm: per-seed gradient clipping norm.
    :param target_kl: per-seed early stop, or ``None``.
    :param normalize_advantage: normalise advantages per minibatch (per seed).
    """

    learning_rate: float | Schedule = 3e-4
    n_epochs: int = 10
    batch_size: int = 128
    chunk_len: int = 32
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    normalize_advantage: bool = True

    def lr(self, progress_remaining: float) -> float:
        """:return: the learning rate at ``progress_remaining``."""
        lr = self.learning_rate
        return float(lr(progress_remaining) if callable(lr) else lr)


def clip_grad_norm_per_seed(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each seed on its own: seed ``s``'s norm is over the ``[s]`` slices of
    the gradients, and only those slices are scaled.

    :param params: stacked parameters ``[S, ...]`` (those without a gradient are skipped).
    :param max_norm: the norm each seed is clipped to.
    :return: each seed's total norm before clipping ``[S]``.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # [n_params, S]
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return total


class SeedAdam:
    """Adam (as ``torch.optim.Adam``, no weight decay, no AMSGrad) over stacked parameters, every statistic per seed.

    Each parameter keeps its moments ``[S, ...]`` and a step count per seed ``[S]``; :meth:`step` takes a learning
    rate per seed and the seeds to step, so seeds that stopped early or accumulate elsewhere do not move. Parameters
    without a gradient are skipped (their moments and step counts stay), as ``torch.optim.Adam`` does.

    :param policy: the seed-batched policy; its groups are :meth:`SeedBatchPolicy.param_groups_by_name
        <metarim_sb3.seed_batch.policy.SeedBatchPolicy.param_groups_by_name>`.
    :param betas: Adam's ``(beta1, beta2)``.
    :param eps: Adam's epsilon (SB3's policies use ``1e-5``).
    """

    def __init__(self, policy: SeedBatchPolicy, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5) -> None:
        self.groups = policy.param_groups_by_name()
        self.betas, self.eps = betas, eps
        self.state: dict[int, dict[str, Tensor]] = {}
        self._names = {id(p): n for n, p in policy.named_parameters()}

    @classmethod
    def from_optimizers(
        cls, policy: SeedBatchPolicy, optimizers: Sequence[torch.optim.Optimizer], policies: Sequence[nn.Module]
    ) -> SeedAdam:
        """The per-seed Adam of ``S`` ordinary policies' optimizers (settings and states; seed ``s`` from
        ``optimizers[s]``).

        :param policy: the seed-batched policy carrying ``policies``' weights.
        :param optimizers: ``S`` ``torch.optim.Adam`` (no weight decay, no AMSGrad), one per policy.
        :param policies: the ordinary policies.
        :return: the optimizer.
        :raises ValueError: for another optimizer or setting.
        """
        group = optimizers[0].param_groups[0]
        if (
            not all(type(o) is torch.optim.Adam for o in optimizers)
            or group.get("weight_decay")
            or group.get("amsgrad")
        ):
            raise ValueError("SeedAdam: only torch.optim.Adam without weight decay or AMSGrad")
        adam = cls(policy, betas=tuple(group["betas"]), eps=float(group["eps"]))  # type: ignore[arg-type]
        adam.load_torch_states(optimizers, policies)
        return adam

    def _state(self, p: Tensor) -> dict[str, Tensor]:
        st = self.state.get(id(p))
        if st is None:
            st = self.state[id(p)] = {
                "step": torch.zeros(p.shape[0], dtype=p.dtype, device=p.device),
                "exp_avg": torch.zeros_like(p),
                "exp_avg_sq": torch.zeros_like(p),
            }
        return st

    @torch.no_grad()
    def step(self, names: Sequence[str], lr: Tensor, seeds: Tensor | None = None) -> None:
        """One Adam step of the named groups.

        :param names: the groups to step.
        :param lr: the learning rate of each seed ``[S]``.
        :param seeds: ``[S]`` booleans, the seeds to step; ``None``: all.
        """
        beta1, beta2 = self.betas
        if seeds is None:
            self._step_all([p for name in names for p in self.groups[name] if p.grad is not None], lr)
            return
        for name in names:
            for p in self.groups[name]:
                if p.grad is None:
                    continue
                st, grad = self._state(p), p.grad
                shape = (-1, *([1] * (p.dim() - 1)))
                mask = None if seeds is None else seeds.view(shape)
                step = st["step"] + (1 if seeds is None else seeds.to(p.dtype))
                exp_avg = torch.lerp(st["exp_avg"], grad, 1 - beta1)
                exp_avg_sq = st["exp_avg_sq"] * beta2 + (1 - beta2) * grad * grad
                bias1 = 1 - beta1 ** step.clamp(min=1)
                bias2_sqrt = (1 - beta2 ** step.clamp(min=1)).sqrt()
                denom = exp_avg_sq.sqrt() / bias2_sqrt.view(shape) + self.eps
                new_p = p - (lr.to(p.dtype) / bias1).view(shape) * exp_avg / denom
                if mask is None:
                    st["exp_avg"], st["exp_avg_sq"] = exp_avg, exp_avg_sq
                    p.copy_(new_p)
                else:
                    st["exp_avg"] = torch.where(mask, exp_avg, st["exp_avg"])
                    st["exp_avg_sq"] = torch.where(mask, exp_avg_sq, st["exp_avg_sq"])
                    p.copy_(torch.where(mask, new_p, p))
                st["step"] = step

    def _step_all(self, params: Sequence[Tensor], lr: Tensor) -> None:
        """:meth:`step` with every seed stepping: the same arithmetic, as ``torch._foreach_*`` ops over all the
        parameters at once (a few dozen kernel calls instead of about fifteen per parameter)."""
        if not params:
            return
        beta1, beta2 = self.betas
        states = [self._state(p) for p in params]
        grads = [p.grad for p in params]
        exp_avgs = [st["exp_avg"] for st in states]
        exp_avg_sqs = [st["exp_avg_sq"] for st in states]
        steps = torch.stack([st["step"] for st in states]) + 1  # [n_params, S]
        for st, step in zip(states, steps, strict=True):
            st["step"] = step
        bias1 = 1 - beta1**steps
        bias2_sqrt = (1 - beta2**steps).sqrt()
        step_size = lr.to(steps.dtype) / bias1
        shapes = [(-1, *([1] * (p.dim() - 1))) for p in params]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # type: ignore[arg-type]
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)  # type: ignore[arg-type]
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, [b.view(sh) for b, sh in zip(bias2_sqrt, shapes, strict=True)])
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(exp_avgs, denom)
        torch._foreach_mul_(update, [v.view(sh) for v, sh in zip(step_size, shapes, strict=True)])
        torch._foreach_sub_(list(params), update)

    def load_torch_states(self, optimizers: Sequence[torch.optim.Optimizer], policies: Sequence[nn.Module]) -> None:
        """Take seed ``s``'s moments and step counts from ``optimizers[s]``, the Adam of ``policies[s]``.

        :param optimizers: ``S`` ``torch.optim.Adam`` over the ordinary policies' parameters.
        :param policies: the ordinary policies (parameter names match the batched policy's).
        """
        named = [dict(pol.named_parameters()) for pol in policies]
        for group in self.groups.values():
            for p in group:
                name = self._names[id(p)]
                for s, (opt, params) in enumerate(zip(optimizers, named, strict=True)):
                    theirs = opt.state.get(params[name])
                    if not theirs:
                        continue
                    st = self._state(p)
                    st["step"][s] = float(theirs["step"])
                    st["exp_avg"][s].copy_(theirs["exp_avg"])
                    st["exp_avg_sq"][s].copy_(theirs["exp_avg_sq"])


@dataclass
class SeedFastSlow:
    """:class:`~metarim_sb3.callbacks.fast_slow.FastSlowCallback`'s schedule for ``S`` seeds, its state per seed.

    Same arguments and meanings (``fast_lr``/``slow_lr`` floats or schedules, ``slow_fraction`` the ratio rho of the
    slow to the fast rate, ``None`` for the defaults); the
    accumulated slow gradient, its gradient-step count and the rollout count are kept per seed.
    """

    mode: str = "meta"
    other: str = "fast"
    slow_every: int = 4
    fast_lr: float | Schedule | None = None
    slow_lr: float | Schedule | None = None
    slow_lr_scale: str | float = "steps"
    slow_fraction: float | None = None
    acc: dict[int, Tensor] = field(default_factory=dict)
    acc_steps: Tensor | None = None
    rollouts: int = 0
    slow_updates: int = 0

    @property
    def slow_names(self) -> tuple[str, ...]:
        """The slow groups (empty in ``"joint"`` mode)."""
        if self.mode == "joint":
            return ()
        names = (ATTENTION if self.mode == "meta" else MODULES,)
        return (*names, OTHER) if self.other == "slow" else names

    def lrs(self, model_lr: Schedule, progress: float) -> tuple[float, float]:
        """:return: ``(fast, slow)`` learning rates at ``progress`` (as the callback's ``current_lrs``)."""

        def value(v: float | Schedule | None, fallback: float) -> float:
            return fallback if v is None else float(v(progress) if callable(v) else v)

        fast = value(self.fast_lr, model_lr(progress))
        rho = DEFAULT_SLOW_FRACTION if self.slow_fraction is None else self.slow_fraction
        return (fast, fast) if self.mode == "joint" else (fast, value(self.slow_lr, rho * fast))


def _gather(x: Tensor, idx: Tensor) -> Tensor:
    """``x[s, idx[s]]`` for every seed: ``[S, N, ...]``, ``[S, M]`` -> ``[S, M, ...]``."""
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), idx]


def train_seed_batch(
    policy: SeedBatchPolicy,
    optimizer: SeedAdam,
    rollout: SeedRollout,
    rngs: Sequence[np.random.RandomState],
    settings: PPOSettings,
    progress_remaining: float = 1.0,
    fast_slow: SeedFastSlow | None = None,
) -> dict[str, np.ndarray]:
    """One ``train()`` of every seed on its rollout (``ChunkedRecurrentPPO.train`` with the fast/slow schedule).

    :param policy: the seed-batched policy.
    :param optimizer: its :class:`SeedAdam`, groups named by :data:`~metarim_sb3.cores.protocol.ROLE_NAMES`.
    :param rollout: one rollout per seed.
    :param rngs: one ``RandomState`` per seed, drawing its minibatch order.
    :param settings: the PPO settings.
    :param progress_remaining: SB3's ``progress_remaining`` (for schedules).
    :param fast_slow: the fast/slow schedule, or ``None`` (every group at every step, the model's learning rate).
    :return: per-seed statistics, each ``[S]`` (``policy_gradient_loss``, ``value_loss``, ``entropy_loss``,
        ``clip_fraction``: means over the seed's gradient steps, as SB3 logs them; ``n_grad_steps``: their count;
        ``approx_kl``: the mean over the seed's last epoch, its stopping minibatch included), and ``grad_norms``
        ``[steps, S]``: each step's fast-group gradient norm after clipping.
    """
    s_count, n_total = rollout.actions.shape
    chunk, per_batch = settings.chunk_len, max(1, settings.batch_size // settings.chunk_len)
    if n_total % chunk or rollout.n_steps % chunk:
        raise ValueError(f"chunk_len={chunk} must divide n_steps={rollout.n_steps}")
    model_lr: Schedule = settings.lr
    slow = fast_slow.slow_names if fast_slow is not None else ()
    fast = [n for n in ROLE_NAMES if n not in slow]
    lr_fast, lr_slow = fast_slow.lrs(model_lr, progress_remaining) if fast_slow else (model_lr(progress_remaining),) * 2
    groups = optimizer.groups
    fast_params = [p for n in fast for p in groups[n]]
    slow_params = [p for n in slow for p in groups[n]]
    if fast_slow is not None and fast_slow.acc_steps is None:
        fast_slow.acc_steps = torch.zeros(s_count, dtype=torch.long)
    active = torch.ones(s_count, dtype=torch.bool)
    stats: dict[str, list[Tensor]] = {k: [] for k in ("pg", "vf", "ent", "clip", "norm", "steps")}
    approx_kl = torch.zeros(s_count)
    offsets = torch.arange(chunk)
    lr_t = torch.full((s_count,), lr_fast)
    for _ in range(settings.n_epochs):
        starts = torch.as_tensor(np.stack([rng.permutation(n_total // chunk) * chunk for rng in rngs]))
        kl_sum, kl_n = torch.zeros(s_count), torch.zeros(s_count)  # this epoch's, over each seed's own steps
        for first in range(0, starts.shape[1], per_batch):
            chunk_starts = starts[:, first : first + per_batch]  # [S, n_chunks]
            idx = (chunk_starts.unsqueeze(-1) + offsets).reshape(s_count, -1)
            obs = rollout.observations
            mb_obs = {k: _gather(v, idx) for k, v in obs.items()} if isinstance(obs, dict) else _gather(obs, idx)

            def at_starts(t: Tensor, cs: Tensor = chunk_starts) -> Tensor:
                return _gather(t, cs).unsqueeze(1)  # [S, 1, n_chunks, H]

            st = rollout.states
            states = RNNStates((at_starts(st.pi[0]), at_starts(st.pi[1])), (at_starts(st.vf[0]), at_starts(st.vf[1])))
            values, log_prob, entropy = policy.evaluate_actions(
                mb_obs, _gather(rollout.actions, idx), states, _gather(rollout.episode_starts, idx).float()
            )
            adv = _gather(rollout.advantages, idx)
            if settings.normalize_advantage:
                adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
            old_log_prob = _gather(rollout.log_probs, idx)
            ratio = torch.exp(log_prob - old_log_prob)
            clip = settings.clip_range
            pg = -torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean(1)
            vf = ((_gather(rollout.returns, idx) - values) ** 2).mean(1)
            ent = -entropy.mean(1)
            loss = pg + settings.ent_coef * ent + settings.vf_coef * vf
            with torch.no_grad():
                log_ratio = log_prob - old_log_prob
                kl = ((torch.exp(log_ratio) - 1) - log_ratio).mean(1)
                kl_sum += kl * active  # a seed's stopping minibatch counts, later ones do not (as in SB3)
                kl_n += active
            if settings.target_kl is not None:
                active &= kl <= 1.5 * settings.target_kl
                if not bool(active.any()):
                    break
            for name, v in (("pg", pg), ("vf", vf), ("ent", ent)):
                stats[name].append(v.detach())
            stats["clip"].append(((ratio - 1).abs() > clip).float().mean(1).detach())
            stats["steps"].append(active.clone())
            for p in policy.parameters():
                p.grad = None
            (loss * active).sum().backward()
            if slow_params:
                assert fast_slow is not None and fast_slow.acc_steps is not None
                mask = active.float()
                for p in slow_params:
                    if p.grad is not None:
                        acc = fast_slow.acc.setdefault(id(p), torch.zeros_like(p))
                        acc.add_(p.grad * mask.view(-1, *([1] * (p.dim() - 1))))
                        p.grad = None
                fast_slow.acc_steps += active.long()
            norm_total = clip_grad_norm_per_seed(fast_params, settings.max_grad_norm)
            coef = (settings.max_grad_norm / (norm_total + 1e-6)).clamp(max=1.0)
            stats["norm"].append(norm_total * coef)
            optimizer.step(fast, lr_t, None if bool(active.all()) else active)
        approx_kl = torch.where(kl_n > 0, kl_sum / kl_n.clamp(min=1), approx_kl)
        if not bool(active.any()):
            break
    for p in policy.parameters():
        p.grad = None
    if fast_slow is not None:
        _after_train(fast_slow, optimizer, slow, slow_params, lr_slow, settings.max_grad_norm)
    steps = torch.stack(stats["steps"]).float() if stats["steps"] else torch.zeros(1, s_count)
    n_steps = steps.sum(0).clamp(min=1)

    def mean(name: str) -> np.ndarray:
        if not stats[name]:
            return np.full(s_count, math.nan)
        return ((torch.stack(stats[name]) * steps).sum(0) / n_steps).numpy()

    return {
        "policy_gradient_loss": mean("pg"),
        "value_loss": mean("vf"),
        "entropy_loss": mean("ent"),
        "clip_fraction": mean("clip"),
        "approx_kl": approx_kl.numpy(),
        "n_grad_steps": steps.sum(0).numpy(),
        "grad_norms": torch.stack(stats["norm"]).numpy() if stats["norm"] else np.zeros((0, s_count)),
    }


def _after_train(
    fs: SeedFastSlow,
    optimizer: SeedAdam,
    slow: Sequence[str],
    slow_params: Sequence[nn.Parameter],
    lr_slow: float,
    max_grad_norm: float,
) -> None:
    """The callback's end of a ``train()``: count the rollout; after ``slow_every``, one slow step per seed."""
    fs.rollouts += 1
    if not slow or fs.rollouts < fs.slow_every:
        return
    assert fs.acc_steps is not None
    steps, fs.acc_steps, fs.rollouts = fs.acc_steps, torch.zeros_like(fs.acc_steps), 0
    ready = steps > 0  # a seed whose every train() stopped before its first step skips the slow update
    if not bool(ready.any()):
        return
    div = steps.clamp(min=1).float()
    with torch.no_grad():
        for p in slow_params:
            acc = fs.acc.get(id(p))
            p.grad = None if acc is None else acc / div.view(-1, *([1] * (p.dim() - 1)))
            if acc is not None:
                acc.zero_()
    clip_grad_norm_per_seed(slow_params, max_grad_norm)
    scale = div if fs.slow_lr_scale == "steps" else torch.full_like(div, float(fs.slow_lr_scale))
    optimizer.step(slow, lr_slow * scale, None if bool(ready.all()) else ready)
    for p in slow_params:
        p.grad = None
    fs.slow_updates += 1
