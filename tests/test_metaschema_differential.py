"""Rule 1's metaschema walk (tools.metaschema, jsonschema-rs) gives Python jsonschema's verdicts
and messages: on the JSON-Schema-Test-Suite, on every keyword of every draft's metaschema given
odd values, and on the hostile and rule schemas of the other tests. The reference is the walk as
it was (tests.factories.python_jsonschema_problems)."""

import json
import re
import warnings
from pathlib import Path
from urllib.parse import urljoin

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import validators
from jsonschema_specifications import REGISTRY

from core.api.json_input import json_problems
from tests.factories import python_jsonschema_problems
from tests.test_hostile_input import HOSTILE_SCHEMAS
from tests.test_strict_tools import ACCEPTED, REFUSED
from tools.metaschema import SUPPORTED_DRAFTS, is_python_regex, metaschema_problems

CORPUS = Path(__file__).parent / "data" / "metaschema_corpus.json"
# Values that are wrong for some keyword of some draft, and right for others.
ODD_VALUES = [
    -1,
    0,
    1.5,
    10**30,
    "x",
    "(",
    "\\p{L}",
    "(?P<n>a)",
    [],
    [1, 1],
    ["a", "a"],
    ["a", 1],
    [{}],
    [{"type": 1}],
    {},
    {"a": 1},
    {"a": {"type": "strin"}},
    None,
    True,
]


def disagreements(schemas) -> list[str]:
    """Each schema on which the two walks differ, with both answers."""
    found = []
    for schema in schemas:
        before, now = python_jsonschema_problems(schema), metaschema_problems(schema)
        if before != now:
            found.append(f"{json.dumps(schema)[:200]}\n  before: {before[:3]}\n  now: {now[:3]}")
    return found


def names_a_supported_draft(schema: dict) -> bool:
    if "$schema" not in schema:
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # an unknown $schema
        return validators.validator_for(schema, default=None) in SUPPORTED_DRAFTS.values()


def suite_cases() -> list[dict]:
    cases = json.loads(CORPUS.read_text())["cases"]
    for case in cases:
        case["schema"].setdefault("$schema", case["draft"])
    return cases


def metaschema_keywords(draft: str) -> list[str]:
    """The keywords a draft's metaschema describes (its vocabularies' too)."""
    keywords, documents = set(), [draft.rstrip("#")]
    while documents:
        uri = documents.pop()
        document = REGISTRY.contents(uri)
        keywords |= set(document.get("properties", {}))
        documents += [urljoin(uri, part["$ref"]) for part in document.get("allOf", [])]
    return sorted(keywords - {"$schema"})


def test_both_walks_agree_on_every_schema_of_the_json_schema_test_suite():
    cases = [case for case in suite_cases() if names_a_supported_draft(case["schema"])]
    assert len(cases) > 2_000
    assert disagreements(case["schema"] for case in cases) == []


def test_the_suites_metaschema_cases_get_the_suites_verdicts():
    cases = [case for case in suite_cases() if case["valid"] is not None]
    assert len(cases) >= 20
    for case in cases:
        assert (metaschema_problems(case["schema"]) == []) is case["valid"], case


def test_a_schema_naming_a_metaschema_of_its_own_is_refused_at_dollar_schema():
    own = [case for case in suite_cases() if not names_a_supported_draft(case["schema"])]
    assert own  # the suite's vocabulary tests name metaschemas on localhost
    for case in own:
        [problem] = metaschema_problems(case["schema"])
        assert problem.pointer == "/$schema"
        assert problem.message.startswith("unknown JSON Schema draft")


@pytest.mark.parametrize("draft", SUPPORTED_DRAFTS)
def test_both_walks_agree_on_every_keyword_of_the_draft_given_odd_values(draft):
    schemas = []
    for keyword in metaschema_keywords(draft):
        for value in ODD_VALUES:
            schemas.append({"$schema": draft, "type": "object", keyword: value})
            schemas.append(
                {"$schema": draft, "properties": {"a": {keyword: value}}, "items": {"anyOf": [{}]}}
            )
            schemas[-1]["items"]["anyOf"][0][keyword] = value
    refused = [schema for schema in schemas if metaschema_problems(schema)]
    assert len(refused) > len(schemas) / 2  # the odd values are mostly wrong somewhere
    assert disagreements(schemas) == []


def test_both_walks_agree_on_the_hostile_and_the_strict_tools_schemas():
    schemas = [
        schema
        for schema in [
            *HOSTILE_SCHEMAS.values(),
            *(case[0] for case in REFUSED.values()),
            *ACCEPTED.values(),
        ]
        if isinstance(schema, dict) and not json_problems(schema, max_depth=32)
    ]
    assert len(schemas) > 20
    assert disagreements(schemas) == []


def compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except (re.error, ValueError, OverflowError, RecursionError):
        return False
    return True


REGEX_PIECES = [
    *"()[]{}?*+|\\^$.-,:<>=!#aPiLZbdw019 ",
    *["(?<=", "(?<!", "(?P<n>", "(?P=n)", "(?i)", "(?(1)", "{2,3}", "\\1", "(?:", "(?>"],
    *["*+", "[^", "(?#", "\\N{", "(?a)", "(?L)", "(?u)", "(?-i:", "{99999999999}"],
]


@hypothesis_settings(max_examples=3_000, deadline=None)
@given(st.lists(st.sampled_from(REGEX_PIECES), max_size=12).map("".join))
def test_a_pattern_is_a_regex_exactly_when_python_compiles_it(pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set"
        assert is_python_regex(pattern) is compiles(pattern)
