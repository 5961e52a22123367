"""Rule 1's metaschema walk: is a tool's input schema a valid JSON Schema of its draft?

The walk is jsonschema-rs (Rust); the verdicts and the words are Python jsonschema's. Python
jsonschema costs up to 0.6 ms a value, and more where `uniqueItems` compares every pair (11 s
for a 5,000-value draft-04 `enum` of objects), which held SCHEMA_MAX_VALUES at 1,000, below the
5,000 properties OpenAI's strict mode takes. jsonschema-rs walks 5,000 values in milliseconds
(bench/schema_bench.py, bench/RESULTS.md "Schema limits"), so the limit is 5,000.

Same verdicts, by construction where it matters and by test everywhere
(tests/test_metaschema_differential.py runs both over the JSON-Schema-Test-Suite, every keyword
of every draft given odd values, and the hostile schemas):
- the draft is read from `$schema` by Python jsonschema's `validator_for`, so the same
  spellings name the same draft, and the metaschema is its copy of the draft's;
- `format` is asserted as Python jsonschema asserts it here: `regex` is what `re.compile`
  accepts (`(?P<name>…)` passes, `\\p{L}` does not), decided from Python's parse of the
  pattern without compiling it (is_python_regex), within SCHEMA_MAX_PATTERN_CHARACTERS; `uri`
  and `uri-reference`, which Python jsonschema leaves unchecked without optional packages, stay
  unchecked. These are the only formats the metaschemas use;
- Draft 3 (2010) is the one draft jsonschema-rs lacks: it is refused by name. Its `required:
  true` is read by no LLM provider, and Python jsonschema would take 12 s on a draft-3 `enum`
  of 2,500 objects.

Messages are Python jsonschema's (docs/contract.md "Validation rules": `/properties/city/type:
'strin' is not valid under any of the given schemas`): each is rebuilt from the failing value,
taken from the schema itself so its repr is Python's, and the keyword's value, read from the
metaschema where jsonschema-rs points (its order kept, e.g. `'object', 'boolean'`); they are
sorted by jsonschema's relevance. A refused schema of more than FULL_REPORT_MAX_VALUES values is
told its first problem only (_errors says why).
"""

import functools
import itertools
import re
from collections.abc import Callable
from contextvars import ContextVar
from re import _compiler, _constants, _parser  # re.compile's own parts (Python 3.11, the image's)

import jsonschema_rs
from django.conf import settings
from jsonschema import validators
from jsonschema_specifications import REGISTRY as METASCHEMAS

from core.api.json_input import MAX_PROBLEMS, JSONProblem, json_pointer

# The drafts jsonschema-rs walks, by the $id of their metaschema (Python jsonschema's names).
SUPPORTED_DRAFTS = {
    "http://json-schema.org/draft-04/schema": validators.Draft4Validator,
    "http://json-schema.org/draft-06/schema": validators.Draft6Validator,
    "http://json-schema.org/draft-07/schema": validators.Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": validators.Draft201909Validator,
    "https://json-schema.org/draft/2020-12/schema": validators.Draft202012Validator,
}
DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# jsonschema's relevance: an `anyOf` error gives way to a more specific one at the same place.
_WEAK_KEYWORDS = {"anyOf", "oneOf"}
# A refused schema of more values is told its first problem only (see _errors); the old limit,
# so every schema that fitted it before is told what it was told then.
FULL_REPORT_MAX_VALUES = 1_000
# What is left of SCHEMA_MAX_PATTERN_CHARACTERS during one walk (the format check is called
# from inside jsonschema-rs, so it cannot be handed an argument).
_pattern_characters_left: ContextVar[int] = ContextVar("pattern_characters_left")


def metaschema_problems(schema: dict) -> list[JSONProblem]:
    """Where and why `schema` is not a valid JSON Schema of the draft its `$schema` names
    (2020-12 without one); at most MAX_PROBLEMS, the most relevant first (a schema of more than
    FULL_REPORT_MAX_VALUES values: the first problem). Empty when valid.

    `schema` is a decoded JSON object already within the SCHEMA_MAX_* limits.
    """
    dialect = schema.get("$schema", DEFAULT_DRAFT)
    if not isinstance(dialect, str):
        return [JSONProblem("/$schema", "must be a string naming a JSON Schema draft.")]
    python_validator = SUPPORTED_DRAFTS[DEFAULT_DRAFT]
    if "$schema" in schema:
        python_validator = validators.validator_for(schema, default=None)
    if python_validator not in SUPPORTED_DRAFTS.values():
        known = ", ".join(SUPPORTED_DRAFTS)
        what = "unknown JSON Schema draft"
        if python_validator is validators.Draft3Validator:
            what = "JSON Schema draft 3 is not supported:"
        return [JSONProblem("/$schema", f"{what} {dialect!r} (known: {known}).")]
    limit = settings.SCHEMA_MAX_PATTERN_CHARACTERS
    budget = _pattern_characters_left.set(limit)
    try:
        errors = _errors(_walker(python_validator), schema)
        too_many_pattern_characters = _pattern_characters_left.get() < 0
    finally:
        _pattern_characters_left.reset(budget)
    if too_many_pattern_characters:
        return [
            JSONProblem(
                "/",
                f"more than {limit:,} characters of regular expressions (pattern, "
                "patternProperties) in all (SCHEMA_MAX_PATTERN_CHARACTERS).",
            )
        ]
    return [
        JSONProblem(json_pointer(error.instance_path), _message(error, schema)) for error in errors
    ]


def _errors(walker: jsonschema_rs.Validator, schema: dict) -> list:
    """The first MAX_PROBLEMS errors, the most relevant first: enough to fix a schema.

    jsonschema-rs builds every error of a walk before handing out the first (about 20 µs each),
    and 2019-09 and 2020-12 report a value that should be a schema once per vocabulary, 8
    times: 5,000 such values took a second to refuse. A larger schema is walked to its first
    error only, which costs no more than accepting it.
    """
    if _has_more_values_than(schema, FULL_REPORT_MAX_VALUES):
        try:
            walker.validate(schema)
        except jsonschema_rs.ValidationError as error:
            return [error]
        return []
    return sorted(itertools.islice(walker.iter_errors(schema), MAX_PROBLEMS), key=_relevance)


def _has_more_values_than(value, limit: int) -> bool:
    """Whether `value` holds more than `limit` values (objects, arrays and scalars)."""
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@functools.cache
def _walker(python_validator) -> jsonschema_rs.Validator:
    """jsonschema-rs compiled for the draft's metaschema (once per process: about 1 ms)."""
    return jsonschema_rs.validator_for(
        python_validator.META_SCHEMA,
        validate_formats=True,
        formats={
            "regex": _within_budget_and_python_regex,
            "uri": _unchecked,
            "uri-reference": _unchecked,
        },
        offline=True,  # every metaschema is bundled; nothing is fetched
    )


def _within_budget_and_python_regex(text) -> bool:
    """The `format: regex` check of one walk: past the budget, nothing more is parsed (the
    walk reports the budget instead)."""
    left = _pattern_characters_left.get(0) - len(text)
    _pattern_characters_left.set(left)
    return left < 0 or is_python_regex(text)


def is_python_regex(text) -> bool:
    """Whether `re.compile(text)` would succeed (Python jsonschema's `format: regex`), answered
    from Python's own parse of it. Compiling adds one check, that a look-behind has a fixed
    width, made here on the parse; and it builds character-set tables that cost up to 0.7 ms a
    character (`(?i)[\\x00-\\U0010ffff]`, 21 characters, takes 14 ms: 400 of them in a 7 KB
    pattern took 5.6 s before). The parse costs at most about 7 µs a character. A pattern that
    crashes the parser (a repetition over 4 billion, groups nested past the recursion limit,
    `(?a)(?u)`) is not a regex, instead of a 500.
    """
    if not isinstance(text, str):
        return True
    try:
        return all(_has_fixed_width(lookbehind) for lookbehind in _lookbehinds(_parser.parse(text)))
    except (re.error, ValueError, OverflowError, RecursionError):
        return False


def _lookbehinds(parsed: _parser.SubPattern):
    """The body of every `(?<=…)` and `(?<!…)` in a parsed pattern, at any depth."""
    stack = [parsed]
    while stack:
        for op, argument in stack.pop():
            if op in (_constants.ASSERT, _constants.ASSERT_NOT) and argument[0] < 0:
                yield argument[1]
            stack.extend(_parts(argument))


def _parts(argument) -> list:
    """The sub-patterns inside an opcode's argument (a group, a repeat, a branch, …)."""
    if isinstance(argument, _parser.SubPattern):
        return [argument]
    if isinstance(argument, tuple | list):
        return [part for item in argument for part in _parts(item)]
    return []


def _has_fixed_width(lookbehind: _parser.SubPattern) -> bool:
    """re._compiler's rule for a look-behind: one width, at most MAXCODE."""
    shortest, longest = lookbehind.getwidth()
    return shortest == longest and shortest <= _compiler.MAXCODE


def _unchecked(_text) -> bool:
    return True


def _relevance(error: jsonschema_rs.ValidationError) -> tuple:
    """jsonschema.exceptions.relevance: deeper first, then earlier siblings, `anyOf` last."""
    path = tuple((isinstance(token, int), token) for token in error.instance_path)
    return (-len(path), path, error.kind.name not in _WEAK_KEYWORDS)


def _message(error: jsonschema_rs.ValidationError, schema: dict, instance=None) -> str:
    """Python jsonschema's message for this error (jsonschema/_keywords.py), or jsonschema-rs's
    own for a keyword no metaschema uses."""
    if instance is None:
        instance = _value_at(schema, error.instance_path)
    keyword, kind = error.kind.name, error.kind
    if keyword == "propertyNames":  # the failing name, reported at the object
        return _message(kind.error, schema, instance=kind.error.instance)
    describe: Callable[[], str] | None = {
        "anyOf": lambda: f"{instance!r} is not valid under any of the given schemas",
        "type": lambda: f"{instance!r} is not of type {_types(error, kind)}",
        "enum": lambda: f"{instance!r} is not one of {_keyword_value(error, kind.options)!r}",
        "minimum": lambda: f"{instance!r} is less than the minimum of {kind.limit!r}",
        "exclusiveMinimum": lambda: (
            f"{instance!r} is less than or equal to the minimum of {kind.limit!r}"
        ),
        "minItems": lambda: (
            f"{instance!r} " + ("should be non-empty" if kind.limit == 1 else "is too short")
        ),
        "uniqueItems": lambda: f"{instance!r} has non-unique elements",
        "format": lambda: f"{instance!r} is not a {kind.format!r}",
        "pattern": lambda: f"{instance!r} does not match {kind.pattern!r}",
        "required": lambda: _required_message(error, instance),
    }.get(keyword)
    return describe() if describe else error.message


def _types(error, kind) -> str:
    types = _keyword_value(error, kind.types)
    return ", ".join(repr(name) for name in (types if isinstance(types, list) else [types]))


def _required_message(error, instance) -> str:
    missing = error.kind.property
    if error.schema_path and error.schema_path[-1] == "dependencies":  # draft 4's, e.g.
        # exclusiveMaximum needs maximum; jsonschema-rs names only what is missing.
        dependencies = _keyword_value(error, {}, parent=True)
        for name, needs in dependencies.items():
            if isinstance(instance, dict) and name in instance and missing in needs:
                return f"{missing!r} is a dependency of {name!r}"
    return f"{missing!r} is a required property"


def _keyword_value(error, fallback, *, parent: bool = False):
    """The keyword's value in the metaschema where jsonschema-rs found the error (`parent`:
    the value holding it), or `fallback` if it cannot be read there."""
    uri, _, fragment = (error.absolute_keyword_location or "").partition("#")
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in fragment.split("/")[1:]]
    if parent:
        tokens = tokens[:-1]
    try:
        return _value_at(METASCHEMAS.contents(uri), tokens)
    except (LookupError, TypeError, ValueError):
        return fallback


def _value_at(value, path):
    for token in path:
        value = value[int(token) if isinstance(value, list) else token]
    return value
