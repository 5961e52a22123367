"""The prompt template grammar (config_client.templates): the one implementation the server's
validation, its render endpoint and the client share (docs/contract.md "Prompt templates")."""

import pytest
from config_client.templates import (
    TemplateError,
    expand,
    included_snippets,
    includes,
    placeholders,
    render,
)

NAME = [{"name": "user_name", "type": "string", "required": True, "default": None}]


def test_placeholders_and_includes_are_found_with_or_without_spaces_inside_the_braces():
    text = "Hi {{user_name}}, {{ user_name }} {{>greeting}} {{>  sign-off }}"
    assert placeholders(text) == ["user_name"]
    assert includes(text) == ["greeting", "sign-off"]


def test_an_escaped_brace_pair_renders_as_literal_braces_and_is_no_placeholder():
    assert placeholders("write \\{{ name }} literally") == []
    assert render("write \\{{ name }} literally", [], {}) == "write {{ name }} literally"


@pytest.mark.parametrize(
    ("text", "offset"),
    [("ab {{ Name }}", 3), ("{{", 0), ("x {{ a b }}", 2), ("ok {{ a }} then {{>}}", 16)],
)
def test_any_other_double_brace_is_a_syntax_error_naming_its_character_offset(text, offset):
    with pytest.raises(TemplateError) as caught:
        placeholders(text)
    assert caught.value.offset == offset
    assert f"character {offset}" in str(caught.value)


def test_values_render_strings_as_given_numbers_as_json_and_booleans_lowercase():
    variables = [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "integer"},
        {"name": "n", "type": "number"},
        {"name": "b", "type": "boolean"},
        {"name": "e", "type": "enum", "enum": ["formal", "casual"]},
    ]
    values = {"s": "Ann", "i": 3, "n": 2.5, "b": False, "e": "casual"}
    assert render("{{s}} {{i}} {{n}} {{b}} {{e}}", variables, values) == "Ann 3 2.5 false casual"


@pytest.mark.parametrize(
    ("values", "named"),
    [({}, "user_name"), ({"user_name": 7}, "user_name"), ({"user_name": "A", "x": 1}, "x")],
)
def test_rendering_is_strict_and_names_the_variable(values, named):
    with pytest.raises(TemplateError) as caught:
        render("Hello {{ user_name }}", NAME, values)
    assert caught.value.variable == named
    assert named in str(caught.value)


def test_a_default_is_used_when_no_value_is_given_and_an_optional_variable_renders_empty():
    variables = [
        {"name": "tone", "type": "enum", "enum": ["formal", "casual"], "default": "formal"},
        {"name": "extra", "type": "string", "required": False, "default": None},
    ]
    assert render("[{{tone}}|{{extra}}]", variables, {}) == "[formal|]"


def test_includes_expand_recursively_keeping_placeholders_and_escapes_for_the_runtime():
    snippets = {"greeting": "Hello {{ user_name }}. {{> rules }}", "rules": "Use \\{{ }}."}
    expanded = expand("{{> greeting }} Bye.", snippets)
    assert expanded == "Hello {{ user_name }}. Use \\{{ }}. Bye."
    assert render(expanded, NAME, {"user_name": "Ann"}) == "Hello Ann. Use {{ }}. Bye."
    assert included_snippets("{{> greeting }}", snippets) == ["greeting", "rules"]


def test_an_include_cycle_is_named_and_an_unknown_snippet_is_an_error():
    with pytest.raises(TemplateError, match="include cycle: a → b → a"):
        expand("{{> a }}", {"a": "{{> b }}", "b": "{{> a }}"})
    with pytest.raises(TemplateError, match="“missing”"):
        expand("{{> missing }}", {})


def test_a_syntax_error_inside_a_snippet_names_the_snippet_and_the_offset():
    with pytest.raises(TemplateError) as caught:
        expand("{{> a }}", {"a": "ok {{ Bad }}"})
    assert caught.value.snippet == "a" and caught.value.offset == 3


def test_expansion_past_the_byte_bound_is_refused():
    with pytest.raises(TemplateError, match="exceed 10 bytes"):
        expand("{{> a }}{{> a }}", {"a": "123456"}, max_bytes=10)


def test_render_refuses_text_whose_includes_were_not_expanded():
    with pytest.raises(TemplateError, match="not expanded"):
        render("{{> a }}", [], {})
