"""FastSlowCallback: learning rates inside the optimizer step, when each group moves, averaging, clipping,
equivalence of the joint mode, save/load, hooks after an exception, bad input."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from metarim_sb3 import LstmPolicy, MlpRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
N_ENVS, N_STEPS, BATCH = 2, 8, 8
ROLLOUT = N_ENVS * N_STEPS  # timesteps per rollout
STEPS_PER_TRAIN = 2 * ROLLOUT // BATCH  # n_epochs=2


def make_model(policy: type = MlpRIMPolicy, seed: int = 0, **kwargs: Any) -> RecurrentPPO:
    policy_kwargs = dict(net_arch=dict(pi=[8], vf=[8]), **({} if policy is not MlpRIMPolicy else TINY_RIM))
    if policy is not MlpRIMPolicy:
        policy_kwargs["lstm_hidden_size"] = 8
    policy_kwargs.update(kwargs.pop("policy_kwargs", {}))
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    params = dict(n_steps=N_STEPS, batch_size=BATCH, n_epochs=2, learning_rate=3e-4, seed=seed)
    params.update(kwargs)
    return RecurrentPPO(policy, env, policy_kwargs=policy_kwargs, **params)


def groups(model: RecurrentPPO) -> dict[str, list[th.nn.Parameter]]:
    return {g["name"]: list(g["params"]) for g in model.policy.optimizer.param_groups}


def snapshot(params: list[th.nn.Parameter]) -> list[th.Tensor]:
    return [p.detach().clone() for p in params]


def same(a: list[th.Tensor], b: list[th.Tensor]) -> bool:
    return all(th.equal(x, y) for x, y in zip(a, b, strict=True))


class StepRecorder(BaseCallback):
    """Registers step hooks AFTER FastSlowCallback's (it comes later in the callback list) and records events."""

    def __init__(self, fast: list[str], slow: list[str]) -> None:
        super().__init__()
        self.fast_names, self.slow_names = fast, slow
        self.events: list[dict[str, Any]] = []
        self.rollout_starts: list[list[th.Tensor]] = []
        self.handles: list[Any] = []

    def _on_training_start(self) -> None:
        g = groups(self.model)
        self.fast = [p for n in self.fast_names for p in g[n]]
        self.slow = [p for n in self.slow_names for p in g[n]]
        opt = self.model.policy.optimizer
        self.handles = [opt.register_step_pre_hook(self.pre), opt.register_step_post_hook(self.post)]

    def pre(self, opt: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.before = (snapshot(self.fast), snapshot(self.slow))
        self.event = dict(
            lrs={g["name"]: g["lr"] for g in opt.param_groups},
            progress=self.model._current_progress_remaining,
            dedicated=all(p.grad is None for p in self.fast),
            rollout=len(self.rollout_starts),
        )

    def post(self, opt: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.event["fast_moved"] = not same(self.before[0], self.fast)
        self.event["slow_moved"] = not same(self.before[1], self.slow)
        self.events.append(self.event)

    def _on_rollout_start(self) -> None:
        self.rollout_starts.append(snapshot(self.slow))

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for h in self.handles:
            h.remove()


def fast_schedule(progress: float) -> float:
    return 1e-3 * progress


def slow_schedule(progress: float) -> float:
    return 1e-4 + 2e-4 * progress


SPLITS = {
    ("meta", "fast"): (["modules", "other"], ["attention"]),
    ("meta", "slow"): (["modules"], ["attention", "other"]),
    ("reversed", "fast"): (["attention", "other"], ["modules"]),
}


@pytest.mark.parametrize(("mode", "other"), [*SPLITS, ("joint", "fast")])
def test_learning_rates_inside_the_step(mode: str, other: str) -> None:
    model = make_model()
    fast, slow = SPLITS.get((mode, other), (["modules", "attention", "other"], []))
    fs = FastSlowCallback(fast_lr=fast_schedule, slow_lr=slow_schedule, slow_every=2, mode=mode, other=other)
    rec = StepRecorder(fast, slow)
    model.learn(5 * ROLLOUT, callback=[fs, rec])
    assert len(rec.events) == 5 * STEPS_PER_TRAIN + (2 if slow else 0)
    progresses = {e["progress"] for e in rec.events}
    assert len(progresses) == 5  # SB3 moved progress (and reset every lr to 3e-4) before each train()
    for event in rec.events:
        for name in fast:
            assert event["lrs"][name] == fast_schedule(event["progress"])
        # the slow step stands for the 2 trains' fast steps it averages (slow_lr_scale="steps")
        scale = 2 * STEPS_PER_TRAIN if event["dedicated"] else 1
        for name in slow:
            assert event["lrs"][name] == pytest.approx(slow_schedule(event["progress"]) * scale)
    logged = model.logger.name_to_value  # the last train()'s records are not dumped yet
    assert logged["train/lr_fast"] == fast_schedule(model._current_progress_remaining)
    assert logged["train/slow_updates"] == (2 if slow else 0)
    for name in fast:
        assert logged[f"train/grad_norm_{name}"] > 0
    assert not model.policy.optimizer._optimizer_step_pre_hooks  # removed at training end


@pytest.mark.parametrize(("mode", "other"), list(SPLITS))
def test_slow_groups_move_only_at_meta_sequence_ends(mode: str, other: str) -> None:
    model = make_model()
    fast, slow = SPLITS[(mode, other)]
    fs = FastSlowCallback(fast_lr=1e-3, slow_lr=1e-3, slow_every=2, mode=mode, other=other)
    rec = StepRecorder(fast, slow)
    model.learn(5 * ROLLOUT, callback=[fs, rec])
    ppo_steps = [e for e in rec.events if not e["dedicated"]]
    dedicated = [e for e in rec.events if e["dedicated"]]
    assert len(ppo_steps) == 5 * STEPS_PER_TRAIN
    assert all(e["fast_moved"] and not e["slow_moved"] for e in ppo_steps)
    # one dedicated step after the 2nd and the 4th train(), at the start of rollouts 3 and 5 (index 2, 4)
    assert [e["rollout"] for e in dedicated] == [2, 4]
    assert all(e["slow_moved"] and not e["fast_moved"] for e in dedicated)
    starts = rec.rollout_starts
    assert [same(starts[i], starts[i + 1]) for i in range(4)] == [True, False, True, False]
    assert fs.slow_updates == 2


def test_slow_update_is_the_clipped_average_of_the_meta_sequence_gradients() -> None:
    model = make_model(policy_kwargs=dict(optimizer_class=th.optim.SGD), max_grad_norm=1e9)
    slow = groups(model)["attention"]
    seen: list[list[th.Tensor]] = [[] for _ in slow]
    # registered before learn(): runs before the callback's hook, so it sees each minibatch's gradient
    for p, grads in zip(slow, seen, strict=True):
        p.register_post_accumulate_grad_hook(lambda q, grads=grads: grads.append(q.grad.clone()))
    start = snapshot(slow)
    fs = FastSlowCallback(fast_lr=1e-3, slow_lr=0.5, slow_every=2, slow_lr_scale=1.0)
    model.learn(2 * ROLLOUT, callback=fs)
    n_steps = 2 * STEPS_PER_TRAIN
    assert fs.slow_updates == 1 and max(len(g) for g in seen) == n_steps
    for p, p0, grads in zip(slow, start, seen, strict=True):
        th.testing.assert_close(p.detach(), p0 - 0.5 * th.stack(grads).sum(0) / n_steps, rtol=1e-5, atol=1e-7)


def test_gradient_clipping_sees_no_slow_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bool, bool]] = []
    original = th.nn.utils.clip_grad_norm_

    def spy(params: Any, *args: Any, **kwargs: Any) -> th.Tensor:
        params = list(params)
        ids = {id(p) for p in params}
        calls.append((all(p.grad is None for p in slow), all(id(p) in ids for p in slow)))
        return original(params, *args, **kwargs)

    monkeypatch.setattr(th.nn.utils, "clip_grad_norm_", spy)
    for callback, expect_none in ((FastSlowCallback(slow_every=2), True), (None, False)):
        calls.clear()
        model = make_model()
        slow = groups(model)["attention"]
        model.learn(3 * ROLLOUT, callback=callback)
        assert len(calls) == 3 * STEPS_PER_TRAIN  # SB3's calls only (the callback clips with its own import)
        assert all(c == (expect_none, True) for c in calls)


@pytest.mark.parametrize("fast_lr", [3e-4, None])
def test_joint_mode_equals_training_without_callback(fast_lr: float | None) -> None:
    plain = make_model(seed=3)
    plain.learn(4 * ROLLOUT)
    joint = make_model(seed=3)
    joint.learn(4 * ROLLOUT, callback=FastSlowCallback(fast_lr=fast_lr, slow_lr=1.0, mode="joint"))
    for (name, a), b in zip(plain.policy.named_parameters(), joint.policy.parameters(), strict=True):
        assert th.equal(a, b), name


def test_meta_mode_differs_from_joint() -> None:
    joint = make_model(seed=3)
    joint.learn(2 * ROLLOUT, callback=FastSlowCallback(mode="joint"))
    meta = make_model(seed=3)
    meta.learn(2 * ROLLOUT, callback=FastSlowCallback(slow_every=2))
    assert not all(th.equal(a, b) for a, b in zip(joint.policy.parameters(), meta.policy.parameters(), strict=True))


def test_save_load_and_continue(tmp_path: Any) -> None:
    model = make_model()
    model.learn(2 * ROLLOUT, callback=FastSlowCallback(slow_every=2))
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=1))
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(a, b)
    slow = groups(loaded)["attention"]
    before = snapshot(slow)
    fs = FastSlowCallback(slow_every=2)
    loaded.learn(3 * ROLLOUT, callback=fs, reset_num_timesteps=False)
    assert loaded.num_timesteps == 5 * ROLLOUT
    assert fs.slow_updates == 1 and not same(before, slow)
    assert not loaded.policy.optimizer._optimizer_step_pre_hooks


def test_reused_callback_carries_the_meta_sequence_over_learn_calls() -> None:
    model = make_model()
    fs = FastSlowCallback(slow_every=3)
    for _ in range(3):
        model.learn(ROLLOUT, callback=fs, reset_num_timesteps=False)
    assert fs.slow_updates == 1


def test_state_dict_continues_the_meta_sequence_in_a_new_callback() -> None:
    """A new callback loaded with the state of the old one trains exactly as the old one would have."""
    reused = make_model()  # each model seeds the global RNG when built: build and train one after the other
    fs = FastSlowCallback(slow_every=3)
    reused.learn(ROLLOUT, callback=fs)
    reused.learn(ROLLOUT, callback=fs, reset_num_timesteps=False)
    reused_state = fs.state_dict()
    reused.learn(ROLLOUT, callback=fs, reset_num_timesteps=False)

    resumed = make_model()
    first = FastSlowCallback(slow_every=3)
    resumed.learn(ROLLOUT, callback=first)
    state = first.state_dict()
    assert state["rollouts"] == 1 and state["acc_steps"] == STEPS_PER_TRAIN
    second = FastSlowCallback(slow_every=3)
    second.load_state_dict(state)
    resumed.learn(ROLLOUT, callback=second, reset_num_timesteps=False)
    assert second.state_dict()["rollouts"] == reused_state["rollouts"] == 2
    for a, b in zip(second.state_dict()["acc"], reused_state["acc"], strict=True):
        assert th.equal(a, b)
    resumed.learn(ROLLOUT, callback=second, reset_num_timesteps=False)
    assert second.slow_updates == fs.slow_updates == 1
    assert same(snapshot(list(reused.policy.parameters())), snapshot(list(resumed.policy.parameters())))

    mismatched = FastSlowCallback(slow_every=3, mode="reversed")
    mismatched.load_state_dict(state)
    with pytest.raises(ValueError, match="slow groups"):
        make_model().learn(ROLLOUT, callback=mismatched)


class Boom(BaseCallback):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise RuntimeError("interrupted")
        return True


def test_hooks_are_inert_after_an_exception_and_replaced_by_the_next_callback() -> None:
    model = make_model()
    fs = FastSlowCallback(slow_every=4)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.learn(10 * ROLLOUT, callback=[fs, Boom(at=ROLLOUT + 4)])
    opt = model.policy.optimizer
    assert len(opt._optimizer_step_pre_hooks) == 1  # left behind, but inert:
    slow = groups(model)["attention"]
    grads: list[bool] = []
    handle = opt.register_step_pre_hook(lambda *_: grads.append(all(p.grad is not None for p in slow)))
    before = snapshot(slow)
    model.learn(ROLLOUT)  # no callback: plain training, slow gradients reach Adam
    handle.remove()
    assert grads and all(grads) and not same(before, slow)
    fs2 = FastSlowCallback(slow_every=1)
    model.learn(ROLLOUT, callback=fs2)
    assert fs2.slow_updates == 1 and not opt._optimizer_step_pre_hooks
    assert all(not p._post_accumulate_grad_hooks for p in slow)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(slow_every=0), "slow_every"),
        (dict(slow_every=2.5), "slow_every"),
        (dict(slow_every=True), "slow_every"),
        (dict(fast_lr=-1e-3), "fast_lr"),
        (dict(slow_lr=float("nan")), "slow_lr"),
        (dict(fast_lr=float("inf")), "fast_lr"),
        (dict(fast_lr=True), "fast_lr"),
        (dict(slow_lr="1e-3"), "slow_lr"),
        (dict(mode="fast"), "mode"),
        (dict(other="medium"), "other"),
        (dict(slow_fraction=-0.1), "slow_fraction"),
        (dict(slow_fraction=float("nan")), "slow_fraction"),
        (dict(slow_fraction="0.1"), "slow_fraction"),
        (dict(slow_lr=7e-5, slow_fraction=0.1), "slow_lr.*slow_fraction"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FastSlowCallback(**kwargs)


def test_slow_fraction_is_a_ratio_of_the_fast_lr_at_each_use() -> None:
    """rho x the fast lr, a schedule included; rho 0.1 at 7e-4 is the absolute 7e-5 (the presets before rho)."""

    def at(callback: FastSlowCallback, progress: float, schedule: Any) -> tuple[float, float]:
        callback.model = SimpleNamespace(_current_progress_remaining=progress, lr_schedule=schedule)  # type: ignore[assignment]
        return callback.current_lrs()

    def linear(progress: float) -> float:
        return 7e-4 * progress

    for progress in (1.0, 0.5, 0.1):
        fast, slow = at(FastSlowCallback(slow_fraction=0.25), progress, linear)
        assert (fast, slow) == (linear(progress), 0.25 * linear(progress))
        assert at(FastSlowCallback(fast_lr=linear, slow_fraction=0.25), progress, None) == (fast, slow)
    constant = lambda _: 7e-4  # noqa: E731
    ratio, absolute = (
        at(FastSlowCallback(slow_fraction=0.1), 1.0, constant),
        at(FastSlowCallback(slow_lr=7e-5), 1.0, constant),
    )
    assert ratio == pytest.approx(absolute, rel=1e-15)  # 0.1 * 7e-4 is 7e-5 to one unit in the last place (float64)
    assert np.float32(ratio[1]) == np.float32(absolute[1])  # and the same float32 learning rate for the weights
    assert at(FastSlowCallback(), 1.0, constant) == at(FastSlowCallback(slow_fraction=0.1), 1.0, constant)
    assert FastSlowCallback(slow_fraction=np.float32(0.5)).slow_fraction == 0.5


def test_numpy_scalars_are_accepted() -> None:
    fs = FastSlowCallback(fast_lr=np.float32(1e-3), slow_lr=np.float64(5e-4), slow_every=np.int64(3))
    assert (type(fs.fast_lr), type(fs.slow_lr), type(fs.slow_every)) == (float, float, int)
    assert fs.slow_every == 3
    assert fs.fast_lr == pytest.approx(1e-3)


def negative(progress: float) -> float:
    return -progress


@pytest.mark.parametrize(
    ("policy", "kwargs", "match"),
    [
        (LstmPolicy, dict(), "attention"),  # an LSTM has no attention: nothing would be slow
        ("MlpLstmPolicy", dict(), "named"),  # sb3-contrib's policy: one unnamed group
        (MlpRIMPolicy, dict(fast_lr=negative), "fast_lr"),
        (MlpRIMPolicy, dict(slow_lr=negative), "slow_lr"),
    ],
)
def test_bad_policy_or_schedule_fails_at_training_start(policy: Any, kwargs: dict[str, Any], match: str) -> None:
    model = make_model(policy)
    start = snapshot(list(model.policy.parameters()))
    with pytest.raises(ValueError, match=match):
        model.learn(ROLLOUT, callback=FastSlowCallback(**kwargs))
    assert same(start, list(model.policy.parameters()))


@pytest.mark.parametrize(
    ("policy", "kwargs"), [(LstmPolicy, dict(other="slow")), ("MlpLstmPolicy", dict(mode="joint"))]
)
def test_lstm_policies_in_supported_modes(policy: Any, kwargs: dict[str, Any]) -> None:
    model = make_model(policy)
    fs = FastSlowCallback(slow_every=1, **kwargs)
    model.learn(ROLLOUT, callback=fs)
    assert fs.slow_updates == (1 if fs.mode == "meta" else 0)
