"""The run record: one Hydra job directory holding manifest.json, requests.parquet, summary.json
and timeseries/, written atomically so a crashed job never looks completed."""
