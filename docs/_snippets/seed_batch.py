"""Three Meta-RIMs seeds trained in one process with ``learn_seed_batch``."""

from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback
from metarim_sb3.ppo import ChunkedRecurrentPPO
from metarim_sb3.seed_batch.trainer import learn_seed_batch

extractor = dict(features_dim=16)
sizes = dict(n_units=4, unit_size=8, k=2, features_extractor_kwargs=extractor)
models, callbacks = [], []
for seed in (0, 1, 2):  # one ordinary model per seed: its own envs, callbacks, logger
    env = make_vec_env("MetaRIM-GoTo-v0", n_envs=2, seed=seed)
    model = ChunkedRecurrentPPO(
        MultiInputRIMPolicy, env, n_steps=16, batch_size=32, chunk_len=8,
        seed=seed, policy_kwargs=sizes,
    )  # fmt: skip
    models.append(model)
    # the Meta-RIMs schedule: attention slow (rho = 0.1), unit cells fast
    callbacks.append(FastSlowCallback(mode="meta", slow_fraction=0.1, slow_every=2))

# model.learn for the three at once: one batched forward per env step
learn_seed_batch(models, total_timesteps=64, callbacks=callbacks)
print("frames per seed:", [m.num_timesteps for m in models])
