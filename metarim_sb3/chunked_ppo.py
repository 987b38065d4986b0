"""Deprecated: moved to :mod:`metarim_sb3.ppo.chunked` (this old path is removed in metarim 0.3.0)."""

from metarim_sb3._deprecated import alias_module

alias_module(__name__, "metarim_sb3.ppo.chunked")
