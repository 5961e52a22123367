"""How long a tool's input schema takes to accept or refuse, at and beyond the SCHEMA_MAX_* limits.

Times `input_schema_problems` (rule 1: the one check the API, the admin and the import all run;
its metaschema walk is jsonschema-rs) and `strict_schema_problems` (rule 8) on the most
expensive shapes that fit the limits and on hostile ones beyond them, and, with `--before`, the
metaschema walk as it was (Python jsonschema, tests.factories.python_jsonschema_problems) on the
shapes within the limits. No servers needed.
Usage: .venv/bin/python bench/schema_bench.py [--rounds N] [--before]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from tests.factories import python_jsonschema_problems, strict_schema_of_values  # noqa: E402
from tools.metaschema import FULL_REPORT_MAX_VALUES  # noqa: E402
from tools.strict_schema import strict_schema_problems  # noqa: E402
from tools.validators import input_schema_problems  # noqa: E402

DRAFT_04 = "http://json-schema.org/draft-04/schema#"


def shapes() -> dict:
    values = settings.SCHEMA_MAX_VALUES
    depth = settings.SCHEMA_MAX_DEPTH
    pattern_budget = settings.SCHEMA_MAX_PATTERN_CHARACTERS
    nested: dict = {"type": "object"}
    for _ in range((depth - 1) // 2):
        nested = {"type": "object", "properties": {"p": nested}}
    # Python's regex compiler spends 0.7 ms a character on this; its parser, 0.6 µs.
    wide_class = "[\\x00-\\U0010ffff]"
    # Each "within" shape is sized to just fit SCHEMA_MAX_VALUES (objects, arrays and scalars).
    return {
        "within: anyOf of {} (1 value each)": {
            "type": "object",
            "anyOf": [{} for _ in range(values - 4)],
        },
        "within: anyOf of {maxLength} (2 values each)": {
            "type": "object",
            "anyOf": [{"maxLength": i} for i in range(values // 2 - 2)],
        },
        "within: properties with type + description (3 each)": {
            "type": "object",
            "properties": {
                f"p{i}": {"type": "string", "description": "d" * 40} for i in range(values // 3 - 2)
            },
        },
        "within: a strict-ready schema (every property required)": strict_schema_of_values(
            values - (values - 5) % 3
        ),
        "within: properties with a pattern (3 each)": {
            "type": "object",
            "properties": {
                f"p{i}": {"type": "string", "pattern": f"^[a-z]{{{i % 50}}}(x|y)+$"}
                for i in range(values // 3 - 2)
            },
        },
        "within: draft-04 enum of objects (uniqueItems, quadratic)": {
            "$schema": DRAFT_04,
            "type": "object",
            "enum": [{"k": i} for i in range(values // 2 - 4)],
        },
        "within: required, every name once (uniqueItems)": {
            "type": "object",
            "required": [f"name{i}" for i in range(values - 4)],
        },
        f"within: nested {depth} levels": nested,
        "within: patterns of wide character classes, at the pattern budget": {
            "type": "object",
            "properties": {
                f"p{i}": {"pattern": "(?i)" + wide_class * 30}
                for i in range(pattern_budget // (4 + 30 * len(wide_class)))
            },
        },
        "within: one pattern of groups, at the pattern budget": {
            "type": "object",
            "pattern": "(a)" * (pattern_budget // 3),
        },
        "within: invalid types everywhere (3 each)": {
            "type": "object",
            "properties": {f"p{i}": {"type": "strin"} for i in range(values // 3 - 2)},
        },
        "within: anyOf of numbers (2020-12: 8 errors each; the first one told)": {
            "type": "object",
            "anyOf": [1] * (values - 4),
        },
        "within: the same at 1,000 values (every error built, 50 told)": {
            "type": "object",
            "anyOf": [1] * (FULL_REPORT_MAX_VALUES - 4),
        },
        "within: one duplicate at the end of a draft-04 enum of objects": {
            "$schema": DRAFT_04,
            "type": "object",
            "enum": [{"k": i} for i in range(values // 2 - 5)] + [{"k": 0}],
        },
        "beyond: a 250,000-character pattern": {"type": "object", "pattern": "(a)" * 83_000},
        "beyond: 20,000 anyOf branches": {
            "type": "object",
            "anyOf": [{"type": "string", "maxLength": i} for i in range(20_000)],
        },
        "beyond: 130,000 anyOf branches": {
            "type": "object",
            "anyOf": [{"maxLength": i % 10} for i in range(130_000)],
        },
        "beyond: 100,000 invalid properties": {
            "type": "object",
            "properties": {str(i): {"type": 1} for i in range(100_000)},
        },
        "beyond: a 10,000-level string": '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}",
        "beyond: a 2 MB string": json.dumps({"type": "object", "description": "x" * 2_000_000}),
    }


def timed(function, argument, rounds: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = function(argument)
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--before", action="store_true", help="also time Python jsonschema's walk (slow)"
    )
    args = parser.parse_args()
    print(
        f"Limits: SCHEMA_MAX_VALUES={settings.SCHEMA_MAX_VALUES}, "
        f"SCHEMA_MAX_DEPTH={settings.SCHEMA_MAX_DEPTH}, "
        f"SCHEMA_MAX_BYTES={settings.SCHEMA_MAX_BYTES}, "
        f"SCHEMA_MAX_PATTERN_CHARACTERS={settings.SCHEMA_MAX_PATTERN_CHARACTERS}; "
        f"median and max of {args.rounds} rounds; `before`: Python jsonschema's walk, one round."
    )
    print(
        "\n| schema | bytes | verdict | rule 1: median ms | max ms | rule 8 ms | before ms |"
        "\n|---|---:|---|---:|---:|---:|---:|"
    )
    for name, schema in shapes().items():
        size = len(schema if isinstance(schema, str) else json.dumps(schema))
        times, (parsed, problems) = timed(input_schema_problems, schema, args.rounds)
        verdict = f"refused: {str(problems[0])[:60]}" if problems else "accepted"
        strict = ""
        if parsed is not None and not problems:
            strict_times, _ = timed(strict_schema_problems, parsed, args.rounds)
            strict = f"{statistics.median(strict_times):.0f}"
        before = ""
        if args.before and name.startswith("within") and "pattern" not in name:
            # Patterns: Python's compiler takes minutes on the wide classes; see RESULTS.md.
            before_times, _ = timed(python_jsonschema_problems, schema, 1)
            before = f"{before_times[0]:.0f}"
        print(
            f"| {name} | {size:,} | {verdict} | {statistics.median(times):.0f} | "
            f"{max(times):.0f} | {strict} | {before} |"
        )


if __name__ == "__main__":
    main()
