"""What faces Hydra and the process: error lines and exit codes, the sweep callback, stop signals,
GPU placement for side-by-side launchers, and the command-line entry points (the report,
throughput_vs_raw)."""
