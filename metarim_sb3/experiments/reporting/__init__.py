"""Reporting: run folders in; ``summary.csv``, ``aggregate.csv``, plots and ``report.md`` out.

- :mod:`.report`: :func:`~.report.build_report`, the whole report, put together from :mod:`.sections` (one module
  per theme) and :mod:`.plots` (the figures);
- :mod:`.runs`: finding and loading run folders (:class:`~.runs.RunData`);
- :mod:`.metrics`: the metrics of shifting-task runs; :mod:`.comparisons`: agents compared on common seeds;
  :mod:`.stats`: interval estimates; :mod:`.formatting`: how estimates are printed;
- :mod:`.claims`, :mod:`.protocol`: the paper's claims and the verdicts of the study protocols v1 and v2.
"""
