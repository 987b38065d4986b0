"""learn_seed_batch: S ordinary models trained in lockstep equal their separate ``model.learn`` runs."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

import metarim_gym  # noqa: F401
from metarim_sb3 import MultiInputFastLstmPolicy, MultiInputGruPolicy, MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback
from metarim_sb3.policies import FastRecurrentPolicy
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO
from metarim_sb3.seed_batch.trainer import learn_seed_batch

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 8), mission_embedding_dim=4)
N_STEPS = 8
PPO = dict(n_steps=N_STEPS, batch_size=8, chunk_len=4, n_epochs=2, learning_rate=1e-3, ent_coef=0.01, max_grad_norm=0.5)
FAST_SLOW = dict(mode="meta", slow_every=2, slow_lr=5e-4)
N_ENVS = 2
ROLLOUT = N_STEPS * N_ENVS  # frames per rollout and seed
STEPS = 2 * ROLLOUT  # two iterations


def make_model(agent: str, seed: int, **ppo: Any) -> ChunkedRecurrentPPO:
    # episodes cut at 6 steps: truncations, whose rewards the value function bootstraps
    env = make_vec_env("MetaRIM-GoTo-v0", n_envs=N_ENVS, seed=seed, env_kwargs={"max_episode_steps": 6})
    kwargs: dict[str, Any] = dict(net_arch=[8], features_extractor_kwargs=EXTRACTOR)
    policy: type[FastRecurrentPolicy]
    if agent == "rim":
        policy, kwargs = MultiInputRIMPolicy, {**kwargs, **TINY_RIM}
    else:
        policy = MultiInputFastLstmPolicy if agent == "lstm" else MultiInputGruPolicy
        kwargs["lstm_hidden_size"] = 8
    return ChunkedRecurrentPPO(policy, env, seed=seed, policy_kwargs=kwargs, device="cpu", **{**PPO, **ppo})  # type: ignore[arg-type]


class Recorder(BaseCallback):
    """Counts the hooks and keeps each rollout's actions and rewards; ``stop_at``: ``on_step`` returns False at that
    call; ``fast_slow``: the FastSlowCallback given beside it."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.fast_slow: FastSlowCallback | None = None
        self.truncations = 0
        self.calls = {"training_start": 0, "rollout_start": 0, "step": 0, "rollout_end": 0, "training_end": 0}
        self.actions: list[np.ndarray] = []
        self.timesteps: list[int] = []

    def _on_training_start(self) -> None:
        self.calls["training_start"] += 1

    def _on_rollout_start(self) -> None:
        self.calls["rollout_start"] += 1

    def _on_step(self) -> bool:
        self.calls["step"] += 1
        self.timesteps.append(self.model.num_timesteps)
        self.truncations += sum(bool(i.get("TimeLimit.truncated")) for i in self.locals["infos"])
        return self.calls["step"] != self.stop_at

    def _on_rollout_end(self) -> None:
        self.calls["rollout_end"] += 1
        self.actions.append(self.model.rollout_buffer.actions.copy())  # type: ignore[attr-defined]

    def _on_training_end(self) -> None:
        self.calls["training_end"] += 1


def callbacks_for(fast_slow: bool, recorder: Recorder) -> list[BaseCallback]:
    if not fast_slow:
        return [recorder]
    recorder.fast_slow = FastSlowCallback(**FAST_SLOW)  # type: ignore[arg-type]
    return [recorder.fast_slow, recorder]


def separate(
    agent: str, seed: int, fast_slow: bool, steps: int = STEPS, **ppo: Any
) -> tuple[ChunkedRecurrentPPO, Recorder]:
    """``model.learn`` with the global streams seeded as learn_seed_batch seeds the model's own."""
    model, rec = make_model(agent, seed, **ppo), Recorder()
    torch.manual_seed(seed)
    np.random.seed(seed)
    model.learn(steps, callback=callbacks_for(fast_slow, rec))
    return model, rec


def batched(
    agent: str, seeds: list[int], fast_slow: bool, **ppo: Any
) -> tuple[list[ChunkedRecurrentPPO], list[Recorder]]:
    models = [make_model(agent, s, **ppo) for s in seeds]
    recs = [Recorder() for _ in seeds]
    learn_seed_batch(models, STEPS, callbacks=[callbacks_for(fast_slow, r) for r in recs])
    return models, recs


def params(model: ChunkedRecurrentPPO) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.policy.named_parameters()}


def assert_same_run(got: ChunkedRecurrentPPO, got_rec: Recorder, want: ChunkedRecurrentPPO, want_rec: Recorder) -> None:
    """Same rollouts (actions), parameters, Adam state and counters."""
    assert len(got_rec.actions) == len(want_rec.actions) == STEPS // ROLLOUT
    for a, b in zip(got_rec.actions, want_rec.actions, strict=True):
        np.testing.assert_array_equal(a, b)
    initial = dict(make_model_like(want).policy.named_parameters())
    want_params = params(want)
    moved = 0
    for name, p in params(got).items():
        torch.testing.assert_close(p, want_params[name], rtol=1e-4, atol=1e-5, msg=name)
        moved += int(not torch.equal(p, initial[name]))
    assert moved > 0
    opt_got, opt_want = got.policy.optimizer, want.policy.optimizer
    named_want = dict(want.policy.named_parameters())
    for name, p in got.policy.named_parameters():
        st, ref = opt_got.state.get(p), opt_want.state.get(named_want[name])
        assert (st is None) == (ref is None), name
        if st is not None and ref is not None:
            assert float(st["step"]) == float(ref["step"]), name
            torch.testing.assert_close(st["exp_avg"], ref["exp_avg"], rtol=1e-3, atol=1e-6, msg=name)
    assert got.num_timesteps == want.num_timesteps == STEPS
    assert got._n_updates == want._n_updates
    assert got_rec.calls == want_rec.calls
    assert got_rec.truncations == want_rec.truncations > 0
    if want_rec.fast_slow is not None:
        assert got_rec.fast_slow is not None and got_rec.fast_slow.slow_updates == want_rec.fast_slow.slow_updates == 1
        got_state, want_state = got_rec.fast_slow.state_dict(), want_rec.fast_slow.state_dict()
        assert (got_state["acc_steps"], got_state["rollouts"]) == (want_state["acc_steps"], want_state["rollouts"])


def assert_params_close(got: ChunkedRecurrentPPO, want: ChunkedRecurrentPPO) -> None:
    """
    Equal up to float rounding (the cores are bitwise independent across seeds: test_seed_batch_cores), at the
    tolerance of :func:`assert_same_run`: summed in another order, a bias gradient near 0 moves a parameter by about
    2e-6 after one Adam step on some CPUs (measured on ``action_net.bias``), where an update's step is about 1e-3.
    """
    want_params = params(want)
    for name, p in params(got).items():
        torch.testing.assert_close(p, want_params[name], rtol=1e-4, atol=1e-5, msg=name)


_INITIAL: dict[tuple[str, int], ChunkedRecurrentPPO] = {}


def make_model_like(model: ChunkedRecurrentPPO) -> ChunkedRecurrentPPO:
    """A fresh model of the same agent and seed (its initial parameters)."""
    agent = "rim" if isinstance(model.policy, MultiInputRIMPolicy) else "gru"
    if isinstance(model.policy, MultiInputFastLstmPolicy):
        agent = "lstm"
    key = (agent, int(model.seed or 0))
    if key not in _INITIAL:
        _INITIAL[key] = make_model(agent, key[1])
    return _INITIAL[key]


@pytest.mark.parametrize(("agent", "fast_slow"), [("rim", True), ("lstm", False), ("gru", False)])
def test_one_seed_equals_learn(agent: str, fast_slow: bool) -> None:
    want, want_rec = separate(agent, 3, fast_slow)
    models, recs = batched(agent, [3], fast_slow)
    assert_same_run(models[0], recs[0], want, want_rec)


@pytest.fixture(scope="module")
def three_seeds() -> tuple[list[ChunkedRecurrentPPO], list[Recorder]]:
    return batched("rim", [0, 1, 2], True)


def test_three_seeds_equal_their_separate_runs(three_seeds: tuple[list[Any], list[Recorder]]) -> None:
    models, recs = three_seeds
    for s in range(3):
        want, want_rec = separate("rim", s, True)
        assert_same_run(models[s], recs[s], want, want_rec)


def test_seeds_do_not_interact(three_seeds: tuple[list[Any], list[Recorder]]) -> None:
    models, recs = three_seeds
    other, other_recs = batched("rim", [0, 1, 99], True)  # seed 2: other weights, environments, random streams
    assert not np.array_equal(recs[2].actions[0], other_recs[2].actions[0])
    for s in (0, 1):
        for a, b in zip(recs[s].actions, other_recs[s].actions, strict=True):
            np.testing.assert_array_equal(a, b)
        assert_params_close(other[s], models[s])


def test_a_stopped_seed_leaves_the_batch_and_the_others_go_on(
    three_seeds: tuple[list[Any], list[Recorder]], tmp_path: Path
) -> None:
    models, recs = three_seeds
    others = [make_model("rim", s) for s in range(3)]
    stop_at = N_STEPS + 3  # in the second rollout: the first update had all three seeds
    rec = [Recorder(), Recorder(stop_at=stop_at), Recorder()]
    for s, model in enumerate(others):
        model.set_logger(configure(str(tmp_path / f"seed{s}"), ["csv"]))
    learn_seed_batch(others, STEPS, callbacks=[callbacks_for(True, r) for r in rec])
    assert rec[1].calls == dict(training_start=1, rollout_start=2, step=stop_at, rollout_end=1, training_end=1)
    assert others[1].num_timesteps == stop_at * N_ENVS  # as learn(): counted before on_step, then stopped
    once, once_rec = separate("rim", 1, True, steps=ROLLOUT)  # the stopped seed: trained once, mid meta-sequence
    assert_params_close(others[1], once)
    got, want = rec[1].fast_slow.state_dict(), once_rec.fast_slow.state_dict()  # type: ignore[union-attr]
    assert (got["acc_steps"], got["rollouts"], got["slow_updates"]) == (want["acc_steps"], 1, 0) and got["acc_steps"]
    for a, b in zip(got["acc"], want["acc"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for s in (0, 2):  # the others went on, unchanged by the stop (weights, Adam and slow state rebuilt without 1)
        assert rec[s].calls == recs[s].calls
        assert rec[s].calls["step"] == STEPS // N_ENVS and rec[s].timesteps[-1] == STEPS == others[s].num_timesteps
        assert rec[s].timesteps[:N_STEPS] == [N_ENVS * (i + 1) for i in range(N_STEPS)]
        assert_params_close(others[s], models[s])
    with open(tmp_path / "seed0" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["time/total_timesteps"]) for r in rows] == [ROLLOUT, STEPS]
    for key in ("time/fps", "train/value_loss", "train/approx_kl", "train/lr_fast", "train/slow_updates"):
        assert rows[-1][key] != "", key  # the first update's records, dumped with the second iteration's row
    assert float(rows[-1]["train/n_updates"]) == PPO["n_epochs"]


def test_refuses_models_that_cannot_be_batched() -> None:
    a, b = make_model("lstm", 0), make_model("lstm", 1, n_epochs=1)
    with pytest.raises(ValueError, match="n_epochs"):
        learn_seed_batch([a, b], STEPS)
    c = make_model("lstm", 1)
    with pytest.raises(ValueError, match="FastSlowCallback"):
        learn_seed_batch([a, c], STEPS, callbacks=[FastSlowCallback(), None])
    shared = Recorder()
    with pytest.raises(ValueError, match="share a callback"):
        learn_seed_batch([a, c], STEPS, callbacks=[shared, [shared]])
    with pytest.raises(ValueError, match="no parameters"):  # an LSTM has no attention for the meta mode
        learn_seed_batch([a, c], STEPS, callbacks=[FastSlowCallback(), FastSlowCallback()])
