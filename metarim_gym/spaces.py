"""The observation space shared by every MetaRIM environment, and the mission tokenizer.

Every task of every family is exposed through one :class:`gymnasium.spaces.Dict`, so that an agent trained on
one stage can be run on any other stage, family or held-out task without rebuilding its network:

- ``image``: the 7×7×3 egocentric view of MiniGrid as (object, colour, state) *indices*, declared with their true
  upper bounds (10, 5, 2), not as 0..255 pixels;
- ``direction``: the agent's heading, ``Discrete(4)``;
- ``mission``: the mission sentence as token ids from the fixed :data:`VOCABULARY` (0 is padding), padded to
  :data:`MAX_MISSION_LEN`. No text appears in an observation by default; ``mission_format="text"`` gives the
  mission sentence itself, as MiniGrid does (for MiniGrid's ``FlatObsWrapper`` and
  ``DictObservationSpaceWrapper``, or agents that read text).

The vocabulary is part of the observation contract: changing it changes what the token ids mean and requires a
version bump of every registered id.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

#: Side of MiniGrid's egocentric view.
VIEW_SIZE = 7
#: Largest object, colour and state index of MiniGrid (``OBJECT_TO_IDX``, ``COLOR_TO_IDX``, ``STATE_TO_IDX``).
IMAGE_CHANNEL_MAX = (10, 5, 2)
#: Maximum number of mission tokens; longer missions are an error.
MAX_MISSION_LEN = 24
#: Id of the padding token.
PAD_ID = 0
#: The values of the ``mission_format`` keyword: token ids (default) or the mission sentence.
MISSION_FORMATS = ("tokens", "text")
#: Longest mission sentence of the ``text`` format, in characters.
MAX_MISSION_CHARS = 256
_MISSION_CHARSET = frozenset(string.ascii_letters + " ,.'")

#: Every word of every MiniGrid and BabyAI mission (checked against minigrid 3.2), plus colour and object names.
#: Token id = position + 1. Append only, and bump the env versions when you do.
VOCABULARY: tuple[str, ...] = (
    # verbs and function words
    "a", "after", "and", "at", "avoid", "behind", "end", "fetch", "find", "from", "front", "get", "go", "in",
    "matching", "must", "near", "next", "of", "on", "open", "opening", "pick", "put", "reach", "then", "to",
    "traverse", "unlock", "up", "use", "you", "your", "left", "right", "the", "is", "square",
    # objects and places
    "ball", "box", "door", "goal", "hallway", "key", "lava", "object", "room", "rooms", "wall", "floor",
    # colours
    "red", "green", "blue", "purple", "yellow", "grey",
)  # fmt: skip

_WORD_TO_ID = {word: i + 1 for i, word in enumerate(VOCABULARY)}
_WORD_RE = re.compile(r"[a-z]+")


class MissionTokenizer:
    """Turns mission sentences into fixed-length arrays of token ids.

    Unknown words raise a :class:`ValueError` naming them; they are never silently dropped.

    :param max_len: length of the token array; missions with more words are an error.
    """

    def __init__(self, max_len: int = MAX_MISSION_LEN) -> None:
        if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        self.max_len = max_len
        self.vocab_size = len(VOCABULARY) + 1

    def words(self, mission: str) -> list[str]:
        """Split a mission into lower-case words (punctuation is ignored).

        :param mission: the mission sentence.
        :return: its words.
        """
        return _WORD_RE.findall(mission.lower())

    def encode(self, mission: str) -> np.ndarray:
        """Encode one mission.

        :param mission: the mission sentence, e.g. ``"go to the red ball"``.
        :return: an int64 array of shape ``(max_len,)``, padded with :data:`PAD_ID`.
        """
        words = self.words(mission)
        unknown = [w for w in words if w not in _WORD_TO_ID]
        if unknown:
            raise ValueError(
                f"mission {mission!r} has words outside the MetaRIM vocabulary: {sorted(set(unknown))}; "
                f"allowed words are metarim_gym.spaces.VOCABULARY"
            )
        if len(words) > self.max_len:
            raise ValueError(f"mission {mission!r} has {len(words)} words, more than max_len={self.max_len}")
        tokens = np.zeros(self.max_len, dtype=np.int64)
        tokens[: len(words)] = [_WORD_TO_ID[w] for w in words]
        return tokens

    def decode(self, tokens: Sequence[int] | np.ndarray) -> str:
        """Turn token ids back into a sentence (padding dropped).

        :param tokens: token ids as produced by :meth:`encode`.
        :return: the words joined by spaces.
        """
        return " ".join(VOCABULARY[int(t) - 1] for t in tokens if int(t) != PAD_ID)


def observation_space(max_mission_len: int = MAX_MISSION_LEN, mission_format: str = "tokens") -> spaces.Dict:
    """Build the shared MetaRIM observation space.

    :param max_mission_len: number of mission tokens.
    :param mission_format: ``"tokens"`` (a Box of token ids) or ``"text"`` (a Text space holding the sentence).
    :return: ``Dict(image, direction, mission)`` as described in the module docstring.
    """
    if mission_format not in MISSION_FORMATS:
        raise ValueError(f"mission_format must be one of {MISSION_FORMATS}, got {mission_format!r}")
    high = np.broadcast_to(np.array(IMAGE_CHANNEL_MAX, dtype=np.uint8), (VIEW_SIZE, VIEW_SIZE, 3)).copy()
    mission: spaces.Space
    if mission_format == "text":
        mission = spaces.Text(max_length=MAX_MISSION_CHARS, min_length=1, charset=_MISSION_CHARSET)
    else:
        mission = spaces.Box(low=0, high=len(VOCABULARY), shape=(max_mission_len,), dtype=np.int64)
    return spaces.Dict(
        {
            "image": spaces.Box(low=0, high=high, shape=(VIEW_SIZE, VIEW_SIZE, 3), dtype=np.uint8),
            "direction": spaces.Discrete(4),
            "mission": mission,
        }
    )
