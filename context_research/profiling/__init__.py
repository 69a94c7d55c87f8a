"""Collectors (latency, GPU, KV transfer) and the roofline floors measurements are judged by."""
