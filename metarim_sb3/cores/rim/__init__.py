"""Recurrent Independent Mechanisms (RIMs) as a drop-in recurrent core.

Goyal, Lamb, Hoffmann, Sodhani, Levine, Bengio, Schölkopf, "Recurrent Independent Mechanisms",
arXiv 1909.10893 (ICLR 2021).

- :class:`~metarim_sb3.cores.rim.module.RIM` and :func:`~metarim_sb3.cores.rim.module.run_together`: the layer, and
  RIMs sharing an input (a policy's actor and critic cores) run as one kernel;
- :mod:`metarim_sb3.cores.rim.reference`: one RIM step in plain autograd torch, parameters by name (the
  specification the fast kernel must meet).

The fast kernel (``_fused``) and its scratch pool (``_pool``) are private. What a core must be and the parameter
role names are in :mod:`metarim_sb3.cores.protocol`.
"""

from metarim_sb3.cores.rim.module import RIM, run_together

__all__ = ["RIM", "run_together"]
