"""The mission tokenizer and the shared observation space."""

from __future__ import annotations

import numpy as np
import pytest

from metarim_gym.spaces import MAX_MISSION_LEN, VOCABULARY, MissionTokenizer, observation_space


def test_round_trip_and_padding() -> None:
    tok = MissionTokenizer()
    ids = tok.encode("Go to the red ball, then pick up a key.")
    assert ids.shape == (MAX_MISSION_LEN,) and ids.dtype == np.int64
    assert tok.decode(ids) == "go to the red ball then pick up a key"
    assert (ids[10:] == 0).all() and (ids[:10] > 0).all()
    assert observation_space().contains({"image": np.zeros((7, 7, 3), np.uint8), "direction": 1, "mission": ids})


def test_unknown_word_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="unicorn"):
        MissionTokenizer().encode("go to the unicorn")


def test_too_long_mission_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_len"):
        MissionTokenizer(max_len=3).encode("go to the red ball")
    with pytest.raises(ValueError, match="max_len"):
        MissionTokenizer(max_len=0)


def test_vocabulary_is_fixed_and_unique() -> None:
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    space = observation_space()
    assert int(space["mission"].high.max()) == len(VOCABULARY)
    assert space["image"].high[0, 0].tolist() == [10, 5, 2]
