"""What every app's write services share: creating and updating a model, refusing a delete.

HackSoft Styleguide's `model_update` (and a `model_create` to match), and the one exception for
rule 7 of docs/contract.md (a delete refused while something still references the object),
which the API answers with 409 (core.api.errors).
"""

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext

ModelT = TypeVar("ModelT", bound=models.Model)


class StillReferenced(ValidationError):
    """Rule 7: deleting an object is refused while something references it; `references` says
    what does, one phrase each ("tool “ask_calendar” delegates to it")."""

    def __init__(self, *, name: str, references: list[str]):
        super().__init__(
            gettext("“%(name)s” is still referenced: %(references)s.")
            % {"name": name, "references": "; ".join(references)},
            code="still_referenced",
        )
        self.references = references


def model_create(model_class: type[ModelT], /, **fields) -> ModelT:
    """A new row of `model_class` with `fields`, validated by its own rules (full_clean())
    before it is saved. (Positional: a field may be called `model`, as an assistant's is.)"""
    instance = model_class(**fields)
    instance.full_clean()
    instance.save()
    return instance


def model_update(
    *, instance: ModelT, fields: Iterable[str], data: Mapping[str, Any]
) -> tuple[ModelT, bool]:
    """Set the values `data` holds, full_clean() and save the ones that changed.

    Returns (instance, has_updated). Only `fields` may be set: any other key of `data` is the
    caller's mistake (ValueError), since the serializers have refused unknown input already.
    When nothing differs, nothing is validated or saved, so a write that changes nothing makes
    no new config revision (docs/contract.md). `auto_now` fields (`updated_at`) are saved with
    the rest.
    """
    editable = set(fields)
    for name in data:
        if name not in editable:
            raise ValueError(f"{name} is not an editable {instance._meta.verbose_name} field")
    update_fields = []
    for name, value in data.items():
        field = instance._meta.get_field(name)
        if _differs(field, getattr(instance, field.attname), value):
            setattr(instance, name, value)
            update_fields.append(name)
    if not update_fields:
        return instance, False
    update_fields += [
        field.name for field in instance._meta.concrete_fields if getattr(field, "auto_now", False)
    ]
    instance.full_clean()
    instance.save(update_fields=update_fields)
    return instance, True


def _differs(field: models.Field, current: Any, new: Any) -> bool:
    """Whether setting `new` changes the stored `current` (`field.attname`'s value)."""
    if field.is_relation:
        return current != getattr(new, "pk", new)
    if isinstance(field, models.JSONField):
        # Python finds 1 == 1.0 == True; JSON does not. Key order does not count (jsonb).
        return json.dumps(current, sort_keys=True) != json.dumps(new, sort_keys=True)
    return current != new
