"""Workloads: synthetic prompts of exact token lengths (and, later, arrival processes)."""
