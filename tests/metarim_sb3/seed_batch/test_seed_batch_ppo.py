"""The seed-batched PPO update equals ChunkedRecurrentPPO.train() of separate runs (losses, gradients, parameters)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401
from metarim_sb3 import MultiInputFastLstmPolicy, MultiInputGruPolicy, MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback
from metarim_sb3.policies import FastRecurrentPolicy
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO
from metarim_sb3.seed_batch.policy import SeedBatchPolicy
from metarim_sb3.seed_batch.ppo import (
    PPOSettings,
    SeedAdam,
    SeedFastSlow,
    SeedRollout,
    clip_grad_norm_per_seed,
    train_seed_batch,
)

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 8), mission_embedding_dim=4)
PPO = dict(n_steps=8, batch_size=8, chunk_len=4, n_epochs=2, learning_rate=1e-3, ent_coef=0.01, max_grad_norm=0.5)
FAST_SLOW = dict(mode="meta", slow_every=1, slow_lr=5e-4)


class Recorder(BaseCallback):
    """Snapshots, at each rollout end (before train()), the policy, its Adam state, the buffer and numpy's global
    state; after each train() the parameters, SB3's logged losses and every optimizer step's clipped grad norm."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[dict[str, Any]] = []
        self.after: list[dict[str, Any]] = []
        self.norms: list[float] = []

    def _on_training_start(self) -> None:
        self.model.policy.optimizer.register_step_pre_hook(self._pre_step)

    def _pre_step(self, optimizer: Any, *_: Any) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads and is_fast_step(optimizer):
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        rng = np.random.RandomState()
        rng.set_state(np.random.get_state())
        self.before.append(
            dict(
                policy=copy.deepcopy(self.model.policy),
                buffer=copy.deepcopy(self.model.rollout_buffer),  # type: ignore[attr-defined]
                rng=rng,
                progress=self.model._current_progress_remaining,
                n_norms=len(self.norms),
            )
        )

    def _record_after(self) -> None:
        if len(self.after) < len(self.before):
            params = {n: p.detach().clone() for n, p in self.model.policy.named_parameters()}
            logged = {k: v for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}
            self.after.append(dict(params=params, logged=dict(logged)))

    def _on_rollout_start(self) -> None:
        self._record_after()

    def _on_training_end(self) -> None:
        self._record_after()


def is_fast_step(optimizer: Any) -> bool:
    """Whether a cell ("modules") parameter has a gradient: not FastSlowCallback's slow step (meta mode)."""
    return any(p.grad is not None for g in optimizer.param_groups if g.get("name") == "modules" for p in g["params"])


def separate_run(agent: str, seed: int, fast_slow: bool, rollouts: int = 2, **ppo: Any) -> Recorder:
    env = make_vec_env("MetaRIM-GoTo-v0", n_envs=2, seed=seed)
    kwargs: dict[str, Any] = dict(net_arch=[8], features_extractor_kwargs=EXTRACTOR)
    policy: type[FastRecurrentPolicy]
    if agent == "rim":
        policy, kwargs = MultiInputRIMPolicy, {**kwargs, **TINY_RIM}
    else:
        policy = MultiInputFastLstmPolicy if agent == "lstm" else MultiInputGruPolicy
        kwargs["lstm_hidden_size"] = 8
    model = ChunkedRecurrentPPO(policy, env, seed=seed, policy_kwargs=kwargs, device="cpu", **{**PPO, **ppo})  # type: ignore[arg-type]
    rec = Recorder()
    callbacks: list[BaseCallback] = [rec]
    if fast_slow:
        callbacks.insert(0, FastSlowCallback(**FAST_SLOW))  # type: ignore[arg-type]
    model.learn(rollouts * 16, callback=CallbackList(callbacks))
    assert len(rec.before) == len(rec.after) == rollouts
    return rec


def settings() -> PPOSettings:
    return PPOSettings(**{k: v for k, v in PPO.items() if k != "n_steps"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agent", "n_seeds", "fast_slow"),
    [("rim", 1, False), ("lstm", 1, False), ("gru", 1, False), ("rim", 1, True), ("rim", 4, True), ("lstm", 4, False)],
)
def test_seed_batched_update_equals_separate_runs(agent: str, n_seeds: int, fast_slow: bool) -> None:
    runs = [separate_run(agent, seed, fast_slow) for seed in range(n_seeds)]
    for k in range(2):  # the first two train() calls, each from the separate run's state before it
        before = [r.before[k] for r in runs]
        policies = [b["policy"] for b in before]
        batched = SeedBatchPolicy.from_policies(policies)
        adam = SeedAdam.from_optimizers(batched, [p.optimizer for p in policies], policies)
        fs = SeedFastSlow(**FAST_SLOW) if fast_slow else None  # type: ignore[arg-type]
        rollout = SeedRollout.from_buffers([b["buffer"] for b in before])
        stats = train_seed_batch(
            batched, adam, rollout, [b["rng"] for b in before], settings(), before[0]["progress"], fs
        )
        names = dict(batched.named_parameters())
        for s, run in enumerate(runs):
            after = run.after[k]
            moved = 0
            for name, want in after["params"].items():
                torch.testing.assert_close(names[name][s].detach(), want, rtol=1e-4, atol=2e-6, msg=f"{name} s={s}")
                moved += int(not torch.equal(want, dict(policies[s].named_parameters())[name]))
            assert moved > 0  # the update moved the parameters, and equally
            logged = after["logged"]
            for key in ("policy_gradient_loss", "value_loss", "entropy_loss", "clip_fraction"):
                np.testing.assert_allclose(stats[key][s], logged[f"train/{key}"], rtol=1e-4, atol=1e-6, err_msg=key)
            lo = before[s]["n_norms"]
            want_norms = run.norms[lo : lo + stats["grad_norms"].shape[0]]
            np.testing.assert_allclose(stats["grad_norms"][:, s], want_norms, rtol=1e-4, err_msg="clipped grad norms")
        if fast_slow:
            assert fs is not None and fs.slow_updates == 1


def test_target_kl_stops_each_seed_as_its_separate_run() -> None:
    target_kl = 0.01
    runs = [separate_run("rim", seed, True, target_kl=target_kl, learning_rate=0.03, n_epochs=4) for seed in range(4)]
    before = [r.before[0] for r in runs]
    policies = [b["policy"] for b in before]
    batched = SeedBatchPolicy.from_policies(policies)
    adam = SeedAdam.from_optimizers(batched, [p.optimizer for p in policies], policies)
    fs = SeedFastSlow(**FAST_SLOW)  # type: ignore[arg-type]
    rollout = SeedRollout.from_buffers([b["buffer"] for b in before])
    ppo = settings()
    ppo.target_kl, ppo.learning_rate, ppo.n_epochs = target_kl, 0.03, 4
    stats = train_seed_batch(batched, adam, rollout, [b["rng"] for b in before], ppo, before[0]["progress"], fs)
    steps = stats["n_grad_steps"]
    assert len(set(steps.tolist())) > 1, steps  # the seeds stopped at different steps (else the test shows little)
    names = dict(batched.named_parameters())
    for s, run in enumerate(runs):
        assert steps[s] == run.before[1]["n_norms"] - before[s]["n_norms"]  # as many fast steps as the separate run
        np.testing.assert_allclose(stats["approx_kl"][s], run.after[0]["logged"]["train/approx_kl"], rtol=1e-4)
        for name, want in run.after[0]["params"].items():  # lr 30x the other tests': float noise through Adam too
            torch.testing.assert_close(names[name][s].detach(), want, rtol=1e-4, atol=1e-4, msg=f"{name} s={s}")


def test_per_seed_clipping_and_adam_masking() -> None:
    p = torch.nn.Parameter(torch.zeros(3, 2))
    p.grad = torch.tensor([[3.0, 4.0], [0.03, 0.04], [0.0, 0.0]])
    norms = clip_grad_norm_per_seed([p], max_norm=1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.05, 0.0]))
    torch.testing.assert_close(p.grad[0], torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)  # clipped
    torch.testing.assert_close(p.grad[1], torch.tensor([0.03, 0.04]))  # under the norm: untouched


def test_seed_adam_steps_only_the_seeds_asked() -> None:
    policies = [
        MultiInputFastLstmPolicy(
            *spaces(), lambda _: 1e-3, lstm_hidden_size=4, net_arch=[4], features_extractor_kwargs=EXTRACTOR
        )
        for _ in range(2)
    ]
    batched = SeedBatchPolicy.from_policies(policies)
    adam = SeedAdam(batched)
    before = [p.detach().clone() for p in batched.parameters()]
    for p in batched.parameters():
        p.grad = torch.ones_like(p)
    adam.step(["modules", "other"], torch.full((2,), 1e-2), torch.tensor([True, False]))
    for p, old in zip(batched.parameters(), before, strict=True):
        assert torch.equal(p[1], old[1]) and not torch.equal(p[0], old[0])
        assert adam.state[id(p)]["step"].tolist() == [1.0, 0.0]


def spaces() -> tuple[Any, Any]:
    import gymnasium as gym

    env = gym.make("MetaRIM-GoTo-v0")
    return env.observation_space, env.action_space


def test_seed_fast_slow_takes_every_callback_setting_and_the_ratio() -> None:
    """The trainer copies each FastSlowCallback setting into SeedFastSlow; rho sets the slow rate as the callback's."""
    import inspect

    from metarim_sb3.seed_batch.trainer import _FAST_SLOW_SETTINGS

    settings = set(inspect.signature(FastSlowCallback.__init__).parameters) - {"self", "verbose"}
    assert set(_FAST_SLOW_SETTINGS) == settings
    lr = lambda _: 1e-3  # noqa: E731
    for rho in (None, 0.5):
        batched = SeedFastSlow(mode="meta", slow_fraction=rho)
        callback = FastSlowCallback(mode="meta", slow_fraction=rho)
        expected = (1e-3, (0.1 if rho is None else rho) * 1e-3)
        assert batched.lrs(lr, 1.0) == pytest.approx(expected)
        assert callback.slow_fraction * 1e-3 == pytest.approx(expected[1])
