"""GRUCore (resets inside a sequence, LSTM-shaped state) and GruPolicy with sb3-contrib's RecurrentPPO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env

from metarim_sb3 import MultiInputRIMPolicy  # noqa: F401  (the package imports cleanly with the GRU names)
from metarim_sb3.cores import RecurrentCore
from metarim_sb3.cores.gru import GRUCore
from metarim_sb3.policies import MlpGruPolicy


def loop_reference(core: GRUCore, x: th.Tensor, h: th.Tensor, starts: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """sb3-contrib's semantics: one step at a time, the state multiplied by (1 - start) before each step."""
    outs = []
    for t in range(x.shape[0]):
        h = h * (1.0 - starts[t]).view(1, -1, 1)
        out, h = nn_gru(core)(x[t : t + 1], h)
        outs.append(out)
    return th.cat(outs), h


def nn_gru(core: GRUCore) -> th.nn.GRU:
    plain = th.nn.GRU(core.input_size, core.hidden_size, core.num_layers)
    plain.load_state_dict(core.state_dict())
    return plain


@pytest.mark.parametrize("t_len", [1, 7])
def test_gru_core_equals_the_per_step_loop_with_resets(t_len: int) -> None:
    th.manual_seed(0)
    core = GRUCore(5, 6)
    x, h = th.randn(t_len, 4, 5), th.randn(1, 4, 6)
    starts = (th.rand(t_len, 4) < 0.3).float()
    starts[0, 0] = 1.0
    out, (h_t, c_t) = core(x, (h, th.zeros_like(h)), starts)
    ref_out, ref_h = loop_reference(core, x, h, starts)
    th.testing.assert_close(out, ref_out)
    th.testing.assert_close(h_t, ref_h)
    assert th.equal(c_t, th.zeros_like(c_t))
    assert core.parameter_roles()["attention"] == [] and len(core.parameter_roles()["modules"]) == 4
    assert isinstance(core, RecurrentCore)


def test_gru_core_reset_clears_a_non_finite_state() -> None:
    core = GRUCore(3, 4)
    h = th.full((1, 2, 4), float("nan"))
    starts = th.tensor([[1.0, 0.0], [0.0, 0.0]])
    out, (h_t, _) = core(th.randn(2, 2, 3), (h, th.zeros_like(h)), starts)
    assert th.isfinite(out[:, 0]).all() and th.isfinite(h_t[:, 0]).all()
    assert th.isnan(out[:, 1]).all()  # no reset, the NaN state stays: only a reset clears it


def test_gru_core_rejects_unsupported_options() -> None:
    with pytest.raises(ValueError, match="batch_first"):
        GRUCore(3, 4, batch_first=True)


def test_gru_policy_trains_saves_and_loads(tmp_path: Path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = RecurrentPPO(
        MlpGruPolicy, env, n_steps=16, batch_size=16, n_epochs=2, seed=0, policy_kwargs=dict(lstm_hidden_size=8)
    )
    before = [p.detach().clone() for p in model.policy.lstm_actor.parameters()]
    model.learn(64)
    assert isinstance(model.policy.lstm_actor, GRUCore)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.lstm_actor.parameters(), strict=True))
    groups = {g["name"]: g["params"] for g in model.policy.optimizer.param_groups}
    assert groups["attention"] == [] and len(groups["modules"]) == 8  # actor and critic GRUs
    obs = env.reset()
    starts = np.ones(2, dtype=bool)
    action, state = model.predict(obs, episode_start=starts, deterministic=True)
    model.save(tmp_path / "gru.zip")
    loaded = RecurrentPPO.load(tmp_path / "gru.zip")
    action2, state2 = loaded.predict(obs, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(action, action2)
    np.testing.assert_allclose(state[0], state2[0])
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(a.detach(), b.detach())
