"""Build tests/data/metaschema_corpus.json from the JSON-Schema-Test-Suite.

The suite ships in the `jsonschema` sdist (its json/ folder; the wheel leaves it out):
    .venv/bin/pip download jsonschema==4.26.0 --no-binary :all: --no-deps -d /tmp/suite
    tar xzf /tmp/suite/jsonschema-4.26.0.tar.gz -C /tmp/suite
    .venv/bin/python tests/data/make_metaschema_corpus.py /tmp/suite/jsonschema-4.26.0/json

For each draft jsonschema-rs walks (4, 6, 7, 2019-09, 2020-12) it keeps, as candidate input
schemas: every test's schema (each valid for its draft), every instance that is a JSON object
(arbitrary objects, valid or not as schemas), and the suite's metaschema cases (instances
checked against `{"$ref": <the draft's metaschema>}`, with the suite's verdict). Draft 3 is
left out: it is refused by name (tools.metaschema). Deduplicated; the suite is MIT-licensed.
"""

import json
import sys
from pathlib import Path

DRAFTS = {
    "draft4": "http://json-schema.org/draft-04/schema#",
    "draft6": "http://json-schema.org/draft-06/schema#",
    "draft7": "http://json-schema.org/draft-07/schema#",
    "draft2019-09": "https://json-schema.org/draft/2019-09/schema",
    "draft2020-12": "https://json-schema.org/draft/2020-12/schema",
}
OUT = Path(__file__).with_name("metaschema_corpus.json")


def is_metaschema_ref(schema, metaschema: str) -> bool:
    return isinstance(schema, dict) and schema.get("$ref", "").rstrip("#") == metaschema.rstrip("#")


def main(suite: Path) -> None:
    cases, seen = [], set()

    def add(draft, schema, source, expected=None):
        key = json.dumps([draft, schema], sort_keys=True)
        if isinstance(schema, dict) and key not in seen:
            seen.add(key)
            cases.append({"draft": draft, "schema": schema, "source": source, "valid": expected})

    for folder, metaschema in DRAFTS.items():
        for path in sorted((suite / "tests" / folder).rglob("*.json")):
            source = str(path.relative_to(suite / "tests"))
            for group in json.loads(path.read_text()):
                checks_schemas = is_metaschema_ref(group["schema"], metaschema)
                add(metaschema, group["schema"], source)
                for test in group["tests"]:
                    expected = test["valid"] if checks_schemas else None
                    add(metaschema, test["data"], source, expected)
    OUT.write_text(
        json.dumps(
            {
                "about": "Candidate input schemas from the JSON-Schema-Test-Suite (MIT, "
                "Copyright (c) 2012 Julian Berman), as shipped in the jsonschema 4.26.0 sdist; "
                "made by tests/data/make_metaschema_corpus.py.",
                "cases": cases,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )
    print(f"{len(cases)} cases, {sum(c['valid'] is not None for c in cases)} metaschema cases")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
