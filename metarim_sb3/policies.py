"""Recurrent actor-critic policies for sb3-contrib's ``RecurrentPPO``: a RIM core, and a fast LSTM baseline.

Both replace sb3-contrib's per-time-step Python loop over training sequences by one core call per padded
sequence batch (resets inside the core), and build the optimizer with named parameter groups
(:data:`GROUP_NAMES`) in the constructor, so that fast/slow schedules can address them and ``load()`` round-trips.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from metarim_sb3.cores.gru import GRUCore
from metarim_sb3.cores.lstm import LSTMCore
from metarim_sb3.cores.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES, RecurrentCore
from metarim_sb3.cores.rim import RIM, run_together
from metarim_sb3.torch_layers import MiniGridExtractor, is_minigrid_space

#: Names of the optimizer's parameter groups, in their fixed order (the parameter roles,
#: :data:`metarim_sb3.cores.protocol.ROLE_NAMES`).
GROUP_NAMES = ROLE_NAMES
#: The defaults of :class:`~metarim_sb3.cores.rim.module.RIM`'s size and attention arguments, read from its
#: constructor (the one place they are defined): what :class:`RIMPolicy` uses for an argument left out.
RIM_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(RIM.__init__).parameters.items()
    if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty
}


def _is_small_minigrid_space(observation_space: spaces.Space) -> bool:
    """A MiniGrid index space, either with true bounds or small enough that it cannot be a pixel image."""
    if not is_minigrid_space(observation_space):
        return False
    image = observation_space["image"] if isinstance(observation_space, spaces.Dict) else observation_space
    assert isinstance(image, spaces.Box)
    return not is_image_space(image) or max(image.shape) < 36


class FastRecurrentPolicy(RecurrentActorCriticPolicy):
    """
    Base of :class:`RIMPolicy` and :class:`LstmPolicy`: a ``RecurrentActorCriticPolicy`` whose recurrent
    cores (``lstm_actor``, ``lstm_critic``) take ``core(x, state, episode_starts)`` and reset inside, so a
    whole padded sequence batch runs in one call. Subclasses implement :meth:`_make_core`.

    Arguments are those of sb3-contrib's ``RecurrentActorCriticPolicy``, except:

    :param features_extractor_class: ``None`` (default) picks one from the observation space:
        :class:`~metarim_sb3.torch_layers.MiniGridExtractor` for MiniGrid index observations, else
        ``CombinedExtractor`` (Dict), ``NatureCNN`` (image) or ``FlattenExtractor``. The ``Mlp``/``Cnn``/
        ``MultiInput`` subclasses narrow this choice like SB3's policy aliases.
    :param normalize_images: ``None`` (default): ``False`` with ``MiniGridExtractor`` (its inputs are
        indices, not pixels), else ``True``.
    :param shared_critic_gradient: With ``shared_lstm=True``: ``False`` (sb3-contrib's behaviour) feeds the critic
        the actor core's output detached, so the value loss trains neither the core nor the features extractor;
        ``True`` lets it train both. The three critic wirings: separate cores (``enable_critic_lstm=True``), one
        shared core with the value gradient, one shared core without it.
    :param optimizer_kwargs: As in SB3; an optimizer that takes ``foreach`` (Adam by default) gets
        ``foreach=True`` unless this sets it (the multi-tensor update, which torch picks by itself only on CUDA).

    Paper: Goyal et al., "Recurrent Independent Mechanisms", arXiv 1909.10893.
    Code: this module, on top of sb3-contrib's ``RecurrentActorCriticPolicy``.
    """

    #: Default-extractor rule: "auto", "flatten" (Mlp), "cnn" or "multi" (MultiInput).
    _extractor_rule: ClassVar[str] = "auto"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool | None = None,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        lstm_hidden_size: int = 256,
        n_lstm_layers: int = 1,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        lstm_kwargs: dict[str, Any] | None = None,
        shared_critic_gradient: bool = False,
    ) -> None:
        """Build the policy; arguments: see the class docstring and sb3-contrib's ``RecurrentActorCriticPolicy``."""
        if not isinstance(shared_critic_gradient, bool):
            raise ValueError(
                f"policy_kwargs: shared_critic_gradient must be True or False, got {shared_critic_gradient!r}"
            )
        if shared_critic_gradient and not shared_lstm:
            raise ValueError("policy_kwargs: shared_critic_gradient=True needs shared_lstm=True (one core for both)")
        self.shared_critic_gradient = shared_critic_gradient
        if shared_lstm and enable_critic_lstm:
            raise ValueError("policy_kwargs: shared_lstm=True needs enable_critic_lstm=False")
        if shared_lstm and not share_features_extractor:
            raise ValueError("policy_kwargs: shared_lstm=True needs share_features_extractor=True")
        if features_extractor_class is None:
            features_extractor_class = self._default_features_extractor(observation_space)
        uses_minigrid = issubclass(features_extractor_class, MiniGridExtractor)
        if normalize_images is None:
            normalize_images = not uses_minigrid
        elif normalize_images and uses_minigrid and MiniGridExtractor.has_pixel_bounds(observation_space):
            raise ValueError(
                "policy_kwargs: normalize_images=True would divide MiniGrid cell indices by 255; "
                "use normalize_images=False (or None) with MiniGridExtractor"
            )
        super().__init__(
            observation_space=observation_space,
            action_space=action_space,
            lr_schedule=lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            lstm_hidden_size=lstm_hidden_size,
            n_lstm_layers=n_lstm_layers,
            shared_lstm=shared_lstm,
            enable_critic_lstm=enable_critic_lstm,
            lstm_kwargs=lstm_kwargs,
        )
        self.lstm_actor = self._make_core(self.features_dim, self.lstm_actor)  # type: ignore[assignment]
        if self.lstm_critic is not None:
            self.lstm_critic = self._make_core(self.features_dim, self.lstm_critic)  # type: ignore[assignment]
        groups = self.param_groups_by_name()
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            [{"params": groups[name], "name": name} for name in ROLE_NAMES],
            lr=lr_schedule(1),
            **self._default_optimizer_kwargs(),
            **self.optimizer_kwargs,
        )

    def _default_optimizer_kwargs(self) -> dict[str, Any]:
        """``foreach=True`` for optimizers that take it, unless ``optimizer_kwargs`` sets it: torch enables the
        multi-tensor implementation by default only on CUDA, and on the CPU it is the faster one here too (the
        policy has ~40 parameter tensors; same arithmetic, fewer Python-level calls)."""
        if "foreach" in self.optimizer_kwargs:
            return {}
        accepts = "foreach" in inspect.signature(self.optimizer_class).parameters
        return {"foreach": True} if accepts else {}

    @classmethod
    def _default_features_extractor(cls, observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
        rule = cls._extractor_rule
        if rule == "flatten":
            return FlattenExtractor
        if _is_small_minigrid_space(observation_space) and (
            rule == "auto" or (rule == "multi") == isinstance(observation_space, spaces.Dict)
        ):
            return MiniGridExtractor
        if rule == "cnn" or (rule == "auto" and is_image_space(observation_space)):
            return NatureCNN
        if rule == "multi" or isinstance(observation_space, spaces.Dict):
            return CombinedExtractor
        return FlattenExtractor

    def _make_core(self, input_size: int, template: nn.LSTM) -> nn.Module:
        """
        Build a recurrent core to replace ``template`` (the ``nn.LSTM`` the parent constructor built).

        :param input_size: Size of the features the core receives.
        :param template: The ``nn.LSTM`` being replaced.
        :return: A module that is a :class:`~metarim_sb3.cores.protocol.RecurrentCore`.
        """
        raise NotImplementedError

    def param_groups_by_name(self) -> dict[str, list[nn.Parameter]]:
        """
        The policy's parameters by optimizer group (the groups of ``self.optimizer``, same order).

        * ``"modules"``: the recurrent units' cells of the actor and critic cores (fast in Meta-RIMs);
        * ``"attention"``: the cores' input and communication attention (slow in Meta-RIMs; empty for an LSTM);
        * ``"other"``: everything else (features extractor, critic projection, MLP, action and value heads).

        :return: ``{name: parameters}`` for every name of :data:`GROUP_NAMES`; each parameter is in exactly one.
        :raises TypeError: if a core is not a :class:`~metarim_sb3.cores.protocol.RecurrentCore`.
        """
        cores = [self.lstm_actor] if self.lstm_critic is None else [self.lstm_actor, self.lstm_critic]
        groups: dict[str, list[nn.Parameter]] = {name: [] for name in ROLE_NAMES}
        seen: set[int] = set()
        for core in cores:
            if not isinstance(core, RecurrentCore):
                raise TypeError(f"{type(core).__name__} is not a RecurrentCore (see metarim_sb3.cores.RecurrentCore)")
            roles = core.parameter_roles()
            for name in (MODULES, ATTENTION):
                for param in roles[name]:
                    if id(param) in seen:
                        raise ValueError(f"parameter_roles of {type(core).__name__} lists a parameter twice")
                    seen.add(id(param))
                    groups[name].append(param)
        groups[OTHER] = [p for p in self.parameters() if id(p) not in seen]
        return groups

    @staticmethod
    def _process_sequence(  # type: ignore[override]
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.Module,
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        """
        Run the core over a batch of padded sequences in one call, resets included.

        :param features: ``(n_seq * max_len, features_dim)``, sequence-major (as sb3-contrib's buffer pads it).
        :param lstm_states: ``(h, c)``, each ``(num_layers, n_seq, hidden)``: the states before each sequence.
        :param episode_starts: ``(n_seq * max_len,)``: 1.0 where the state must be zeroed before the step.
        :param lstm: The core (:class:`~metarim_sb3.cores.rim.module.RIM` or :class:`~metarim_sb3.cores.lstm.LSTMCore`).
        :return: Core output ``(n_seq * max_len, hidden)`` and the final states.
        """
        return FastRecurrentPolicy._process_sequences(features, (lstm_states,), episode_starts, (lstm,))[0]

    @staticmethod
    def _process_sequences(
        features: th.Tensor,
        lstm_states: tuple[tuple[th.Tensor, th.Tensor], ...],
        episode_starts: th.Tensor,
        cores: tuple[nn.Module, ...],
    ) -> list[tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]]:
        """
        :meth:`_process_sequence` for several cores that read the same features (the actor and critic cores):
        RIMs of equal sizes run as one kernel (:func:`~metarim_sb3.cores.rim.module.run_together`), other cores one
        by one.

        :param features: As in :meth:`_process_sequence`.
        :param lstm_states: One ``(h, c)`` per core.
        :param episode_starts: As in :meth:`_process_sequence`.
        :param cores: The cores.
        :return: One ``(output, states)`` per core, as :meth:`_process_sequence` returns them.
        """
        n_seq = lstm_states[0][0].shape[1]
        x = features.reshape(n_seq, -1, features.shape[-1]).transpose(0, 1)
        starts = episode_starts.reshape(n_seq, -1).transpose(0, 1)
        if len(cores) > 1 and all(isinstance(core, RIM) for core in cores):
            results = run_together(cores, x, lstm_states, starts)  # type: ignore[arg-type]
        else:
            results = [core(x, state, starts) for core, state in zip(cores, lstm_states, strict=True)]
        return [(out.transpose(0, 1).reshape(-1, out.shape[-1]), states) for out, states in results]

    def _recurrent_latents(
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, RNNStates]:
        """
        The actor's and critic's recurrent outputs, as sb3-contrib's ``forward`` / ``evaluate_actions`` compute
        them, except that actor and critic cores reading the same features run together.

        :param obs: Observations.
        :param lstm_states: Actor and critic states before the (padded) sequences.
        :param episode_starts: Where episodes start.
        :return: ``(latent_pi, latent_vf, new_states)`` before the MLP extractor.
        """
        features = self.extract_features(obs)
        pi_features: th.Tensor
        vf_features: th.Tensor
        if self.share_features_extractor:
            pi_features = vf_features = features  # type: ignore[assignment]
        else:
            pi_features, vf_features = features
        states: tuple[tuple[th.Tensor, th.Tensor], tuple[th.Tensor, th.Tensor]] = (lstm_states.pi, lstm_states.vf)  # type: ignore[assignment]
        if self.lstm_critic is not None and pi_features is vf_features:
            cores = (self.lstm_actor, self.lstm_critic)
            (latent_pi, states_pi), (latent_vf, states_vf) = self._process_sequences(
                pi_features, states, episode_starts, cores
            )
            return latent_pi, latent_vf, RNNStates(states_pi, states_vf)
        latent_pi, states_pi = self._process_sequence(pi_features, states[0], episode_starts, self.lstm_actor)
        if self.lstm_critic is not None:
            latent_vf, states_vf = self._process_sequence(vf_features, states[1], episode_starts, self.lstm_critic)
        elif self.shared_lstm and self.shared_critic_gradient:  # the value loss trains the shared core too
            latent_vf, states_vf = latent_pi, states_pi
        elif self.shared_lstm:  # re-use the actor's output, without backpropagating into it (sb3-contrib's choice)
            latent_vf = latent_pi.detach()
            states_vf = (states_pi[0].detach(), states_pi[1].detach())
        else:
            latent_vf, states_vf = self.critic(vf_features), states_pi  # type: ignore[misc]
        return latent_pi, latent_vf, RNNStates(states_pi, states_vf)

    def forward(  # type: ignore[override]
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """
        Actions, values and log-probabilities for a rollout step (as sb3-contrib's, cores run together).

        :param obs: Observations.
        :param lstm_states: Actor and critic states.
        :param episode_starts: Where episodes start (the state is zeroed there).
        :param deterministic: Take the most likely actions.
        :return: ``(actions, values, log_prob, new_states)``.
        """
        latent_pi, latent_vf, states = self._recurrent_latents(obs, lstm_states, episode_starts)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        distribution = self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi))
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob, states  # type: ignore[misc]

    def evaluate_actions(  # type: ignore[override]
        self, obs: th.Tensor, actions: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        Values, log-likelihoods and entropies of ``actions`` over padded sequences (as sb3-contrib's, cores run
        together).

        :param obs: Observations.
        :param actions: The actions taken.
        :param lstm_states: Actor and critic states before each sequence.
        :param episode_starts: Where episodes start.
        :return: ``(values, log_prob, entropy)``.
        """
        latent_pi, latent_vf, _ = self._recurrent_latents(obs, lstm_states, episode_starts)
        distribution = self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi))
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        return values, distribution.log_prob(actions), distribution.entropy()  # type: ignore[return-value]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            share_features_extractor=self.share_features_extractor,
            normalize_images=self.normalize_images,
            lstm_hidden_size=self.lstm_output_dim,
            n_lstm_layers=self.lstm_actor.num_layers,
            shared_lstm=self.shared_lstm,
            enable_critic_lstm=self.enable_critic_lstm,
            lstm_kwargs=self.lstm_kwargs,
            shared_critic_gradient=self.shared_critic_gradient,
        )
        return data


class LstmPolicy(FastRecurrentPolicy):
    """
    sb3-contrib's recurrent policy with an :class:`~metarim_sb3.cores.lstm.LSTMCore`: same parameters,
    same names, same initial weights for a given seed and the same results up to float rounding as
    ``RecurrentActorCriticPolicy``, but without the per-time-step Python loop in training (the fair
    LSTM baseline for :class:`RIMPolicy`). Optimizer groups: LSTM weights in ``"modules"``,
    ``"attention"`` empty, the rest in ``"other"``.

    Named ``LstmPolicy`` / ``*FastLstmPolicy`` so as not to shadow sb3-contrib's ``MlpLstmPolicy`` /
    ``MultiInputLstmPolicy``. Arguments: see :class:`FastRecurrentPolicy`.

    Paper: Hochreiter & Schmidhuber, Neural Computation 9(8), 1997.
    Code: this module, on top of sb3-contrib's ``RecurrentActorCriticPolicy``.
    """

    def _make_core(self, input_size: int, template: nn.LSTM) -> nn.Module:
        core = LSTMCore(input_size, template.hidden_size, num_layers=template.num_layers, **self.lstm_kwargs)
        core.load_state_dict(template.state_dict())  # keep the parent's initialisation (and RNG use)
        return core.to(next(template.parameters()).device)


class RIMPolicy(FastRecurrentPolicy):
    """
    Recurrent actor-critic policy whose actor (and critic) memory is a :class:`~metarim_sb3.cores.rim.module.RIM`:
    ``n_units`` independent recurrent units of ``unit_size``, ``k`` of them active per step, reading the
    features through input attention and each other through communication attention. The state of all
    units is packed as ``(1, n_envs, n_units * unit_size)``, so ``RecurrentPPO``'s buffers, ``predict()``
    and timeout bootstrapping work unchanged. Optimizer groups: unit cells ``"modules"``, attention
    ``"attention"``, everything else ``"other"`` (see :meth:`param_groups_by_name`).

    Other arguments: see :class:`FastRecurrentPolicy` (``lstm_hidden_size`` is ``n_units * unit_size``
    and may be omitted; ``n_lstm_layers`` must be 1; ``lstm_kwargs`` is not used).

    :param n_units: Number of RIM units.
    :param unit_size: Hidden size of each unit.
    :param k: Number of active units per step, ``1 <= k <= n_units``.
    :param cell: Unit cell type (``"lstm"`` or ``"gru"``).
    :param input_key_size: Key/query size of the input attention.
    :param input_value_size: Value size of the input attention (``None``: the RIM's default).
    :param input_heads: Heads of the input attention.
    :param comm_key_size: Key/query size of the communication attention.
    :param comm_value_size: Value size of the communication attention.
    :param comm_heads: Heads of the communication attention.
    :param dropout: Dropout on the RIM's input-attention weights (the RIM's ``dropout``).
    :param rim_dropout: Deprecated name of ``dropout`` (models saved before the rename hold it): still accepted, with
        a ``DeprecationWarning``; not together with a different ``dropout``.

    The RIM arguments (``n_units`` to ``dropout``) left out or ``None`` take the defaults of
    :class:`~metarim_sb3.cores.rim.module.RIM` (the one place they are defined); the agents' presets
    (``presets/agents.yaml``) state their sizes explicitly.

    Paper: Goyal et al., "Recurrent Independent Mechanisms", arXiv 1909.10893; Madan et al., "Fast and
    Slow Learning of Recurrent Independent Mechanisms", arXiv 2105.08710.
    Code: this module and :mod:`metarim_sb3.cores.rim`.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *,
        n_units: int | None = None,
        unit_size: int | None = None,
        k: int | None = None,
        cell: str | None = None,
        input_key_size: int | None = None,
        input_value_size: int | None = None,
        input_heads: int | None = None,
        comm_key_size: int | None = None,
        comm_value_size: int | None = None,
        comm_heads: int | None = None,
        dropout: float | None = None,
        rim_dropout: float | None = None,
        lstm_hidden_size: int | None = None,
        n_lstm_layers: int = 1,
        lstm_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the policy; arguments: see the class docstring (checked by :meth:`RIM.check_arguments
        <metarim_sb3.cores.rim.module.RIM.check_arguments>`)."""
        if rim_dropout is not None:
            warnings.warn(
                "RIMPolicy policy_kwargs: rim_dropout is deprecated; use dropout (the RIM's name)",
                DeprecationWarning,
                stacklevel=2,
            )
            if dropout is not None and dropout != rim_dropout:
                raise ValueError(
                    f"RIMPolicy policy_kwargs: give dropout or its deprecated name rim_dropout, not both; got "
                    f"dropout={dropout!r} and rim_dropout={rim_dropout!r}"
                )
            dropout = rim_dropout
        given = dict(
            n_units=n_units,
            unit_size=unit_size,
            k=k,
            cell=cell,
            input_key_size=input_key_size,
            input_value_size=input_value_size,
            input_heads=input_heads,
            comm_key_size=comm_key_size,
            comm_value_size=comm_value_size,
            comm_heads=comm_heads,
            dropout=dropout,
        )
        self.rim_kwargs: dict[str, Any] = {
            name: RIM_DEFAULTS[name] if value is None else value for name, value in given.items()
        }
        try:
            RIM.check_arguments(**self.rim_kwargs)
        except ValueError as err:  # each message starts with the argument's name
            raise ValueError(f"RIMPolicy policy_kwargs: {err}") from err
        hidden = int(self.rim_kwargs["n_units"]) * int(self.rim_kwargs["unit_size"])
        if lstm_hidden_size is not None and lstm_hidden_size != hidden:
            raise ValueError(
                f"RIMPolicy policy_kwargs: lstm_hidden_size={lstm_hidden_size} conflicts with "
                f"n_units * unit_size = {hidden}; leave lstm_hidden_size out"
            )
        if n_lstm_layers != 1:
            raise ValueError(f"RIMPolicy policy_kwargs: n_lstm_layers must be 1 for a RIM, got {n_lstm_layers}")
        if lstm_kwargs:
            raise ValueError(f"RIMPolicy policy_kwargs: lstm_kwargs is not used by a RIM, got {lstm_kwargs!r}")
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            lstm_hidden_size=hidden,
            n_lstm_layers=1,
            lstm_kwargs=None,
            **kwargs,
        )

    def _make_core(self, input_size: int, template: nn.LSTM) -> nn.Module:
        return RIM(input_size, **self.rim_kwargs).to(next(template.parameters()).device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        del data["lstm_kwargs"]
        data.update(self.rim_kwargs)
        return data


class MlpRIMPolicy(RIMPolicy):
    """:class:`RIMPolicy` with ``FlattenExtractor`` by default (SB3's ``Mlp`` naming)."""

    _extractor_rule = "flatten"


class CnnRIMPolicy(RIMPolicy):
    """:class:`RIMPolicy` for images: ``MiniGridExtractor`` for MiniGrid index grids, else ``NatureCNN``."""

    _extractor_rule = "cnn"


class MultiInputRIMPolicy(RIMPolicy):
    """:class:`RIMPolicy` for Dict observations: ``MiniGridExtractor`` with an ``"image"`` key, else
    ``CombinedExtractor``."""

    _extractor_rule = "multi"


class MlpFastLstmPolicy(LstmPolicy):
    """:class:`LstmPolicy` with ``FlattenExtractor`` by default (sb3-contrib's ``MlpLstmPolicy``, fast path)."""

    _extractor_rule = "flatten"


class CnnFastLstmPolicy(LstmPolicy):
    """:class:`LstmPolicy` for images: ``MiniGridExtractor`` for MiniGrid index grids, else ``NatureCNN``."""

    _extractor_rule = "cnn"


class MultiInputFastLstmPolicy(LstmPolicy):
    """:class:`LstmPolicy` for Dict observations: ``MiniGridExtractor`` with an ``"image"`` key, else
    ``CombinedExtractor``."""

    _extractor_rule = "multi"


class GruPolicy(FastRecurrentPolicy):
    """
    The same recurrent actor-critic policy with a :class:`~metarim_sb3.cores.gru.GRUCore`: the GRU baseline beside
    :class:`LstmPolicy` (same features extractor, heads and fast sequence path; ``lstm_hidden_size`` is the GRU's
    state size). The state buffers keep sb3-contrib's ``(h, c)`` pair; ``c`` stays zero. Optimizer groups: GRU
    weights in ``"modules"``, ``"attention"`` empty, the rest in ``"other"``. Arguments: see
    :class:`FastRecurrentPolicy`.

    Paper: Cho et al., arXiv 1406.1078 (the GRU); Morad et al., "POPGym", ICLR 2023 (the GRU as RL memory baseline).
    Code: this module, on top of sb3-contrib's ``RecurrentActorCriticPolicy``.
    """

    def _make_core(self, input_size: int, template: nn.LSTM) -> nn.Module:
        core = GRUCore(input_size, template.hidden_size, num_layers=template.num_layers, **self.lstm_kwargs)
        return core.to(next(template.parameters()).device)


class MlpGruPolicy(GruPolicy):
    """:class:`GruPolicy` with ``FlattenExtractor`` by default (SB3's ``Mlp`` naming)."""

    _extractor_rule = "flatten"


class CnnGruPolicy(GruPolicy):
    """:class:`GruPolicy` for images: ``MiniGridExtractor`` for MiniGrid index grids, else ``NatureCNN``."""

    _extractor_rule = "cnn"


class MultiInputGruPolicy(GruPolicy):
    """:class:`GruPolicy` for Dict observations: ``MiniGridExtractor`` with an ``"image"`` key, else
    ``CombinedExtractor``."""

    _extractor_rule = "multi"
