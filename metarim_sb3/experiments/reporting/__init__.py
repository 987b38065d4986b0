"""Reporting: run folders in; ``summary.csv``, ``aggregate.csv``, plots and ``report.md`` out.

- :mod:`.report`: :func:`~.report.build_report`, the whole report;
- :mod:`.metrics`, :mod:`.stats`: the metrics of shifting-task runs and their interval estimates;
- :mod:`.claims`, :mod:`.protocol`: the paper's claims and the verdicts of the study protocols v1 and v2;
- :mod:`.plots`: the report's figures.
"""
