"""The sections of ``report.md``, one module per theme: each computes its rows from the loaded runs
(:class:`~metarim_sb3.experiments.reporting.runs.RunData`) and renders them as Markdown;
:func:`~metarim_sb3.experiments.reporting.report.build_report` puts them together.

- :mod:`.summary`: ``summary.csv``, ``aggregate.csv`` and the table at the top;
- :mod:`.verdict`: the verdict on a preset's claims under the study protocol v2;
- :mod:`.adaptation`: the success AUC after a shift and the frames to threshold;
- :mod:`.forgetting`, :mod:`.zero_shot`, :mod:`.paired`, :mod:`.drift`, :mod:`.cost`: the other sections;
- :mod:`.generalization`: the zero-shot tests of runs trained on one stage.
"""
