"""The calibration command, `python -m context_research.calibrate [--device N] [--output FILE]`:
measure the present GPU's copy bandwidth and BF16 / FP8 matmul rates
(context_research/hardware/calibration.py) and print them as JSON (also written to --output).
Without a CUDA GPU it prints one line saying so and exits 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from context_research.hardware import calibration

NO_GPU = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m context_research.calibrate", description=__doc__)
    parser.add_argument("--device", type=int, default=0, help="visible CUDA device index (default 0)")
    parser.add_argument("--output", type=Path, help="also write the JSON record to this file")
    parser.add_argument("--copy-bytes", type=int, default=calibration.DEFAULT_COPY_BYTES)
    parser.add_argument("--matmul-size", type=int, default=calibration.DEFAULT_MATMUL_SIZE)
    parser.add_argument("--repeats", type=int, default=calibration.DEFAULT_REPEATS)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA GPU (torch.cuda.is_available() is False): calibration measures a GPU", file=sys.stderr)
        return NO_GPU
    if not 0 <= args.device < torch.cuda.device_count():
        print(f"error: --device {args.device}: {torch.cuda.device_count()} CUDA device(s) visible", file=sys.stderr)
        return NO_GPU
    record = calibration.measure(args.device, args.copy_bytes, args.matmul_size, args.repeats)
    text = json.dumps(record, indent=1)
    print(text)
    if args.output is not None:
        try:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text + "\n")
        except OSError as error:
            print(f"error: --output {args.output}: {error.strerror or error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
