"""Workloads: synthetic prompts of exact token lengths, length distributions, arrival processes."""
