"""How long a tool's input schema takes to accept or refuse, at and beyond the SCHEMA_MAX_* limits.

Times `input_schema_problems` (the one check the API, the admin and the import all run) on the
most expensive shapes that fit the limits and on hostile ones beyond them; no servers needed.
Usage: .venv/bin/python bench/schema_limits.py [--rounds N]
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

from tools.validators import input_schema_problems  # noqa: E402


def shapes() -> dict:
    values = settings.SCHEMA_MAX_VALUES
    depth = settings.SCHEMA_MAX_DEPTH
    nested: dict = {"type": "object"}
    for _ in range((depth - 1) // 2):
        nested = {"type": "object", "properties": {"p": nested}}
    # Each shape is sized to just fit SCHEMA_MAX_VALUES (objects, arrays and scalars counted).
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
        "within: properties with a pattern (3 each)": {
            "type": "object",
            "properties": {
                f"p{i}": {"type": "string", "pattern": f"^[a-z]{{{i % 50}}}(x|y)+$"}
                for i in range(values // 3 - 2)
            },
        },
        "within: draft-04 enum of objects (uniqueItems, quadratic)": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "enum": [{"k": i} for i in range(values // 2 - 4)],
        },
        "within: invalid types everywhere (3 each)": {
            "type": "object",
            "properties": {f"p{i}": {"type": "strin"} for i in range(values // 3 - 2)},
        },
        f"within: nested {depth} levels": nested,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"Limits: SCHEMA_MAX_VALUES={settings.SCHEMA_MAX_VALUES}, "
        f"SCHEMA_MAX_DEPTH={settings.SCHEMA_MAX_DEPTH}, "
        f"SCHEMA_MAX_BYTES={settings.SCHEMA_MAX_BYTES}; median and max of {args.rounds} rounds."
    )
    print("\n| schema | bytes | verdict | median ms | max ms |\n|---|---:|---|---:|---:|")
    for name, schema in shapes().items():
        size = len(schema if isinstance(schema, str) else json.dumps(schema))
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            _, problems = input_schema_problems(schema)
            times.append((time.perf_counter() - started) * 1000)
        verdict = f"refused: {str(problems[0])[:60]}" if problems else "accepted"
        print(
            f"| {name} | {size:,} | {verdict} | {statistics.median(times):.0f} | {max(times):.0f} |"
        )


if __name__ == "__main__":
    main()
