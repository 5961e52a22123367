"""Prompt templates: the one implementation of the grammar (docs/contract.md "Prompt
templates"), used by the server's validation (rules 11 and 12), its render endpoint, and the
client's offline `render`.

Grammar:
- `{{ name }}` is a placeholder: a declared variable's value at render time (`name` matches
  VARIABLE_NAME; spaces inside the braces are optional);
- `{{> snippet-name }}` includes a snippet's text (SNIPPET_NAME);
- `\\{{` is a literal `{{`;
- any other `{{` is a syntax error naming its character offset. A lone `}}` is text.

Includes are expanded before rendering (`expand`): the resolved config carries instructions with
every include expanded and the placeholders left for the runtime, so `render` refuses text that
still holds an include.

Values render as: strings as given, numbers as JSON (`3`, `2.5`), booleans as `true`/`false`.
Rendering is strict: a required variable with no value and no default, a value for an undeclared
variable, or a value of the wrong type is a TemplateError naming the variable. An optional
variable with neither value nor default renders as the empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VARIABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
SNIPPET_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
VARIABLE_TYPES = ("string", "integer", "number", "boolean", "enum")

OPEN = "{{"
ESCAPED_OPEN = "\\{{"
_TAG = re.compile(
    r"\{\{\s*(?:>\s*(?P<include>[a-z][a-z0-9_-]{0,63})|(?P<name>[a-z_][a-z0-9_]{0,63}))\s*\}\}"
)


class TemplateError(ValueError):
    """A template that cannot be parsed, expanded or rendered. `offset`: the character offset of
    a syntax error; `variable` / `snippet`: what the error is about (else None)."""

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        variable: str | None = None,
        snippet: str | None = None,
    ):
        super().__init__(message)
        self.offset, self.variable, self.snippet = offset, variable, snippet


@dataclass(frozen=True)
class Text:
    text: str  # what it renders as (an escape already turned into `{{`)
    source: str  # as written


@dataclass(frozen=True)
class Placeholder:
    name: str
    offset: int
    source: str


@dataclass(frozen=True)
class Include:
    snippet: str
    offset: int
    source: str


Part = Text | Placeholder | Include


def parse(template: str) -> list[Part]:
    """The template's parts in order; raises TemplateError at the first `{{` that is neither an
    escape, a placeholder nor an include."""
    parts: list[Part] = []
    position = 0
    while True:
        start = template.find(OPEN, position)
        if start < 0:
            break
        if start > 0 and template[start - 1] == "\\":
            text = template[position : start - 1]
            parts.append(Text(text + OPEN, text + ESCAPED_OPEN))
            position = start + len(OPEN)
            continue
        match = _TAG.match(template, start)
        if match is None:
            raise TemplateError(
                f"template syntax error at character {start}: `{{{{` must open "
                f"`{{{{ variable }}}}` or `{{{{> snippet }}}}` (write `\\{{{{` for a literal "
                f"`{{{{`)",
                offset=start,
            )
        if start > position:
            parts.append(Text(template[position:start], template[position:start]))
        if match["include"]:
            parts.append(Include(match["include"], start, match[0]))
        else:
            parts.append(Placeholder(match["name"], start, match[0]))
        position = match.end()
    if position < len(template):
        parts.append(Text(template[position:], template[position:]))
    return parts


def placeholders(template: str) -> list[str]:
    """The variable names the template's placeholders use, in order of first use."""
    return list(dict.fromkeys(p.name for p in parse(template) if isinstance(p, Placeholder)))


def includes(template: str) -> list[str]:
    """The snippet names the template includes directly, in order of first use."""
    return list(dict.fromkeys(p.snippet for p in parse(template) if isinstance(p, Include)))


def expand(template: str, snippets: Mapping[str, str], *, max_bytes: int | None = None) -> str:
    """The template with every include replaced by the snippet's text, itself expanded;
    placeholders and escapes are kept as written. `snippets`: the texts of the snippets that may
    be included, by name. Raises TemplateError for a syntax error (in the template or a
    snippet: the message names which), an include of a snippet not in `snippets`, an include
    cycle (named: `a → b → a`), or a result over `max_bytes` (UTF-8)."""
    out: list[str] = []
    size = 0

    def walk(text: str, chain: tuple[str, ...]) -> None:
        nonlocal size
        try:
            parts = parse(text)
        except TemplateError as exc:
            if not chain:
                raise
            raise TemplateError(
                f"snippet “{chain[-1]}”: {exc}", offset=exc.offset, snippet=chain[-1]
            ) from None
        for part in parts:
            if isinstance(part, Include):
                name = part.snippet
                if name in chain:
                    cycle = " → ".join((*chain[chain.index(name) :], name))
                    raise TemplateError(f"include cycle: {cycle}", snippet=name)
                if name not in snippets:
                    where = f"snippet “{chain[-1]}”" if chain else "the template"
                    raise TemplateError(
                        f"{where} includes “{name}”, which is no active snippet", snippet=name
                    )
                walk(snippets[name], (*chain, name))
                continue
            out.append(part.source)
            size += len(part.source.encode())
            if max_bytes is not None and size > max_bytes:
                raise TemplateError(
                    f"the instructions with every include expanded exceed {max_bytes} bytes"
                )

    walk(template, ())
    return "".join(out)


def included_snippets(template: str, snippets: Mapping[str, str]) -> list[str]:
    """Every snippet the template reaches, directly or through other snippets (those in
    `snippets` only; missing ones and cycles are `expand`'s errors), in order of first use."""
    seen: dict[str, None] = {}
    pending = list(includes(template))
    while pending:
        name = pending.pop(0)
        if name in seen or name not in snippets:
            continue
        seen[name] = None
        pending.extend(includes(snippets[name]))
    return list(seen)


# --- variables ---------------------------------------------------------------------------------


def value_problem(variable: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` cannot be the value of the declared `variable` (None: it can)."""
    kind = variable.get("type")
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "enum":
        choices = variable.get("enum") or []
        if isinstance(value, str) and value in choices:
            return None
        return f"must be one of {', '.join(map(repr, choices))}, not {value!r}"
    else:
        return f"has an unknown type {kind!r}"
    return None if ok else f"must be of type {kind}, not {type(value).__name__} {value!r}"


def render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)  # booleans as true/false, numbers as JSON


def resolved_values(
    variables: Sequence[Mapping[str, Any]], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The value of every declared variable: given, else its default, else None (optional);
    raises TemplateError naming an undeclared name, a wrong type, or a required variable with
    neither value nor default."""
    declared = {variable["name"]: variable for variable in variables}
    for name in values:
        if name not in declared:
            raise TemplateError(f"variable “{name}” is not declared", variable=name)
    resolved: dict[str, Any] = {}
    for name, variable in declared.items():
        if name in values and values[name] is not None:
            value = values[name]
        elif variable.get("default") is not None:
            value = variable["default"]
        elif variable.get("required"):
            raise TemplateError(f"variable “{name}” is required", variable=name)
        else:
            resolved[name] = None
            continue
        problem = value_problem(variable, value)
        if problem:
            raise TemplateError(f"variable “{name}” {problem}", variable=name)
        resolved[name] = value
    return resolved


def render(template: str, variables: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> str:
    """The template (includes already expanded) with every placeholder replaced by its
    variable's value; strict (module docstring)."""
    resolved = resolved_values(variables, values)
    out = []
    for part in parse(template):
        if isinstance(part, Text):
            out.append(part.text)
        elif isinstance(part, Placeholder):
            if part.name not in resolved:
                raise TemplateError(
                    f"placeholder “{part.name}” at character {part.offset} names no declared "
                    f"variable",
                    offset=part.offset,
                    variable=part.name,
                )
            out.append(render_value(resolved[part.name]))
        else:
            raise TemplateError(
                f"include “{part.snippet}” at character {part.offset} was not expanded",
                offset=part.offset,
                snippet=part.snippet,
            )
    return "".join(out)


def undeclared_placeholders(template: str, variables: Iterable[Mapping[str, Any]]) -> list[str]:
    """Placeholders of the (expanded) template that name no declared variable (rule 11)."""
    declared = {variable["name"] for variable in variables}
    return [name for name in placeholders(template) if name not in declared]
