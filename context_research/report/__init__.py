"""Load run folders into pandas, compare them, and write the report (tables, statistics, plots).

`python -m context_research.report DIR [DIR ...] --out DIR`; in Python: `loader.load_jobs`,
`loader.load_requests`, `compare.compare_folders`, `build.build_report`.
"""
