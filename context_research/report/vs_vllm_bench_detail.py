"""Per-request detail of a vs_vllm_bench call: what each client saw of the same server, request by request.

    python -m context_research.report.vs_vllm_bench_detail <out of vs_vllm_bench> [--csv detail.csv]

Per point and side (vllm bench; the harness per prompt format): requests, TTFT p50, the SSE events
that carried tokens per request (fewer than the output tokens: the server merged tokens into one
event), outputs whose text is empty (with dummy weights the prompts decide the outputs, and an
output of ids the tokenizer cannot decode streams no text), the median gap between a request's
last 60 events (the server's pace when every request decodes), and first send -> last completion.
Read from vllm bench's result JSON (`--save-detailed`: ttfts, itls, start_times, generated_texts)
and the harness's requests.parquet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TAIL_EVENTS = 60


def _row(point: str, side: str, ttfts_s: list[float], gaps_s: list[list[float]], empty: int, starts_s: list[float],
         ends_s: list[float]) -> dict[str, Any]:
    events = [len(gap) + 1 for gap in gaps_s]
    tails = [float(np.median(gap[-TAIL_EVENTS:])) for gap in gaps_s if len(gap) >= TAIL_EVENTS]
    return {"point": point, "side": side, "requests": len(ttfts_s), "ttft_p50_ms": float(np.median(ttfts_s)) * 1e3,
            "events_min": min(events), "events_median": float(np.median(events)), "events_max": max(events),
            "empty_text_outputs": empty, "tail_event_gap_ms": float(np.median(tails)) * 1e3 if tails else None,
            "duration_s": max(ends_s) - min(starts_s)}


def bench_rows(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((out / "vllm_bench").glob("*.json")):
        data = json.loads(path.read_text())
        ends = [s + t + sum(itl) for s, t, itl in zip(data["start_times"], data["ttfts"], data["itls"])]
        rows.append(_row(path.stem, "vllm_bench", data["ttfts"], data["itls"],
                         sum(1 for text in data["generated_texts"] if text == ""), data["start_times"], ends))
    return rows


def harness_rows(out: Path) -> list[dict[str, Any]]:
    rows = []
    for manifest_path in sorted((out / "harness").glob("*/manifest.json"), key=lambda p: int(p.parent.name)):
        manifest = json.loads(manifest_path.read_text())
        chosen = dict(o.split("=", 1) for o in manifest["overrides"] if "=" in o)
        requests_path = manifest_path.parent / "requests.parquet"
        if not requests_path.is_file():
            continue
        requests = pd.read_parquet(requests_path)
        requests = requests[requests["phase"] == "measure"]
        gaps = [list(np.diff(np.asarray(times, dtype=float))) for times in requests["token_times_s"]]
        # an output whose text re-encodes to no token had no text (the harness keeps ids, not the text)
        empty = int((requests["output_ids_source"].eq("retokenized") & requests["output_token_ids"].map(len).eq(0)).sum())
        side = "harness" + (f" ({chosen['serving.prompt_format']})" if "serving.prompt_format" in chosen else "")
        rows.append(_row(chosen["+point"], side, list(requests["ttft_ms"] / 1e3), gaps, empty,
                         list(requests["dispatch_s"]), list(requests["last_token_s"])))
    return rows


def detail(out: Path) -> pd.DataFrame:
    rows = harness_rows(out) + bench_rows(out)
    return pd.DataFrame(rows).sort_values(["point", "side"], kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the --out folder of a vs_vllm_bench call")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    table = detail(args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.2f}".format):
        print(table.to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
