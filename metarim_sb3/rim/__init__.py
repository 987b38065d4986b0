"""Recurrent Independent Mechanisms (RIMs) as a drop-in recurrent core.

Goyal, Lamb, Hoffmann, Sodhani, Levine, Bengio, Schölkopf, "Recurrent Independent Mechanisms",
arXiv 1909.10893 (ICLR 2021).

- :class:`~metarim_sb3.rim.module.RIM` and :func:`~metarim_sb3.rim.module.run_together`: the layer, and RIMs
  sharing an input (a policy's actor and critic cores) run as one kernel;
- :mod:`metarim_sb3.rim.reference`: one RIM step in plain autograd torch, parameters by name (the specification);
- :class:`~metarim_sb3.rim.protocol.RecurrentCore` and the role names :data:`~metarim_sb3.rim.protocol.MODULES`,
  :data:`~metarim_sb3.rim.protocol.ATTENTION`, :data:`~metarim_sb3.rim.protocol.OTHER`,
  :data:`~metarim_sb3.rim.protocol.ROLE_NAMES`: what the policies require of a recurrent core, and the parameter
  roles.

The fast kernel (``_fused``) and its scratch pool (``_pool``) are private.
"""

from metarim_sb3.rim.module import RIM, run_together
from metarim_sb3.rim.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES, RecurrentCore

__all__ = ["ATTENTION", "MODULES", "OTHER", "RIM", "ROLE_NAMES", "RecurrentCore", "run_together"]
