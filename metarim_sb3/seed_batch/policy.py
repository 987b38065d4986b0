"""``S`` recurrent actor-critic policies of one configuration as one seed-batched module.

:class:`SeedBatchPolicy` stands for ``S`` :class:`~metarim_sb3.policies.FastRecurrentPolicy` of the same sizes
(:class:`~metarim_sb3.policies.LstmPolicy`, :class:`~metarim_sb3.policies.GruPolicy` or
:class:`~metarim_sb3.policies.RIMPolicy`, with :class:`~metarim_sb3.torch_layers.MiniGridExtractor` and a
``Discrete`` action space): the same parameter names, each ``[S, *shape]``, and the same computation per seed
(:meth:`SeedBatchPolicy.evaluate_actions` equals each policy's ``evaluate_actions``). All three critic wirings are
supported (separate cores, shared, shared-detached).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import Tensor, nn

from metarim_sb3.cores.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES
from metarim_sb3.policies import FastRecurrentPolicy
from metarim_sb3.seed_batch.cores import seed_core
from metarim_sb3.seed_batch.layers import SeedLinear, SeedMiniGridExtractor, SeedSequential
from metarim_sb3.seed_batch.stacking import stack_into, unstack_into
from metarim_sb3.torch_layers import MiniGridExtractor

__all__ = ["SeedBatchPolicy"]

Obs = Tensor | dict[str, Tensor]
State = tuple[Tensor, Tensor]


def _flat_obs(obs: Obs) -> Obs:
    """``[S, B, ...]`` -> ``[S * B, ...]`` (every entry of a Dict)."""
    if isinstance(obs, dict):
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in obs.items()}
    return obs.reshape(-1, *obs.shape[2:])


class _SeedMlpExtractor(nn.Module):
    """SB3's ``MlpExtractor`` names (``policy_net``, ``value_net``) for the seed-batched MLPs."""

    def __init__(self, policy_net: SeedSequential, value_net: SeedSequential) -> None:
        super().__init__()
        self.policy_net, self.value_net = policy_net, value_net


class SeedBatchPolicy(nn.Module):
    """``S`` policies of one configuration, parameters stacked along a leading seed dimension.

    Built from an ordinary policy (sizes, wiring; weights not copied); :meth:`from_policies` builds one and copies
    ``S`` policies' weights in, :meth:`unstack_into` copies them back out.

    :param template: an ordinary policy of the configuration.
    :param n_seeds: ``S``.
    :raises TypeError: for a configuration not supported yet (another extractor, a non-``Discrete`` action space,
        separate actor and critic extractors).
    """

    def __init__(self, template: FastRecurrentPolicy, n_seeds: int) -> None:
        super().__init__()
        if not isinstance(template.action_space, spaces.Discrete):
            raise TypeError(f"SeedBatchPolicy: Discrete action spaces only, got {template.action_space}")
        if not template.share_features_extractor or not isinstance(template.features_extractor, MiniGridExtractor):
            raise TypeError("SeedBatchPolicy: only one shared MiniGridExtractor is supported yet")
        self.n_seeds = n_seeds
        self.observation_space = template.observation_space
        self.action_space = template.action_space
        self.normalize_images = template.normalize_images
        self.shared_lstm, self.shared_critic_gradient = template.shared_lstm, template.shared_critic_gradient
        self.features_extractor = SeedMiniGridExtractor(template.features_extractor, n_seeds)
        self.lstm_actor = seed_core(template.lstm_actor, n_seeds)
        self.lstm_critic = None if template.lstm_critic is None else seed_core(template.lstm_critic, n_seeds)
        critic = template.critic
        self.critic = SeedLinear.like(critic, n_seeds) if isinstance(critic, nn.Linear) else None
        self.mlp_extractor = _SeedMlpExtractor(
            SeedSequential(template.mlp_extractor.policy_net, n_seeds),
            SeedSequential(template.mlp_extractor.value_net, n_seeds),
        )
        assert isinstance(template.action_net, nn.Linear) and isinstance(template.value_net, nn.Linear)
        self.action_net = SeedLinear.like(template.action_net, n_seeds)
        self.value_net = SeedLinear.like(template.value_net, n_seeds)

    @classmethod
    def from_policies(cls, policies: Sequence[FastRecurrentPolicy]) -> SeedBatchPolicy:
        """The batched policy of ``S`` ordinary policies, seed ``s`` carrying ``policies[s]``'s weights.

        :param policies: ``S`` policies of one configuration.
        :return: the batched policy.
        """
        batched = cls(policies[0], len(policies))
        stack_into(batched, policies)
        return batched

    def unstack_into(self, policies: Sequence[FastRecurrentPolicy]) -> None:
        """Copy seed ``s``'s weights into ``policies[s]``, for each ``s``.

        :param policies: ``S`` ordinary policies of the configuration.
        """
        unstack_into(self, policies)

    def param_groups_by_name(self) -> dict[str, list[nn.Parameter]]:
        """The parameters by role, as :meth:`FastRecurrentPolicy.param_groups_by_name
        <metarim_sb3.policies.FastRecurrentPolicy.param_groups_by_name>` (same order), each ``[S, *shape]``.

        :return: ``{name: parameters}`` for every name of :data:`~metarim_sb3.cores.protocol.ROLE_NAMES`.
        """
        cores = [self.lstm_actor] if self.lstm_critic is None else [self.lstm_actor, self.lstm_critic]
        groups: dict[str, list[nn.Parameter]] = {name: [] for name in ROLE_NAMES}
        seen: set[int] = set()
        for core in cores:
            roles: dict[str, list[nn.Parameter]] = core.parameter_roles()  # type: ignore[operator]
            for name in (MODULES, ATTENTION):
                groups[name] += roles[name]
                seen.update(id(p) for p in roles[name])
        groups[OTHER] = [p for p in self.parameters() if id(p) not in seen]
        return groups

    def extract_features(self, obs: Obs) -> Tensor:
        """:param obs: raw observations (as a rollout buffer stores them), each ``[S, B, ...]``.
        :return: features ``[S, B, features_dim]``."""
        flat = preprocess_obs(_flat_obs(obs), self.observation_space, normalize_images=self.normalize_images)
        return self.features_extractor(flat)  # type: ignore[no-any-return]

    @staticmethod
    def _sequences(core: nn.Module, features: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Run a seed-batched core over padded sequences laid out sequence-major (as the recurrent buffers do).

        :param features: ``[S, n_seq * T, F]``.
        :param state: ``(h, c)``, each ``[S, 1, n_seq, H]``.
        :param episode_starts: ``[S, n_seq * T]``.
        :return: outputs ``[S, n_seq * T, H]`` and the final states.
        """
        s, n_seq = features.shape[0], state[0].shape[2]
        x = features.reshape(s, n_seq, -1, features.shape[-1]).transpose(1, 2)
        starts = episode_starts.reshape(s, n_seq, -1).transpose(1, 2)
        out, new_state = core(x, state, starts)
        return out.transpose(1, 2).reshape(s, -1, out.shape[-1]), new_state

    def _latents(self, obs: Obs, states: RNNStates, episode_starts: Tensor) -> tuple[Tensor, Tensor, RNNStates]:
        """The actor's and critic's recurrent outputs (as :meth:`FastRecurrentPolicy._recurrent_latents`)."""
        features = self.extract_features(obs)
        state_pi: State = (states.pi[0], states.pi[1])
        state_vf: State = (states.vf[0], states.vf[1])
        latent_pi, states_pi = self._sequences(self.lstm_actor, features, state_pi, episode_starts)
        if self.lstm_critic is not None:
            latent_vf, states_vf = self._sequences(self.lstm_critic, features, state_vf, episode_starts)
        elif self.shared_lstm and self.shared_critic_gradient:
            latent_vf, states_vf = latent_pi, states_pi
        elif self.shared_lstm:
            latent_vf, states_vf = latent_pi.detach(), (states_pi[0].detach(), states_pi[1].detach())
        else:
            assert self.critic is not None
            latent_vf, states_vf = self.critic(features), states_pi
        return latent_pi, latent_vf, RNNStates(states_pi, states_vf)

    def _heads(self, latent_pi: Tensor, latent_vf: Tensor) -> tuple[Tensor, Tensor]:
        """:return: action log-probabilities ``[S, B, n_actions]`` (normalised logits) and values ``[S, B]``."""
        logits = self.action_net(self.mlp_extractor.policy_net(latent_pi))
        values = self.value_net(self.mlp_extractor.value_net(latent_vf)).squeeze(-1)
        return torch.log_softmax(logits, -1), values

    def evaluate_actions(
        self, obs: Obs, actions: Tensor, lstm_states: RNNStates, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Values, log-likelihoods and entropies of ``actions`` over padded sequences, every seed at once.

        :param obs: observations, each ``[S, n_seq * T, ...]`` (sequence-major, as the recurrent buffers give them).
        :param actions: ``[S, n_seq * T]`` action indices.
        :param lstm_states: actor and critic ``(h, c)``, each ``[S, 1, n_seq, H]``: the states before each sequence.
        :param episode_starts: ``[S, n_seq * T]``.
        :return: ``(values, log_prob, entropy)``, each ``[S, n_seq * T]``.
        """
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states, episode_starts)
        log_p, values = self._heads(latent_pi, latent_vf)
        log_prob = log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return values, log_prob, entropy

    def forward(
        self,
        obs: Obs,
        lstm_states: RNNStates,
        episode_starts: Tensor,
        generators: Sequence[torch.Generator] | None = None,
        deterministic: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, RNNStates]:
        """One rollout step of every seed: actions (seed ``s`` sampled with ``generators[s]``), values, log-probs.

        :param obs: observations, each ``[S, n_envs, ...]``.
        :param lstm_states: actor and critic ``(h, c)``, each ``[S, 1, n_envs, H]``.
        :param episode_starts: ``[S, n_envs]``.
        :param generators: one torch generator per seed (its own sampling stream); ``None``: the global one.
        :param deterministic: take the most likely actions.
        :return: ``(actions [S, n_envs], values [S, n_envs], log_prob [S, n_envs], new states)``.
        """
        latent_pi, latent_vf, states = self._latents(obs, lstm_states, episode_starts)
        log_p, values = self._heads(latent_pi, latent_vf)
        if deterministic:
            actions = log_p.argmax(-1)
        else:
            probs = log_p.exp()
            gens: Sequence[Any] = generators if generators is not None else [None] * self.n_seeds
            actions = torch.stack([torch.multinomial(probs[s], 1, generator=g).squeeze(-1) for s, g in enumerate(gens)])
        return actions, values, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1), states
