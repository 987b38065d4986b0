"""RIMPolicy and LstmPolicy: fast sequence path, parameter groups, extractor choice, bad input, SB3 integration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import metarim_gym
from metarim_sb3 import (
    GROUP_NAMES,
    RIM,
    CnnRIMPolicy,
    LSTMCore,
    LstmPolicy,
    MiniGridExtractor,
    MlpFastLstmPolicy,
    MlpRIMPolicy,
    MultiInputFastLstmPolicy,
    MultiInputRIMPolicy,
    RIMPolicy,
)
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

TINY_RIM = dict(n_units=4, unit_size=8, k=2, input_key_size=16, comm_key_size=8, comm_value_size=8, comm_heads=2)
TINY_EXTRACTOR = dict(features_dim=32, cnn_channels=(8, 8), mission_embedding_dim=8)
METARIM_IDS = sorted(i for i in gym.registry if i.startswith("MetaRIM-"))
BOX = spaces.Box(-1.0, 1.0, (5,), np.float32)
ACTIONS = spaces.Discrete(3)


def constant_lr(_: float) -> float:
    return 3e-4


def make_policy(cls: type, **kwargs: object) -> RecurrentActorCriticPolicy:
    return cls(BOX, ACTIONS, constant_lr, net_arch=dict(pi=[16], vf=[16]), **kwargs)


def sequences(n_seq: int, length: int, starts_at: dict[int, list[int]], seed: int = 0) -> tuple[th.Tensor, th.Tensor]:
    """Random observations ``(n_seq * length, 5)`` and episode starts ``(n_seq * length,)``, sequence-major."""
    gen = th.Generator().manual_seed(seed)
    obs = th.rand(n_seq, length, 5, generator=gen) * 2 - 1
    starts = th.zeros(n_seq, length)
    for seq, steps in starts_at.items():
        starts[seq, steps] = 1.0
    return obs.reshape(-1, 5), starts.reshape(-1)


def random_states(policy: RecurrentActorCriticPolicy, n_seq: int, seed: int = 1) -> RNNStates:
    gen = th.Generator().manual_seed(seed)
    core = policy.lstm_actor
    shape = (core.num_layers, n_seq, core.hidden_size)
    pi = (th.randn(shape, generator=gen), th.randn(shape, generator=gen))
    vf = (th.randn(shape, generator=gen), th.randn(shape, generator=gen))
    return RNNStates(pi, vf)


# Resets at t=0 only (the training case), in the middle, two in one sequence, and none.
RESETS = {0: [0], 1: [0, 4], 2: [3, 7], 4: [1]}


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("critic", ["lstm", "shared", "none"])
def test_lstm_policy_equals_sb3_contrib(n_layers: int, critic: str) -> None:
    kwargs = dict(
        lstm_hidden_size=12,
        n_lstm_layers=n_layers,
        shared_lstm=critic == "shared",
        enable_critic_lstm=critic == "lstm",
    )
    th.manual_seed(0)
    ref = make_policy(RecurrentActorCriticPolicy, **kwargs)
    th.manual_seed(0)
    ours = make_policy(MlpFastLstmPolicy, **kwargs)
    assert isinstance(ours.lstm_actor, LSTMCore)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    assert all(th.equal(ref_sd[key], our_sd[key]) for key in ref_sd)  # same initialisation for a given seed

    n_seq, length = 5, 9
    obs, starts = sequences(n_seq, length, RESETS)
    actions = th.randint(0, 3, (n_seq * length,))
    states = random_states(ref, n_seq)
    with th.no_grad():
        for policy in (ref, ours):
            policy.set_training_mode(False)
        expected = ref.evaluate_actions(obs, actions, states, starts)
        got = ours.evaluate_actions(obs, actions, states, starts)
        for e, g in zip(expected, got, strict=True):
            assert th.allclose(e, g, atol=1e-5)
        # core outputs and final states
        feats = ref.extract_features(obs)
        feats = feats[0] if isinstance(feats, tuple) else feats
        out_ref, st_ref = ref._process_sequence(feats, states.pi, starts, ref.lstm_actor)
        out, st = ours._process_sequence(feats, states.pi, starts, ours.lstm_actor)
        assert th.allclose(out_ref, out, atol=1e-5)
        assert all(th.allclose(a, b, atol=1e-5) for a, b in zip(st_ref, st, strict=True))
        # rollout step (T = 1, one sequence per env)
        step_starts = th.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
        a_ref, v_ref, lp_ref, s_ref = ref(obs[:n_seq], states, step_starts, deterministic=True)
        a, v, lp, s = ours(obs[:n_seq], states, step_starts, deterministic=True)
        assert th.equal(a_ref, a) and th.allclose(v_ref, v, atol=1e-5) and th.allclose(lp_ref, lp, atol=1e-5)
        assert all(th.allclose(x, y, atol=1e-5) for x, y in zip((*s_ref.pi, *s_ref.vf), (*s.pi, *s.vf), strict=True))
    # same gradients through the training path
    for policy in (ref, ours):
        values, log_prob, entropy = policy.evaluate_actions(obs, actions, states, starts)
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
    ref_grads, our_grads = dict(ref.named_parameters()), dict(ours.named_parameters())
    for name, param in ref_grads.items():
        assert th.allclose(param.grad, our_grads[name].grad, atol=1e-5), name


def test_lstm_core_resets_like_a_step_loop() -> None:
    th.manual_seed(0)
    core = LSTMCore(5, 7, num_layers=2)
    x = th.randn(8, 3, 5)
    starts = th.zeros(8, 3)
    starts[0, 0] = starts[3, 1] = starts[3, 2] = starts[6, 1] = 1.0
    h0, c0 = th.randn(2, 3, 7), th.randn(2, 3, 7)
    out, (h, c) = core(x, (h0, c0), starts)
    ref_h, ref_c, outs = h0, c0, []
    for t in range(8):
        keep = (1 - starts[t]).view(1, 3, 1)
        o, (ref_h, ref_c) = core(x[t : t + 1], (ref_h * keep, ref_c * keep))
        outs.append(o)
    assert th.allclose(out, th.cat(outs), atol=1e-6)
    assert th.allclose(h, ref_h, atol=1e-6) and th.allclose(c, ref_c, atol=1e-6)
    with pytest.raises(ValueError, match="batch_first"):
        LSTMCore(5, 7, batch_first=True)


def test_rim_fast_path_equals_step_loop() -> None:
    th.manual_seed(0)
    policy = make_policy(MlpRIMPolicy, **TINY_RIM)
    policy.set_training_mode(False)
    core = policy.lstm_actor
    assert isinstance(core, RIM)
    n_seq, length = 5, 9
    _, starts = sequences(n_seq, length, RESETS)
    features = th.randn(n_seq * length, policy.features_dim)
    states = random_states(policy, n_seq).pi
    weights = th.randn(n_seq * length, core.hidden_size)
    out, (h, c) = policy._process_sequence(features, states, starts, core)
    (out * weights).sum().backward()
    grads = [p.grad.clone() for p in core.parameters()]
    core.zero_grad()
    x = features.view(n_seq, length, -1)
    es = starts.view(n_seq, length)
    ref_h, ref_c, outs = states[0], states[1], []
    for t in range(length):
        keep = (1 - es[:, t]).view(1, n_seq, 1)
        o, (ref_h, ref_c) = core(x[:, t].unsqueeze(0), (ref_h * keep, ref_c * keep))
        outs.append(o[0])
    ref_out = th.stack(outs, dim=1).reshape(n_seq * length, -1)
    (ref_out * weights).sum().backward()
    assert th.allclose(out, ref_out, atol=1e-5)
    assert th.allclose(h, ref_h, atol=1e-5) and th.allclose(c, ref_c, atol=1e-5)
    for (name, param), grad in zip(core.named_parameters(), grads, strict=True):
        assert th.allclose(grad, param.grad, atol=1e-4), name


@pytest.mark.parametrize(
    "critic", [dict(), dict(share_features_extractor=False), dict(shared_lstm=True, enable_critic_lstm=False)]
)
def test_rim_actor_and_critic_run_together_like_sb3_contrib_runs_them_apart(critic: dict) -> None:
    """Our forward / evaluate_actions (actor and critic RIMs in one kernel) equal sb3-contrib's (one call each)."""
    th.manual_seed(0)
    policy = make_policy(MlpRIMPolicy, **TINY_RIM, **critic)
    n_seq, length = 5, 9
    obs, starts = sequences(n_seq, length, RESETS)
    actions = th.randint(0, 3, (n_seq * length,))
    states = random_states(policy, n_seq)
    results, grads = [], []
    for evaluate in (RecurrentActorCriticPolicy.evaluate_actions, MlpRIMPolicy.evaluate_actions):
        policy.zero_grad()
        values, log_prob, entropy = evaluate(policy, obs, actions, states, starts)
        (values.sum() + log_prob.sum() + entropy.sum()).backward()
        results.append((values, log_prob, entropy))
        grads.append([p.grad.clone() for p in policy.parameters()])
    for e, g in zip(*results, strict=True):
        assert th.allclose(e, g, atol=1e-6)
    for (name, _), e, g in zip(policy.named_parameters(), *grads, strict=True):
        assert th.allclose(e, g, atol=1e-6), name
    if policy.lstm_critic is not None:  # the critic RIM is trained through the joint kernel
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.lstm_critic.parameters())
    step_starts = th.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    with th.no_grad():
        ref = RecurrentActorCriticPolicy.forward(policy, obs[:n_seq], states, step_starts, deterministic=True)
        got = policy(obs[:n_seq], states, step_starts, deterministic=True)
    assert th.equal(ref[0], got[0]) and th.allclose(ref[1], got[1], atol=1e-6) and th.allclose(ref[2], got[2])
    for a, b in zip((*ref[3].pi, *ref[3].vf), (*got[3].pi, *got[3].vf), strict=True):
        assert th.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("cls", [MlpRIMPolicy, MlpFastLstmPolicy])
def test_training_log_probs_equal_rollout_log_probs(cls: type) -> None:
    """What RecurrentPPO relies on: evaluate_actions over a sequence reproduces the step-by-step rollout."""
    th.manual_seed(0)
    kwargs = TINY_RIM if cls is MlpRIMPolicy else dict(lstm_hidden_size=16)
    policy = make_policy(cls, **kwargs)
    policy.set_training_mode(False)
    n_envs, length = 3, 10
    obs = th.rand(length, n_envs, 5) * 2 - 1
    starts = (th.rand(length, n_envs) < 0.2).float()
    starts[0] = 1.0
    states = init = random_states(policy, n_envs)
    actions, values, log_probs = [], [], []
    with th.no_grad():
        for t in range(length):
            a, v, lp, states = policy(obs[t], states, starts[t])
            actions.append(a)
            values.append(v.flatten())
            log_probs.append(lp)
        seq = lambda x: th.stack(x, dim=1).reshape(n_envs * length, *x[0].shape[1:])  # noqa: E731
        v2, lp2, _ = policy.evaluate_actions(seq(list(obs)), seq(actions), init, seq(list(starts)))
    assert th.allclose(v2.flatten(), seq(values), atol=1e-5)
    assert th.allclose(lp2, seq(log_probs), atol=1e-5)


@pytest.mark.parametrize("cls", [MlpRIMPolicy, MlpFastLstmPolicy])
@pytest.mark.parametrize("critic", ["lstm", "shared", "none"])
def test_param_groups(cls: type, critic: str) -> None:
    kwargs = dict(TINY_RIM) if cls is MlpRIMPolicy else dict(lstm_hidden_size=16)
    policy = make_policy(cls, shared_lstm=critic == "shared", enable_critic_lstm=critic == "lstm", **kwargs)
    assert [g["name"] for g in policy.optimizer.param_groups] == list(GROUP_NAMES)
    groups = policy.param_groups_by_name()
    assert list(groups) == list(GROUP_NAMES)
    for group, name in zip(policy.optimizer.param_groups, GROUP_NAMES, strict=True):
        assert [id(p) for p in group["params"]] == [id(p) for p in groups[name]]
        assert all(isinstance(v, (int, float, str, bool, tuple, type(None))) for k, v in group.items() if k != "params")
    ids = [id(p) for name in GROUP_NAMES for p in groups[name]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in policy.parameters()}
    cores = [policy.lstm_actor] + ([policy.lstm_critic] if critic == "lstm" else [])
    assert (policy.lstm_critic is not None) == (critic == "lstm")
    core_ids = {id(p) for core in cores for p in core.parameters()}
    assert {id(p) for p in groups["modules"] + groups["attention"]} == core_ids
    if cls is MlpRIMPolicy:
        assert groups["attention"], "a RIM has attention parameters"
    else:
        assert groups["attention"] == []
    extractor_ids = {id(p) for p in policy.features_extractor.parameters()}
    assert extractor_ids <= {id(p) for p in groups["other"]}
    assert policy.lstm_actor.hidden_size == policy.lstm_output_dim
    assert policy.mlp_extractor.policy_net[0].in_features == policy.lstm_actor.hidden_size


@pytest.mark.parametrize("cls", [MlpRIMPolicy, MlpFastLstmPolicy])
def test_optimizer_uses_foreach_unless_told_otherwise(cls: type) -> None:
    kwargs = TINY_RIM if cls is MlpRIMPolicy else dict(lstm_hidden_size=8)
    assert all(g["foreach"] is True for g in make_policy(cls, **kwargs).optimizer.param_groups)
    told = make_policy(cls, **kwargs, optimizer_kwargs=dict(foreach=False, eps=1e-5))
    assert all(g["foreach"] is False and g["eps"] == 1e-5 for g in told.optimizer.param_groups)
    sgd = make_policy(cls, **kwargs, optimizer_class=th.optim.SGD)
    assert isinstance(sgd.optimizer, th.optim.SGD) and all(g["foreach"] for g in sgd.optimizer.param_groups)


def test_default_extractors() -> None:
    minigrid_space = metarim_gym.observation_space()
    image_box = spaces.Box(0, 255, (7, 7, 3), np.uint8)
    for cls in (RIMPolicy, MultiInputRIMPolicy, LstmPolicy, MultiInputFastLstmPolicy):
        policy = cls(minigrid_space, spaces.Discrete(7), constant_lr, **(TINY_RIM if "RIM" in cls.__name__ else {}))
        assert isinstance(policy.features_extractor, MiniGridExtractor) and policy.normalize_images is False
    for cls in (RIMPolicy, CnnRIMPolicy):
        policy = cls(image_box, spaces.Discrete(7), constant_lr, **TINY_RIM)
        assert isinstance(policy.features_extractor, MiniGridExtractor) and policy.normalize_images is False
    policy = MlpRIMPolicy(BOX, ACTIONS, constant_lr, **TINY_RIM)
    assert isinstance(policy.features_extractor, FlattenExtractor) and policy.normalize_images is True
    assert policy.lstm_actor.hidden_size == 32


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(k=0), "k"),
        (dict(k=5), "k"),
        (dict(unit_size=0), "unit_size"),
        (dict(n_units=-1), "n_units"),
        (dict(comm_heads=0), "comm_heads"),
        (dict(input_value_size=0), "input_value_size"),
        (dict(cell="transformer"), "cell"),
        (dict(comm_key_size=6, comm_heads=4), "comm_heads"),
        (dict(input_key_size=10, input_heads=3), "input_heads"),
        (dict(dropout=1.5), "dropout"),
        (dict(dropout=float("inf")), "dropout"),
        (dict(dropout=0.1, rim_dropout=0.2), "dropout.*rim_dropout"),
        (dict(k=True), "k"),
        (dict(lstm_hidden_size=64), "lstm_hidden_size"),
        (dict(n_lstm_layers=2), "n_lstm_layers"),
        (dict(lstm_kwargs=dict(dropout=0.1)), "lstm_kwargs"),
        (dict(shared_lstm=True), "shared_lstm"),
    ],
)
def test_rim_policy_bad_kwargs(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        make_policy(MlpRIMPolicy, **{**TINY_RIM, **kwargs})


def test_rim_dropout_is_a_deprecated_name_of_dropout() -> None:
    """Saved models' policy_kwargs may hold ``rim_dropout``: it still works, with a DeprecationWarning."""
    with pytest.warns(DeprecationWarning, match="rim_dropout is deprecated; use dropout"):
        policy = make_policy(MlpRIMPolicy, **TINY_RIM, rim_dropout=0.25)
    assert policy.rim_kwargs["dropout"] == 0.25 and "rim_dropout" not in policy._get_constructor_parameters()


def test_rim_policy_defaults_are_the_rims() -> None:
    """Arguments left out take the RIM constructor's defaults (read from its signature, not a second copy)."""
    import inspect

    from metarim_sb3.cores.rim import RIM
    from metarim_sb3.policies import RIM_DEFAULTS

    signature = inspect.signature(RIM.__init__).parameters
    assert {k: signature[k].default for k in RIM_DEFAULTS} == RIM_DEFAULTS
    assert {"n_units", "unit_size", "k", "dropout"} <= set(RIM_DEFAULTS)
    policy = make_policy(MlpRIMPolicy)
    assert policy.rim_kwargs == RIM_DEFAULTS
    assert policy.lstm_actor.hidden_size == RIM_DEFAULTS["n_units"] * RIM_DEFAULTS["unit_size"]


def test_rim_policy_accepts_numpy_integers() -> None:
    policy = make_policy(MlpRIMPolicy, **{key: np.int64(value) for key, value in TINY_RIM.items()})
    assert type(policy.lstm_actor.hidden_size) is int and policy.lstm_actor.hidden_size == 32
    obs, starts = sequences(2, 3, {0: [0], 1: [0]})
    actions, _, _, _ = policy(obs[:2], random_states(policy, 2), starts[:2])
    assert actions.shape == (2,)


def test_constructors_document_themselves() -> None:
    """``help(RIMPolicy)`` shows the policy's own constructor docstring, not ``nn.Module``'s."""
    for cls in (RIMPolicy, LstmPolicy):
        assert cls.__init__.__doc__ is not None and "Build the policy" in cls.__init__.__doc__


def test_param_groups_need_recurrent_cores() -> None:
    policy = make_policy(MlpRIMPolicy, **TINY_RIM)
    policy.lstm_critic = th.nn.LSTM(4, 4)
    with pytest.raises(TypeError, match="RecurrentCore"):
        policy.param_groups_by_name()


def test_bad_observation_space() -> None:
    with pytest.raises(ValueError, match="observation_space"):
        RIMPolicy(BOX, ACTIONS, constant_lr, features_extractor_class=MiniGridExtractor, **TINY_RIM)
    with pytest.raises(ValueError, match="normalize_images"):
        RIMPolicy(spaces.Box(0, 255, (7, 7, 3), np.uint8), ACTIONS, constant_lr, normalize_images=True, **TINY_RIM)


class CueEnv(gym.Env):
    """Tiny memory task: a cue (+1/-1) at t=0, ``delay`` blank steps, then a query; action = cue side pays 1."""

    def __init__(self, delay: int = 3) -> None:
        self.delay = delay
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        self.t = 0
        return np.array([2 * self.cue - 1, 0], np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        if self.t > self.delay:
            return np.zeros(2, np.float32), 1.0 if int(action) == self.cue else -1.0, True, False, {}
        query = float(self.t == self.delay)
        return np.array([0, query], np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("cls", [RIMPolicy, LstmPolicy])
def test_predict_with_states_and_episode_start(cls: type) -> None:
    kwargs = TINY_RIM if cls is RIMPolicy else dict(lstm_hidden_size=16)
    env = DummyVecEnv([lambda: Monitor(CueEnv()), lambda: Monitor(CueEnv())])
    model = RecurrentPPO(cls, env, n_steps=16, batch_size=16, policy_kwargs=kwargs)
    obs = model.env.reset()
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (2,) and state[0].shape == (1, 2, model.policy.lstm_actor.hidden_size)
    _, state2 = model.predict(obs, state=state, episode_start=np.array([False, False]), deterministic=True)
    assert not np.allclose(state2[0], state[0])
    # episode_start=True zeroes the given state: same result as starting from no state
    fresh = model.predict(obs, state=None, episode_start=np.array([True, True]), deterministic=True)
    reset = model.predict(obs, state=state2, episode_start=np.array([True, True]), deterministic=True)
    assert np.array_equal(fresh[0], reset[0]) and np.allclose(fresh[1][0], reset[1][0], atol=1e-6)
    single, _ = model.predict(obs[0], deterministic=True)  # one unbatched observation
    assert np.ndim(single) == 0
    mean, _ = evaluate_policy(model, model.env, n_eval_episodes=4)
    assert -1.0 <= mean <= 1.0


@pytest.mark.parametrize("env_id", METARIM_IDS)
def test_learn_every_metarim_env(env_id: str) -> None:
    policy_kwargs = dict(features_extractor_kwargs=TINY_EXTRACTOR, **TINY_RIM)
    model = RecurrentPPO(
        MultiInputRIMPolicy, env_id, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=policy_kwargs
    )
    model.learn(64)
    assert model.num_timesteps >= 64


def test_learn_fast_lstm_and_imgobs_wrapper() -> None:
    from minigrid.wrappers import ImgObsWrapper

    model = RecurrentPPO(
        MultiInputFastLstmPolicy,
        "MetaRIM-DoorKey-v0",
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        policy_kwargs=dict(lstm_hidden_size=16, features_extractor_kwargs=TINY_EXTRACTOR),
    )
    model.learn(64)
    env = DummyVecEnv([lambda: ImgObsWrapper(gym.make("MiniGrid-Empty-5x5-v0"))])
    model = RecurrentPPO(RIMPolicy, env, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=TINY_RIM)
    assert model.policy.observation_space.shape == (3, 7, 7)  # SB3 transposed it; the extractor copes
    model.learn(64)


def test_subproc_vec_env() -> None:
    env = make_vec_env("metarim_gym:MetaRIM-MultiRoom-v0", n_envs=2, vec_env_cls=SubprocVecEnv)  # forkserver
    try:
        model = RecurrentPPO(
            MultiInputRIMPolicy,
            env,
            n_steps=32,
            batch_size=32,
            n_epochs=1,
            policy_kwargs=dict(features_extractor_kwargs=TINY_EXTRACTOR, **TINY_RIM),
        )
        model.learn(128)
        evaluate_policy(model, env, n_eval_episodes=2)
    finally:
        env.close()


@pytest.mark.gpu
@pytest.mark.parametrize("cls", [MultiInputRIMPolicy, MultiInputFastLstmPolicy])
def test_cuda(cls: type) -> None:
    kwargs = dict(TINY_RIM) if cls is MultiInputRIMPolicy else dict(lstm_hidden_size=16)
    model = RecurrentPPO(
        cls, "MetaRIM-MultiRoom-v0", n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=kwargs, device="cuda"
    )
    model.learn(64)
    assert all(p.is_cuda for p in model.policy.parameters())
    obs = model.env.reset()
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and isinstance(state[0], np.ndarray)


@pytest.mark.slow
def test_rim_learns_memory_task() -> None:
    """A cue must be carried over 10 blank steps: a feed-forward policy cannot beat 0 in expectation."""
    th.manual_seed(0)
    env = make_vec_env(lambda: CueEnv(delay=10), n_envs=8, seed=0)
    eval_env = make_vec_env(lambda: CueEnv(delay=10), n_envs=4, seed=1)
    kwargs = dict(net_arch=[32], n_units=4, unit_size=16, k=2)
    model = RecurrentPPO(RIMPolicy, env, n_steps=64, batch_size=256, learning_rate=1e-3, policy_kwargs=kwargs, seed=0)
    rim_mean, _ = evaluate_policy(model.learn(16_000), eval_env, n_eval_episodes=200)
    ff = PPO("MlpPolicy", env, n_steps=64, batch_size=256, learning_rate=1e-3, seed=0).learn(16_000)
    ff_mean, _ = evaluate_policy(ff, eval_env, n_eval_episodes=200)
    assert ff_mean < 0.5, f"feed-forward PPO reached {ff_mean:.2f}: the task does not need memory"
    assert rim_mean > 0.9, f"RIMPolicy reached {rim_mean:.2f}"


@pytest.mark.slow
def test_rim_learns_memory_task_in_chunks() -> None:
    """
    The same memory task with :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO` (truncated BPTT). Gradients
    reach back at most ``chunk_len`` steps, so the cue (t=0) reaches the decision (t=10) only in episodes that lie
    inside one chunk: ``chunk_len`` must be longer than the delay + 1. With 32 (n_steps 64, episodes of 11 steps)
    about 22/32 of the episodes do; the others start their chunk from the state stored at collection.
    Measured: mean return 1.00 over 200 episodes after 16k steps, 65 s on 1 thread (the stock test asserts > 0.9).
    """
    th.manual_seed(0)
    env = make_vec_env(lambda: CueEnv(delay=10), n_envs=8, seed=0)
    eval_env = make_vec_env(lambda: CueEnv(delay=10), n_envs=4, seed=1)
    kwargs = dict(net_arch=[32], n_units=4, unit_size=16, k=2)
    model = ChunkedRecurrentPPO(RIMPolicy, env, chunk_len=32, n_steps=64, batch_size=256, learning_rate=1e-3,
                                policy_kwargs=kwargs, seed=0)  # fmt: skip
    rim_mean, _ = evaluate_policy(model.learn(16_000), eval_env, n_eval_episodes=200)
    assert rim_mean > 0.9, f"RIMPolicy with chunk_len 32 reached {rim_mean:.2f}"
