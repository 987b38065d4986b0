# The pilot of the study v2 (results/study/pilot), made before the v2 protocol was committed.
# Both grids ran from a clean clone at f5ed574 (PYTHONPATH=<clone>), 2 workers on the 2-core machine, one torch thread
# per run, while other work shared the cores (wall times are not costs). Only run summaries are committed.
git clone <this repository> pilot && cd pilot && git checkout f5ed574
# MultiRoom budgets: meta-rim and lstm, seeds 0-1, the success-threshold curriculum, 409,600 frames, 50-episode
# stage evaluations (multiroom/preset.yaml). Its frames to the threshold set the v2 MultiRoom visit lengths.
metarim compare --preset results/study/pilot/multiroom/preset.yaml --out pilot/multiroom --workers 2 --no-report
# Tuning parity: the learning rate of rim, lstm and gru over 5 cells x calibration seeds 0-2 on the calibrate
# sweep's settings (tuning_preset.yaml; its description declares the rule that picks each agent's cell).
metarim compare --preset results/study/pilot/tuning_preset.yaml --out pilot/tuning --workers 2 --no-report
# The pilot summary (pilot.md, tuning.csv), in a clean clone of the commit that adds the runs:
python studies/study_v2_pilot.py --out results/study/pilot --v1 results/study-v1/runs
