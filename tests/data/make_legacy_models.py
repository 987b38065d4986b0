"""Write the tiny saved models that ``tests/metarim_sb3/test_save_load.py`` loads to check old saves still load.

The zips were written by the code as it stood before ``metarim_sb3.rim`` became a package (module
``metarim_sb3/rim.py`` and ``metarim_sb3/_rim_kernels.py``). Do not regenerate them with newer code: their point is
to stay what an older version of the package saved. Run from the repository root::

    python tests/data/make_legacy_models.py
"""

from __future__ import annotations

from pathlib import Path

import torch as th
from sb3_contrib import RecurrentPPO

from metarim_sb3 import MultiInputFastLstmPolicy, MultiInputRIMPolicy

HERE = Path(__file__).resolve().parent
ENV_ID = "metarim_gym:MetaRIM-DoorKey-v0"
EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 8), mission_embedding_dim=4)
RIM_SIZES = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
MODELS = {
    "legacy_rim.zip": (MultiInputRIMPolicy, dict(**RIM_SIZES, net_arch=[8], features_extractor_kwargs=EXTRACTOR)),
    "legacy_lstm.zip": (
        MultiInputFastLstmPolicy,
        dict(lstm_hidden_size=8, net_arch=[8], features_extractor_kwargs=EXTRACTOR),
    ),
}


def main() -> None:
    th.set_num_threads(1)
    for name, (policy, kwargs) in MODELS.items():
        model = RecurrentPPO(policy, ENV_ID, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=kwargs, seed=0)
        model.learn(64)
        model.save(HERE / name)


if __name__ == "__main__":
    main()
