"""The phase of each request in a run. Only measured requests enter the latency figures; warm-up
and cool-down requests are recorded too (their rows say so) and count only as load on the engine."""

WARMUP = "warmup"
MEASURE = "measure"
COOLDOWN = "cooldown"
