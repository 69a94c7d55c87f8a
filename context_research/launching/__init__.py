"""How jobs run side by side and stop: stop signals (SIGINT/SIGTERM) and GPU placement for
launchers that run several jobs on one host (joblib, submitit_local)."""
