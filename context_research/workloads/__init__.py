"""Workloads: synthetic prompts of exact token lengths, length distributions, data sets (ShareGPT, JSONL),
traces (Mooncake, Azure, BurstGPT), multi-turn sessions and the arrival processes that send them."""
