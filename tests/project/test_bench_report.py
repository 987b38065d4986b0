"""``benchmarks/report.py`` on synthetic benchmark files: the sections it writes and the verdicts in them."""

from __future__ import annotations

from typing import Any

from cli_helpers import load_benchmark

report = load_benchmark("report")


def _train(fps: dict[str, float]) -> dict[str, Any]:
    meta = {"env_id": "MetaRIM-MultiRoom-v0", "n_envs": 8, "n_steps": 128, "batch_size": 128, "n_epochs": 10,
            "timesteps": 4096, "repeats": 3, "threads": 1}  # fmt: skip
    return {"meta": meta, "results": {k: {"fps": v, "rollout_s": 1.0, "train_s": 2.0} for k, v in fps.items()}}


def test_train_section_keeps_rows_using_a_second_core_out_of_the_fastest_layout() -> None:
    fps = {"rim": 100.0, "rim_shared_chunked": 200.0, "rim_shared_chunked_subproc": 300.0,
           "rim_shared_chunked_2threads": 150.0, "lstm_sb3": 50.0, "ppo": 1000.0}  # fmt: skip
    text = "\n".join(report.train_section(_train(fps)))
    assert "The fastest RIM layout, `rim_shared_chunked`: 4.00x `lstm_sb3` (met), 0.20x `ppo` (**not met**)" in text
    assert "`rim_shared_chunked_subproc` runs at 1.50x `rim_shared_chunked`" in text
    assert "`rim_shared_chunked_2threads` runs at 0.75x `rim_shared_chunked`" in text
    assert "| `rim_shared_chunked_subproc` | 300 |" in text


def test_train_section_without_the_extra_rows_says_nothing_of_them() -> None:
    text = "\n".join(report.train_section(_train({"rim": 100.0, "rim_shared_chunked": 200.0, "lstm_sb3": 50.0,
                                                   "ppo": 1000.0})))  # fmt: skip
    assert "second core" not in text


def _compile(ratios: dict[str, float]) -> dict[str, Any]:
    rows = [{"case": case, "eager_ms": 10.0, "compiled_ms": 10.0 * r, "ratio": r, "compile_s": 20.0}
            for case, r in ratios.items()]  # fmt: skip
    return {"meta": {"threads": 1, "repeats": 7, "pays": 0.95}, "results": rows}


def test_compile_section_names_the_cases_where_compiling_pays() -> None:
    text = "\n".join(report.compile_section(_compile({"core train T=32 B=16": 2.6, "policy update": 0.9})))
    assert "Compiling pays (ratio <= 0.95) in: policy update;" in text
    assert "| core train T=32 B=16 | 10.000 | 26.000 | 2.60 | 20.0 |" in text
    text = "\n".join(report.compile_section(_compile({"core train T=32 B=16": 2.6, "policy update": 1.2})))
    assert "Compiling pays (ratio <= 0.95) in: no case;" in text
    assert report.compile_section(None)[-2] == "Not run."


def _study(preset: str, timesteps: int, ms: dict[str, float]) -> dict[str, Any]:
    meta = {"preset": preset, "timesteps": timesteps, "repeats": 1, "torch_threads": 1, "commit": "abcdef0123",
            "command": "python benchmarks/bench_study.py"}  # fmt: skip
    rows = [{"agent": a, "env": "MetaRIM-GoTo-v0", "rim": a != "lstm", "cpu_ms": v, "wall_ms": v,
             "final_eval_share": 0.01} for a, v in ms.items()]  # fmt: skip
    return {"meta": meta, "rows": rows}


def test_study_section_adds_the_full_budget_runs_with_their_own_verdict() -> None:
    short = _study("quick", 8192, {"meta-rim": 1.0, "lstm": 0.8})
    text = "\n".join(report.study_section(short))
    assert "**not met** (worst 1.000)" in text and "full budget" not in text
    text = "\n".join(report.study_section(short, _study("study", 150000, {"meta-rim": 0.65, "lstm": 0.6})))
    assert "Whole runs at the `study` preset's full budget (150000 steps on `MetaRIM-GoTo-v0`" in text
    assert "`meta-rim` 0.650, `lstm` 0.600; RIM agents <= 0.8 ms — met." in text
    text = "\n".join(report.study_section(short, _study("study", 150000, {"meta-rim": 0.9})))
    assert "RIM agents <= 0.8 ms — **not met**." in text
