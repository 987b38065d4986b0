"""Train ``S`` ordinary SB3 models in lockstep: one batched forward per environment step, one PPO update per rollout.

:func:`learn_seed_batch` is ``model.learn`` for ``S`` :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO` models of
one configuration (a :class:`~metarim_sb3.policies.FastRecurrentPolicy`: RIM, LSTM or GRU core) that runs all seeds
in one process. Each model keeps what is its own in a separate run: its VecEnv (stepped by itself), its rollout
buffer, callbacks, logger, ``num_timesteps``, episode statistics, and its own random streams. What is shared is only
the arithmetic: at each environment step the ``S`` policies run as one
:class:`~metarim_sb3.seed_batch.policy.SeedBatchPolicy` forward, and after each rollout one
:func:`~metarim_sb3.seed_batch.ppo.train_seed_batch` call updates every seed (per-seed minibatch order, advantage
normalisation, clipping, ``target_kl``, Adam state and fast/slow schedule).

Design decisions (what a separate ``model.learn`` does differently, and why):

* **Random streams.** Seed ``s`` samples its actions from its own ``torch.Generator`` and draws its minibatch order
  from its own ``numpy.random.RandomState``, both seeded with ``rng_seeds[s]`` (default: the model's ``seed``). SB3
  draws both from the process-global generators, which ``S`` seeds in one process cannot share without making each
  seed's draws depend on the others. Sampling is the same operation as SB3's (``torch.multinomial`` of one sample per
  environment, as ``Categorical.sample``), so a seed's run equals a separate ``model.learn`` whose global streams
  were seeded the same way just before it (``torch.manual_seed(seed); np.random.seed(seed); model.learn(...)``), up
  to float rounding of the batched arithmetic. Each call seeds the streams anew: to continue a run with fresh
  draws, pass other ``rng_seeds`` (e.g. ``seed + num_timesteps``, as the runner's resume reseeds). Seeds do not
  interact beyond float rounding: the seed-batched GRU and RIM backward passes let the other seeds' data move a
  seed's gradients at the 1e-11 level (measured; the LSTM's are bitwise independent).
* **Fast/slow schedule.** A :class:`~metarim_sb3.callbacks.fast_slow.FastSlowCallback` among a model's callbacks is
  taken out of that model's callback chain (its optimizer hooks would never fire: the model's torch optimizer does
  not step here) and its settings become the batch's :class:`~metarim_sb3.seed_batch.ppo.SeedFastSlow`, which
  ``train_seed_batch`` applies per seed; the slow step happens at the end of the ``train()`` that completes a
  meta-sequence (where the callback applies it at the next rollout start: the same weights at every point a
  callback can see them). Every model must carry one with the same settings, or none. After every update the
  callback object's state is made that seed's (accumulated slow gradient, its step and rollout counts,
  ``slow_updates``), so its ``state_dict()`` is what a checkpoint should store, and a ``load_state_dict()`` made
  before the call is continued. The trainer logs ``train/lr_fast``, ``train/lr_slow`` and ``train/slow_updates``
  as the callback does; not its per-group ``train/grad_norm_<group>``.
* **Weights and Adam state.** After every update each seed's weights are copied into its model's policy and its
  Adam moments and step counts into its model's torch optimizer (the optimizer's learning rates set as SB3 and the
  callback would leave them), so callbacks, ``model.predict``, ``model.save`` (checkpoints) and a later
  ``model.learn`` see the current state.
* **Stopping.** A callback whose ``on_step`` returns ``False`` stops its own seed only, as in a separate run: that
  step is not stored, ``on_training_end`` runs at once, the seed is not trained on its incomplete rollout and drops
  out of the batch; the other seeds go on. A seed also ends when its ``num_timesteps`` reaches its total.
* **Logging.** Each model's logger gets what ``learn`` records: ``time/*`` and ``rollout/*`` dumped every
  ``log_interval`` iterations before the update, ``train/*`` recorded by the update (so dumped with the next
  iteration's row, as in SB3). ``train/loss`` (the last minibatch's loss) is not logged.

Limits: CPU only; ``Discrete`` actions, one shared :class:`~metarim_sb3.torch_layers.MiniGridExtractor` (as
:class:`~metarim_sb3.seed_batch.policy.SeedBatchPolicy`); no ``clip_range_vf``, no gSDE, no ``VecNormalize``; all
models start at the same ``num_timesteps`` and step the same number of environments per rollout; no progress bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import explained_variance, update_learning_rate
from torch import Tensor

from metarim_sb3.callbacks.fast_slow import FastSlowCallback
from metarim_sb3.policies import FastRecurrentPolicy
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO
from metarim_sb3.seed_batch.policy import SeedBatchPolicy
from metarim_sb3.seed_batch.ppo import PPOSettings, SeedAdam, SeedFastSlow, SeedRollout, train_seed_batch

__all__ = ["learn_seed_batch", "write_torch_states"]

#: The model settings every seed of a batch must share (the update and the stacked rollout read them).
_SHARED_SETTINGS = (
    "n_envs",
    "n_steps",
    "batch_size",
    "n_epochs",
    "chunk_len",
    "gamma",
    "gae_lambda",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "normalize_advantage",
    "learning_rate",
)
_FAST_SLOW_SETTINGS = ("mode", "other", "slow_every", "fast_lr", "slow_lr", "slow_lr_scale", "slow_fraction")


@dataclass(eq=False)
class _Seed:
    """One model's part of the batch: its callback chain, streams, totals and where it stands."""

    model: Any  # a ChunkedRecurrentPPO (Any: SB3 types its rollout attributes as optional)
    callback: BaseCallback
    total: int
    actions_rng: torch.Generator
    batch_rng: np.random.RandomState
    fast_slow: FastSlowCallback | None
    iteration: int = 0
    ended: bool = False  # on_training_end has run
    slow_names: list[str] | None = None  # the FastSlowCallback's slow parameter names, once looked up

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.callback.on_training_end()


@dataclass(eq=False)
class _Batch:
    """The seeds trained together now, their stacked policy, Adam and fast/slow state."""

    seeds: list[_Seed]
    policy: SeedBatchPolicy
    adam: SeedAdam
    fast_slow: SeedFastSlow | None


def _split_fast_slow(callback: MaybeCallback) -> tuple[list[Any], list[FastSlowCallback]]:
    """The callbacks of a ``learn`` callback argument (a callback, a list, a ``CallbackList`` or a function, ``None``),
    flattened, and its FastSlowCallbacks apart."""
    if callback is None:
        return [], []
    if isinstance(callback, FastSlowCallback):
        return [], [callback]
    if not isinstance(callback, list | tuple | CallbackList):
        return [callback], []
    kept: list[Any] = []
    found: list[FastSlowCallback] = []
    for item in callback.callbacks if isinstance(callback, CallbackList) else callback:
        more_kept, more_found = _split_fast_slow(item)
        kept += more_kept
        found += more_found
    return kept, found


def _check_models(models: Sequence[ChunkedRecurrentPPO]) -> None:
    """:raises ValueError: unless the models are CPU ``ChunkedRecurrentPPO`` of one supported configuration."""
    if not models:
        raise ValueError("learn_seed_batch: no models")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("learn_seed_batch: a model is given twice")
    first: Any = models[0]
    for i, given in enumerate(models):
        if not isinstance(given, ChunkedRecurrentPPO):
            raise ValueError(f"learn_seed_batch: model {i} is a {type(given).__name__}, not a ChunkedRecurrentPPO")
        model: Any = given
        if not isinstance(model.policy, FastRecurrentPolicy):
            raise ValueError(f"learn_seed_batch: model {i}'s policy is not a metarim FastRecurrentPolicy")
        if model.device.type != "cpu":
            raise ValueError(f"learn_seed_batch: CPU models only, model {i} is on {model.device}")
        if model.use_sde or model.clip_range_vf is not None or model._vec_normalize_env is not None:
            raise ValueError(f"learn_seed_batch: model {i} uses gSDE, clip_range_vf or VecNormalize (not supported)")
        differ = [k for k in _SHARED_SETTINGS if getattr(model, k) != getattr(first, k)]
        if any(float(model.clip_range(p)) != float(first.clip_range(p)) for p in (1.0, 0.5, 0.0)):
            differ.append("clip_range")
        if type(model.policy) is not type(first.policy):
            differ.append("policy class")
        if model.num_timesteps != first.num_timesteps:
            differ.append("num_timesteps")
        if differ:
            raise ValueError(f"learn_seed_batch: model {i} differs from model 0 in {differ} (one configuration only)")


def _stack_obs(observations: Sequence[Any]) -> Tensor | dict[str, Tensor]:
    """``S`` VecEnv observations (arrays or dicts of arrays ``[n_envs, ...]``) -> tensors ``[S, n_envs, ...]``."""
    if isinstance(observations[0], dict):
        return {k: torch.as_tensor(np.stack([o[k] for o in observations])) for k in observations[0]}
    return torch.as_tensor(np.stack(observations))


def _stack_states(states: Sequence[RNNStates]) -> RNNStates:
    """``S`` models' states (each tensor ``[1, n_envs, H]``) -> ``[S, 1, n_envs, H]``."""

    def stack(get: Any) -> Tensor:
        return torch.stack([get(st) for st in states])

    return RNNStates(
        (stack(lambda st: st.pi[0]), stack(lambda st: st.pi[1])),
        (stack(lambda st: st.vf[0]), stack(lambda st: st.vf[1])),
    )


def _unbind_states(states: RNNStates) -> list[RNNStates]:
    """Every seed's slice of stacked states (views), shaped as its model keeps them: four ``unbind`` calls, not
    four indexings per seed."""
    parts = (states.pi[0].unbind(0), states.pi[1].unbind(0), states.vf[0].unbind(0), states.vf[1].unbind(0))
    return [RNNStates((h_pi, c_pi), (h_vf, c_vf)) for h_pi, c_pi, h_vf, c_vf in zip(*parts, strict=True)]


def _slow_param_names(seed: _Seed) -> list[str]:
    """The names of the parameters the seed's FastSlowCallback accumulates, in its order (looked up once per call of
    :func:`learn_seed_batch`: the model's optimizer groups do not change during it)."""
    assert seed.fast_slow is not None
    if seed.slow_names is None:
        names = {id(p): n for n, p in seed.model.policy.named_parameters()}
        seed.fast_slow._split_groups(seed.model.policy.optimizer)
        seed.slow_names = [names[id(p)] for p in seed.fast_slow._slow_params]
    return seed.slow_names


def _prepare_fast_slow(seed: _Seed) -> None:
    """Check the callback against the model and bring its meta-sequence state to the model's slow groups (a
    ``load_state_dict`` made before the call is taken; a state of other shapes, a new meta-sequence)."""
    cb = seed.fast_slow
    assert cb is not None
    cb.check_model(seed.model)
    params = dict(seed.model.policy.named_parameters())
    slow = [params[n] for n in _slow_param_names(seed)]
    restore, cb._restore = cb._restore, None
    if restore is not None:
        shapes = [tuple(t.shape) for t in restore["acc"]]
        if shapes != [tuple(p.shape) for p in slow]:
            raise ValueError(
                f"FastSlowCallback: the loaded state accumulates tensors of shapes {shapes}; the model's slow groups "
                f"{list(cb.slow_group_names)} do not match (another mode or policy?)"
            )
        cb._acc = [t.to(dtype=p.dtype).clone() for t, p in zip(restore["acc"], slow, strict=True)]
        cb._acc_steps, cb._rollouts = int(restore["acc_steps"]), int(restore["rollouts"])
    elif [tuple(t.shape) for t in cb._acc] != [tuple(p.shape) for p in slow]:
        cb._acc = [torch.zeros_like(p) for p in slow]
        cb._acc_steps = cb._rollouts = 0


def _build_batch(seeds: list[_Seed]) -> _Batch:
    """Stack the seeds' policies, Adam states and fast/slow states (each model holds its current ones)."""
    policies: list[FastRecurrentPolicy] = [sd.model.policy for sd in seeds]  # type: ignore[misc]
    policy = SeedBatchPolicy.from_policies(policies)
    adam = SeedAdam.from_optimizers(policy, [p.optimizer for p in policies], policies)
    fast_slow = None
    first = seeds[0].fast_slow
    if first is not None:
        rollouts = {sd.fast_slow._rollouts for sd in seeds if sd.fast_slow is not None}
        if len(rollouts) > 1:
            raise ValueError(f"learn_seed_batch: the FastSlowCallbacks are at different rollouts {sorted(rollouts)}")
        fast_slow = SeedFastSlow(**{k: getattr(first, k) for k in _FAST_SLOW_SETTINGS})
        fast_slow.rollouts = rollouts.pop()
        fast_slow.acc_steps = torch.tensor([sd.fast_slow._acc_steps for sd in seeds if sd.fast_slow is not None])
        named = dict(policy.named_parameters())
        per_seed = [dict(zip(_slow_param_names(sd), sd.fast_slow._acc, strict=True)) for sd in seeds if sd.fast_slow]
        for name in per_seed[0]:
            fast_slow.acc[id(named[name])] = torch.stack([acc[name] for acc in per_seed])
    return _Batch(seeds, policy, adam, fast_slow)


def write_torch_states(
    adam: SeedAdam,
    policy: SeedBatchPolicy,
    optimizers: Sequence[torch.optim.Optimizer],
    policies: Sequence[torch.nn.Module],
) -> None:
    """Write seed ``s``'s Adam moments and step counts into ``optimizers[s]``, the Adam of ``policies[s]`` (the
    inverse of :meth:`SeedAdam.load_torch_states <metarim_sb3.seed_batch.ppo.SeedAdam.load_torch_states>`), in
    ``torch.optim.Adam``'s own format, so that ``optimizer.state_dict()`` (and ``model.save``) carries it. A
    parameter that seed ``s`` never stepped keeps no state, as in torch.

    :param adam: the seed-batched Adam.
    :param policy: the seed-batched policy it steps.
    :param optimizers: ``S`` ``torch.optim.Adam``, one per ordinary policy.
    :param policies: the ordinary policies (parameter names match the batched policy's).
    """
    states: dict[str, tuple[list[float], tuple[Tensor, ...], tuple[Tensor, ...]]] = {}
    for name, batched in policy.named_parameters():  # each state read once: steps as floats, moments per seed
        st = adam.state.get(id(batched))
        if st is not None:
            states[name] = (st["step"].tolist(), st["exp_avg"].detach().unbind(0), st["exp_avg_sq"].detach().unbind(0))
    for s, (opt, pol) in enumerate(zip(optimizers, policies, strict=True)):
        for name, p in pol.named_parameters():
            found = states.get(name)
            if found is None or found[0][s] == 0.0:
                continue
            steps, exp_avg, exp_avg_sq = found
            opt.state[p] = {
                "step": torch.tensor(steps[s], dtype=torch.float32),
                "exp_avg": exp_avg[s].clone(),
                "exp_avg_sq": exp_avg_sq[s].clone(),
            }


def _collect(batch: _Batch) -> list[_Seed]:
    """One rollout of every seed of the batch, in lockstep (sb3-contrib's ``collect_rollouts`` per seed).

    :return: the seeds whose rollout is complete (the others' callbacks asked to stop).
    """
    seeds = batch.seeds
    n_steps = seeds[0].model.n_steps
    for sd in seeds:
        sd.model.policy.set_training_mode(False)
        sd.model.rollout_buffer.reset()
        sd.callback.on_rollout_start()
    states = _stack_states([sd.model._last_lstm_states for sd in seeds])
    generators = [sd.actions_rng for sd in seeds]
    running = list(range(len(seeds)))
    batch.policy.eval()
    for n in range(n_steps):
        obs = _stack_obs([sd.model._last_obs for sd in seeds])
        starts = torch.as_tensor(np.stack([sd.model._last_episode_starts for sd in seeds]), dtype=torch.float32)
        with torch.no_grad():
            actions_t, values, log_probs, states = batch.policy(obs, states, starts, generators=generators)
        actions_all = actions_t.numpy()
        for s in running:
            seeds[s].model.env.step_async(actions_all[s])
        per_seed_states = _unbind_states(states)  # views, seed by seed
        values_s, log_probs_s = values.unsqueeze(-1).unbind(0), log_probs.unbind(0)
        still = []
        for s in running:
            sd = seeds[s]
            model: Any = sd.model  # sb3-contrib's attributes, typed loosely by SB3
            env = model.env
            new_obs, rewards, dones, infos = env.step_wait()
            model.num_timesteps += env.num_envs
            lstm_states = per_seed_states[s]
            actions = actions_all[s]
            sd.callback.update_locals(
                {
                    "self": model,
                    "env": env,
                    "callback": sd.callback,
                    "rollout_buffer": model.rollout_buffer,
                    "n_rollout_steps": n_steps,
                    "n_steps": n,
                    "actions": actions,
                    "clipped_actions": actions,
                    "values": values_s[s],
                    "log_probs": log_probs_s[s],
                    "lstm_states": lstm_states,
                    "new_obs": new_obs,
                    "rewards": rewards,
                    "dones": dones,
                    "infos": infos,
                }
            )
            if not sd.callback.on_step():
                sd.end()  # as learn() after collect_rollouts returned False: this step is not stored
                continue
            model._update_info_buffer(infos, dones)
            for idx, done in enumerate(dones):  # timeouts bootstrap with the value function (sb3-contrib, #633)
                terminal = infos[idx].get("terminal_observation")
                if done and terminal is not None and infos[idx].get("TimeLimit.truncated", False):
                    terminal_obs = model.policy.obs_to_tensor(terminal)[0]
                    with torch.no_grad():
                        state_vf = (
                            lstm_states.vf[0][:, idx : idx + 1, :].contiguous(),
                            lstm_states.vf[1][:, idx : idx + 1, :].contiguous(),
                        )
                        start = torch.tensor([False], dtype=torch.float32)
                        value = model.policy.predict_values(terminal_obs, state_vf, start)[0]
                    rewards[idx] += float(model.gamma * value)
            model.rollout_buffer.add(
                model._last_obs,
                actions.reshape(-1, 1),
                rewards,
                model._last_episode_starts,
                values[s],
                log_probs[s],
                lstm_states=model._last_lstm_states,
            )
            model._last_obs = new_obs
            model._last_episode_starts = dones
            model._last_lstm_states = lstm_states
            still.append(s)
        running = still
        if not running:
            return []
    obs = _stack_obs([sd.model._last_obs for sd in seeds])
    starts = torch.as_tensor(np.stack([sd.model._last_episode_starts for sd in seeds]), dtype=torch.float32)
    with torch.no_grad():
        _, last_values, _, _ = batch.policy(obs, states, starts, deterministic=True)
    for s in running:
        model = seeds[s].model
        model.rollout_buffer.compute_returns_and_advantage(
            last_values=last_values[s],
            dones=model._last_episode_starts,  # type: ignore[arg-type]
        )
        seeds[s].callback.on_rollout_end()
    return [seeds[s] for s in running]


def _train(batch: _Batch) -> None:
    """One update of every seed of the batch; then each model gets its weights, Adam state, fast/slow state, logs."""
    seeds = batch.seeds
    first = seeds[0].model
    progress = first._current_progress_remaining
    settings = PPOSettings(
        learning_rate=first.lr_schedule,
        n_epochs=first.n_epochs,
        batch_size=first.batch_size or first.n_steps * first.n_envs,
        chunk_len=first.chunk_len,
        clip_range=float(first.clip_range(progress)),  # type: ignore[operator]
        ent_coef=first.ent_coef,
        vf_coef=first.vf_coef,
        max_grad_norm=first.max_grad_norm,
        target_kl=first.target_kl,
        normalize_advantage=first.normalize_advantage,
    )
    fs = batch.fast_slow
    acc_before = fs.acc_steps.clone() if fs is not None and fs.acc_steps is not None else None
    slow_before = fs.slow_updates if fs is not None else 0
    rollout = SeedRollout.from_buffers([sd.model.rollout_buffer for sd in seeds])
    batch.policy.train()
    stats = train_seed_batch(batch.policy, batch.adam, rollout, [sd.batch_rng for sd in seeds], settings, progress, fs)
    policies: list[FastRecurrentPolicy] = [sd.model.policy for sd in seeds]  # type: ignore[misc]
    batch.policy.unstack_into(policies)
    write_torch_states(batch.adam, batch.policy, [p.optimizer for p in policies], policies)
    per_batch = max(1, settings.batch_size // settings.chunk_len)
    minibatches = -(-(first.n_steps * first.n_envs // settings.chunk_len) // per_batch)
    lr = float(first.lr_schedule(progress))
    lrs = fs.lrs(first.lr_schedule, progress) if fs is not None else (lr, lr)
    slow_done = fs is not None and fs.slow_updates > slow_before
    named = dict(batch.policy.named_parameters()) if fs is not None else {}
    for s, sd in enumerate(seeds):
        model = sd.model
        log = model.logger.record
        log("train/learning_rate", lr)
        update_learning_rate(model.policy.optimizer, lr)
        grad_steps = int(stats["n_grad_steps"][s])
        model._n_updates += min(settings.n_epochs, grad_steps // minibatches + 1)
        for key in ("entropy_loss", "policy_gradient_loss", "value_loss", "approx_kl", "clip_fraction"):
            log(f"train/{key}", float(stats[key][s]))
        buffer = model.rollout_buffer
        log("train/explained_variance", explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
        log("train/n_updates", model._n_updates, exclude="tensorboard")
        log("train/clip_range", settings.clip_range)
        if fs is not None and sd.fast_slow is not None:
            cb = sd.fast_slow
            assert acc_before is not None
            if slow_done and int(acc_before[s]) + grad_steps > 0:
                cb.slow_updates += 1
            cb._acc = [
                fs.acc[id(named[n])][s].clone() if id(named[n]) in fs.acc else torch.zeros_like(named[n][s])
                for n in _slow_param_names(sd)
            ]
            assert fs.acc_steps is not None
            cb._acc_steps, cb._rollouts = int(fs.acc_steps[s]), fs.rollouts
            slow_names = set(cb.slow_group_names)
            for group in model.policy.optimizer.param_groups:
                group["lr"] = lrs[1] if group.get("name") in slow_names else lrs[0]
            log("train/lr_fast", lrs[0])
            log("train/lr_slow", lrs[1])
            log("train/slow_updates", cb.slow_updates)


def learn_seed_batch(
    models: Sequence[ChunkedRecurrentPPO],
    total_timesteps: int,
    callbacks: Sequence[MaybeCallback] | None = None,
    log_interval: int | None = 1,
    tb_log_name: str = "RecurrentPPO",
    reset_num_timesteps: bool = True,
    rng_seeds: Sequence[int] | None = None,
) -> list[ChunkedRecurrentPPO]:
    """``model.learn(total_timesteps, callback=callbacks[s], ...)`` for ``S`` models at once, in lockstep.

    Seed ``s`` runs as a separate ``learn`` would (see the module for where and why it differs: random streams,
    the fast/slow callback, stopping), with one batched policy forward per environment step for all seeds and one
    batched PPO update per rollout.

    :param models: ``S`` ``ChunkedRecurrentPPO`` of one configuration (same policy class and sizes, PPO settings,
        ``n_envs``), on the CPU, each with its own VecEnv, seed and logger.
    :param total_timesteps: environment steps per seed (as ``learn``'s).
    :param callbacks: one ``learn`` callback argument per model (a callback, a list, a ``CallbackList``, a function
        or ``None``); ``None``: none. A :class:`~metarim_sb3.callbacks.fast_slow.FastSlowCallback` in it (at the top
        level or in a ``CallbackList``) sets the fast/slow schedule; all models must have one with the same settings,
        or none.
    :param log_interval: dump each model's logs every ``log_interval`` iterations (``None``: never), as ``learn``.
    :param tb_log_name: as ``learn`` (used when a model has no logger set).
    :param reset_num_timesteps: as ``learn``; all models must be at the same ``num_timesteps``.
    :param rng_seeds: seeds of each model's action-sampling ``torch.Generator`` and minibatch ``RandomState``;
        ``None``: each model's ``seed`` (a fresh random seed where that is ``None``).
    :return: the models (trained in place).
    :raises ValueError: for models that cannot be trained together, or mismatched fast/slow callbacks.
    """
    models = list(models)
    _check_models(models)
    n = len(models)
    given: list[MaybeCallback] = list(callbacks) if callbacks is not None else [None] * n
    seeds_for_rng = list(rng_seeds) if rng_seeds is not None else [m.seed for m in models]
    if len(given) != n or len(seeds_for_rng) != n:
        raise ValueError(f"learn_seed_batch: {n} models, {len(given)} callbacks, {len(seeds_for_rng)} rng_seeds")
    seeds: list[_Seed] = []
    split = [_split_fast_slow(cb) for cb in given]
    owners: dict[int, int] = {}
    for i, (kept, found) in enumerate(split):
        for cb in [*kept, *found]:
            if owners.setdefault(id(cb), i) != i:
                raise ValueError(f"learn_seed_batch: models {owners[id(cb)]} and {i} share a callback object")
    with_fs = [len(found) for _, found in split]
    if any(k > 1 for k in with_fs) or len(set(with_fs)) > 1:
        raise ValueError(f"learn_seed_batch: FastSlowCallbacks per model {with_fs}; one in every model or none")
    if with_fs[0]:
        settings = [tuple(getattr(found[0], k) for k in _FAST_SLOW_SETTINGS) for _, found in split]
        if any(st != settings[0] for st in settings):
            raise ValueError(f"learn_seed_batch: the FastSlowCallbacks' settings differ: {settings}")
    for model, (kept, found), rng_seed in zip(models, split, seeds_for_rng, strict=True):
        if rng_seed is None:
            rng_seed = int(np.random.SeedSequence().generate_state(1)[0])
        total, callback = model._setup_learn(total_timesteps, kept, reset_num_timesteps, tb_log_name, False)
        seed = _Seed(
            model=model,
            callback=callback,
            total=total,
            actions_rng=torch.Generator().manual_seed(int(rng_seed)),
            batch_rng=np.random.RandomState(int(rng_seed) % 2**32),
            fast_slow=found[0] if found else None,
        )
        if seed.fast_slow is not None:
            _prepare_fast_slow(seed)
        seeds.append(seed)
    for sd in seeds:
        learn_locals = {
            "self": sd.model,
            "total_timesteps": sd.total,
            "callback": sd.callback,
            "log_interval": log_interval,
            "tb_log_name": tb_log_name,
            "reset_num_timesteps": reset_num_timesteps,
            "progress_bar": False,
            "iteration": 0,
        }
        sd.callback.on_training_start(learn_locals, globals())
    batch: _Batch | None = None
    while True:
        for sd in seeds:
            if not sd.ended and sd.model.num_timesteps >= sd.total:
                sd.end()
        live = [sd for sd in seeds if not sd.ended]
        if not live:
            break
        if batch is None or [id(sd) for sd in batch.seeds] != [id(sd) for sd in live]:
            batch = _build_batch(live)
        done = _collect(batch)  # seeds whose callback stopped them have ended
        if not done:
            continue
        for sd in done:
            sd.iteration += 1
            sd.model._update_current_progress_remaining(sd.model.num_timesteps, sd.total)
            if log_interval is not None and sd.iteration % log_interval == 0:
                sd.model.dump_logs(sd.iteration)
        if [id(sd) for sd in done] != [id(sd) for sd in batch.seeds]:
            batch = _build_batch(done)  # the stopped seeds leave the batch
        _train(batch)
    return models
