"""Write E8's workload files, seeded: a ShareGPT JSON of multi-turn conversations and a Mooncake trace
JSONL with shared system prompts and multi-turn prefix growth (context_research/workloads/generator.py).

    python -m context_research.cli.make_workload_files --out data/e8 --seed 0    # the defaults: the H200 sizes
    # the CI scale (tests/test_e8_launch.py):
    python -m context_research.cli.make_workload_files --out /tmp/e8 --conversations 4 --max-turns 3 \\
        --user-words 12 --reply-words 8 --trace-records 12 --trace-rate 8 --max-input-tokens 1536 \\
        --system-prompt-blocks 1 --user-tokens 120 --output-tokens 4 --mean-turns 3 --turn-gap-s 0.3

`--out` receives sharegpt.json and mooncake_trace.jsonl (what `experiment=e8` reads under
`paths.data_dir`/e8); one line per file says what it holds, the trace's line its prefix reuse (the hit
rate an unbounded prefix cache would reach). Same arguments, same files. Bad arguments: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from context_research.cli.errors import USER_ERROR
from context_research.workloads.generator import (MOONCAKE_FILE, SHAREGPT_FILE, ConversationShape, TraceShape,
                                                  mooncake_records, prefix_reuse, sharegpt_records,
                                                  write_mooncake, write_sharegpt)
from context_research.workloads.traces import MOONCAKE_BLOCK_TOKENS

# argument -> (shape field, help); defaults come from the shapes
CONVERSATION_ARGUMENTS = {
    "--conversations": ("conversations", "ShareGPT conversations"),
    "--min-turns": ("min_turns", "exchanges per conversation, at least"),
    "--max-turns": ("max_turns", "exchanges per conversation, at most"),
    "--user-words": ("user_words", "median words of a user message"),
    "--reply-words": ("reply_words", "median words of a reply"),
}
TRACE_ARGUMENTS = {
    "--trace-records": ("records", "Mooncake trace requests"),
    "--trace-rate": ("rate", "requests per second, about"),
    "--max-input-tokens": ("max_input_tokens", "longest prompt: a session ends before a turn over it"),
    "--system-prompts": ("system_prompts", "distinct shared system prompts"),
    "--system-prompt-blocks": ("system_prompt_blocks", f"a system prompt's {MOONCAKE_BLOCK_TOKENS}-token blocks, "
                                                       "at most"),
    "--user-tokens": ("user_tokens", "median tokens a turn adds to the prompt"),
    "--output-tokens": ("output_tokens", "median output tokens"),
    "--mean-turns": ("mean_turns", "mean turns per session (geometric)"),
    "--turn-gap-s": ("turn_gap_s", "mean seconds between a session's turns (uniform 0.5-1.5 x)"),
}


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="python -m context_research.cli.make_workload_files",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--out", type=Path, required=True, help="the folder the two files are written to")
    made.add_argument("--seed", type=int, default=0)
    for title, shape, arguments in (("ShareGPT", ConversationShape, CONVERSATION_ARGUMENTS),
                                    ("Mooncake trace", TraceShape, TRACE_ARGUMENTS)):
        group = made.add_argument_group(title)
        defaults = {field.name: field.default for field in fields(shape)}
        for flag, (name, text) in arguments.items():
            default = defaults[name]
            group.add_argument(flag, dest=name, type=type(default), default=default, help=f"{text} ({default})")
    return made


def shapes(args: argparse.Namespace) -> tuple[ConversationShape, TraceShape, list[str]]:
    """The two shapes the arguments give, and one line per bad argument."""
    def picked(arguments: dict) -> dict:
        return {name: getattr(args, name) for name, _ in arguments.values()}

    conversation, trace = ConversationShape(**picked(CONVERSATION_ARGUMENTS)), TraceShape(**picked(TRACE_ARGUMENTS))
    flags = {name: flag for flag, (name, _) in (CONVERSATION_ARGUMENTS | TRACE_ARGUMENTS).items()}
    problems = [f"--seed {args.seed}: an integer >= 0"] if args.seed < 0 else []
    for shape in (conversation, trace):
        for name, value in vars(shape).items():
            if value <= 0:
                problems.append(f"{flags[name]} {value}: a number > 0")
    if conversation.max_turns < conversation.min_turns:
        problems.append(f"--max-turns {conversation.max_turns}: at least --min-turns ({conversation.min_turns})")
    if trace.mean_turns < 1:
        problems.append(f"--mean-turns {trace.mean_turns}: at least 1")
    longest_system = trace.system_prompt_blocks * MOONCAKE_BLOCK_TOKENS
    if longest_system + trace.user_tokens > trace.max_input_tokens:
        problems.append(f"--max-input-tokens {trace.max_input_tokens}: at least the longest system prompt "
                        f"({longest_system} tokens) + --user-tokens ({trace.user_tokens})")
    return conversation, trace, problems


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    conversation, trace, problems = shapes(args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return USER_ERROR
    conversations = sharegpt_records(conversation, args.seed)
    records = mooncake_records(trace, args.seed)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        sharegpt = write_sharegpt(args.out / SHAREGPT_FILE, conversations)
        mooncake = write_mooncake(args.out / MOONCAKE_FILE, records)
    except OSError as error:
        print(f"error: {error.filename or args.out}: {error.strerror or error}", file=sys.stderr)
        return 1
    exchanges = sum(len(c["conversations"]) // 2 for c in conversations)
    print(f"{sharegpt}: {len(conversations)} conversations, {exchanges} exchanges")
    inputs = [r["input_length"] for r in records]
    print(f"{mooncake}: {len(records)} requests over {records[-1]['timestamp'] / 1e3:.1f} s, input tokens "
          f"{min(inputs)}..{max(inputs)} (mean {sum(inputs) / len(inputs):.0f}), "
          f"prefix reuse {prefix_reuse(records):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
