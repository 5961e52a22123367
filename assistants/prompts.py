"""Assistants' prompt templates on the server: the snippets their instructions include, the
instructions with every include expanded (placeholders left for the runtime), rule 11 (declared,
typed variables; the unused-variable warning) and rendering with a bound.

The grammar itself (placeholders, includes, escapes, strict rendering) is
config_client.templates, the one implementation the client uses too (docs/contract.md "The whole
agent in the config"); this module only applies it to an assistant's instructions and variables.
Rule 12 (includes) is snippets.validators'.
"""

import logging
from collections.abc import Mapping, Sequence

from config_client import templates
from config_client.templates import (
    VARIABLE_NAME,
    VARIABLE_TYPES,
    Placeholder,
    TemplateError,
    parse,
    placeholders,
    render,
    render_value,
    resolved_values,
    value_problem,
)
from django.conf import settings
from django.utils.translation import gettext as _

from core.api.json_input import JSONProblem
from snippets.selectors import active_snippet_texts
from snippets.validators import could_include

logger = logging.getLogger(__name__)

# The keys of one declared variable, in the order they are stored and shown.
VARIABLE_KEYS = ("name", "type", "required", "default", "enum", "description")
MAX_VARIABLES = 100
# The most the render endpoint returns: each placeholder may repeat a long value, so the
# output is bounded apart from the template and the request.
RENDER_MAX_BYTES = 1024 * 1024


def snippet_texts() -> dict[str, str]:
    """{name: text} of the active snippets, the ones instructions may include: one query."""
    return active_snippet_texts()


def expanded_instructions(instructions: str, snippets: Mapping[str, str]) -> str:
    """`instructions` with every include replaced by its snippet's text, itself expanded.

    Stored instructions always expand (rule 12 is checked on every save, in the admin, the API
    and the import); should a row break it anyway (written by SQL), its config shows the text as
    stored, with a warning, rather than fail.
    """
    if not could_include(instructions):
        return instructions
    try:
        return templates.expand(instructions, snippets)
    except (templates.TemplateError, RecursionError) as exc:
        logger.warning("instructions not expanded: %s", exc)
        return instructions


def strictly_expanded(instructions: str, snippets: Mapping[str, str] | None = None) -> str:
    """The instructions expanded as rule 12 allows (`snippets`: the active ones unless given);
    raises TemplateError saying why not (the admin's preview shows it)."""
    if not could_include(instructions):
        return instructions
    return templates.expand(
        instructions,
        snippet_texts() if snippets is None else snippets,
        max_bytes=settings.MAX_INSTRUCTIONS_BYTES,
    )


def _strictly_expanded(instructions: str, snippets: Mapping[str, str] | None) -> str | None:
    """The instructions expanded for rule 11, or None when rule 12 refuses them (it reports
    why: snippets.validators.expansion_error)."""
    try:
        return strictly_expanded(instructions, snippets)
    except (TemplateError, RecursionError):
        return None


def variables_problems(variables) -> tuple[list[dict] | None, list[JSONProblem]]:
    """Rule 11's shape of an assistant's declared variables: a list of objects with a name
    (VARIABLE_NAME, unique), a type (VARIABLE_TYPES), `required`, a `default` of that type or
    null, `enum` (strings, for the enum type only) and a `description`. Returns them normalized
    (every key present, `enum` only on enums) and the problems, each with its pointer."""
    if not isinstance(variables, list):
        return None, [JSONProblem("/", _("must be a list, not %s.") % type(variables).__name__)]
    if len(variables) > MAX_VARIABLES:
        return None, [JSONProblem("/", _("at most %d variables.") % MAX_VARIABLES)]
    problems: list[JSONProblem] = []
    normalized = []
    seen: dict[str, int] = {}
    for index, variable in enumerate(variables):
        at = f"/{index}"
        if not isinstance(variable, dict):
            problems.append(JSONProblem(at, _("must be an object.")))
            continue
        problems.extend(
            JSONProblem(f"{at}/{key}", _("unknown key (known: %s).") % ", ".join(VARIABLE_KEYS))
            for key in sorted(variable)
            if key not in VARIABLE_KEYS
        )
        name, kind = variable.get("name"), variable.get("type")
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            problems.append(
                JSONProblem(
                    f"{at}/name",
                    _(
                        "must be a lower-case name: a–z, digits and _, not starting with a digit, "
                        "at most 64 characters."
                    ),
                )
            )
        elif name in seen:
            problems.append(
                JSONProblem(
                    f"{at}/name",
                    _("“%(name)s” is declared twice (also at /%(other)d).")
                    % {"name": name, "other": seen[name]},
                )
            )
        else:
            seen[name] = index
        if kind not in VARIABLE_TYPES:
            problems.append(
                JSONProblem(f"{at}/type", _("must be one of %s.") % ", ".join(VARIABLE_TYPES))
            )
        required = variable.get("required", False)
        if not isinstance(required, bool):
            problems.append(JSONProblem(f"{at}/required", _("must be true or false.")))
        description = variable.get("description", "")
        if not isinstance(description, str):
            problems.append(JSONProblem(f"{at}/description", _("must be a string.")))
        enum = variable.get("enum")
        if kind == "enum":
            if (
                not isinstance(enum, list)
                or not enum
                or not all(isinstance(choice, str) for choice in enum)
                or len(set(enum)) != len(enum)
            ):
                problems.append(
                    JSONProblem(f"{at}/enum", _("an enum needs a list of distinct strings."))
                )
                enum = None
        elif enum is not None:
            problems.append(JSONProblem(f"{at}/enum", _("only a variable of type enum has one.")))
        default = variable.get("default")
        if default is not None and kind in VARIABLE_TYPES and (kind != "enum" or enum):
            problem = value_problem({"type": kind, "enum": enum}, default)
            if problem:
                problems.append(JSONProblem(f"{at}/default", problem))
        shaped = {
            "name": name,
            "type": kind,
            "required": required,
            "default": default,
            "description": description,
        }
        if kind == "enum":
            shaped["enum"] = enum
        normalized.append({key: shaped[key] for key in VARIABLE_KEYS if key in shaped})
    if problems:
        return None, problems
    return normalized, []


def instructions_problem(
    instructions: str, variables: Sequence[Mapping], snippets: Mapping[str, str] | None = None
) -> str | None:
    """Rule 11 on instructions: why they cannot be saved with these declared variables (a
    placeholder, in them or a snippet they include, naming no declared variable), else None.
    A syntax error or an include that fails is rule 12's (snippets.validators.expansion_error);
    `snippets`: the active snippets' texts (None: read them)."""
    text = _strictly_expanded(instructions, snippets)
    if text is None:
        return None  # rule 12's error
    declared = {variable["name"] for variable in variables}
    undeclared = [name for name in placeholders(text) if name not in declared]
    if undeclared:
        return _("placeholders name undeclared variables: %s; declare them under variables.") % (
            ", ".join(f"“{name}”" for name in undeclared)
        )
    return None


def unused_variables(
    instructions: str, variables: Sequence[Mapping], snippets: Mapping[str, str] | None = None
) -> list[str]:
    """The declared variables no placeholder uses (in the instructions or a snippet they
    include): a warning, not an error. Empty when the instructions cannot be expanded (that is
    an error reported by instructions_problem)."""
    text = _strictly_expanded(instructions, snippets)
    if text is None:
        return []
    used = set(placeholders(text))
    return [variable["name"] for variable in variables if variable["name"] not in used]


def unused_variables_warning(names: Sequence[str]) -> str:
    return _("Declared but used by no placeholder: %s.") % ", ".join(f"“{n}”" for n in names)


def rendered_instructions(config: Mapping, values: Mapping) -> str:
    """A resolved config's instructions (includes expanded) rendered with `values`, strictly
    (config_client.templates.render, as the client renders); raises TemplateError naming the
    variable, or when the result would exceed RENDER_MAX_BYTES."""
    instructions, variables = config["instructions"], config["variables"]
    resolved = resolved_values(variables, values)
    size = 0
    for part in parse(instructions):
        if isinstance(part, Placeholder) and part.name in resolved:
            size += len(render_value(resolved[part.name]).encode("utf-8", "surrogatepass"))
        else:
            size += len(part.source.encode("utf-8", "surrogatepass"))
        if size > RENDER_MAX_BYTES:
            raise TemplateError(
                _("the rendered instructions would exceed %(limit)s bytes; shorten the values")
                % {"limit": f"{RENDER_MAX_BYTES:,}"}
            )
    return render(instructions, variables, values)
