"""The shape of an input resource, checked against FHIR R4 without building a model.

A resource from the EHR is read as raw JSON. Before the rules rely on one, it is checked
here: every element must be one R4 (R4B) defines for its type, hold the right JSON kind
(object, array, string, number, boolean), and primitives must match their R4 grammar
(id, code, date, dateTime, instant, ...). Required elements must be present and at most
one choice of a `value[x]` given. The structure comes from the fhir.resources R4B models,
read once per type; no model is built per resource, which is what makes this cheap.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

# FHIR R4 primitive grammars (https://hl7.org/fhir/R4/datatypes.html).
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_GRAMMAR = {
    "id": re.compile(r"[A-Za-z0-9\-\.]{1,64}"),
    "code": re.compile(r"[^\s]+( [^\s]+)*"),
    "string": re.compile(r"[ \r\n\t\S]+"),
    "uri": re.compile(r"\S*"),
    "date": re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?"),
    "dateTime": re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_ZONE})?)?)?"),
    "instant": re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}"),
    "time": re.compile(_TIME),
    "oid": re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+"),
    "uuid": re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "base64Binary": re.compile(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"),
}
# fhir.resources marks each primitive with a class of this name; ours is the grammar's.
_PRIMITIVES = {
    "Id": "id",
    "Code": "code",
    "String": "string",
    "Markdown": "string",
    "Xhtml": "string",
    "Uri": "uri",
    "Url": "uri",
    "Canonical": "uri",
    "Oid": "oid",
    "UuidVersion": "uuid",
    "Uuid": "uuid",
    "Date": "date",
    "DateTime": "dateTime",
    "Instant": "instant",
    "Time": "time",
    "EncodedBytes": "base64Binary",
    "Base64Binary": "base64Binary",
    "Integer": "integer",
    "Integer64": "integer",
    "UnsignedInt": "unsignedInt",
    "PositiveInt": "positiveInt",
    "Decimal": "decimal",
    "Boolean": "boolean",
}
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Element:
    """One JSON member of a FHIR type: its kind, cardinality, and choice group."""

    many: bool
    kind: str  # a primitive of _GRAMMAR or a number kind, "object", "resource", "extension"
    type_name: str | None = None  # the complex type, for "object"
    required: bool = False
    choice: str | None = None


@dataclass(frozen=True)
class Shape:
    name: str
    elements: dict[str, Element]
    required: tuple[str, ...]
    choices: tuple[tuple[str, tuple[str, ...], bool], ...]  # (group, members, required)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the element type, whether it is an array) of a model field's annotation."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            lists = [a for a in args if typing.get_origin(a) in (list, typing.List)]  # noqa: UP006
            annotation = lists[0] if lists else args[0]
        elif origin in (list, typing.List):  # noqa: UP006
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _element(annotation: Any, extra: dict[str, Any], alias: str) -> Element:
    target, many = _unwrap(annotation)
    choice = extra.get("one_of_many")
    required = bool(extra.get("element_required"))
    if typing.get_origin(target) is typing.Annotated:
        marker = type(typing.get_args(target)[1]).__name__
        kind = _PRIMITIVES.get(marker, "string")
        return Element(many, kind, None, required, choice)
    if target is bool:
        return Element(many, "boolean", None, required, choice)
    if target is str:
        return Element(many, "string", None, required, choice)
    name = getattr(target, "__name__", "")
    if alias.startswith("_"):
        return Element(many, "extension")
    if name == "ResourceType":
        return Element(many, "resource", None, required, choice)
    if name.endswith("Type"):
        return Element(many, "object", name.removesuffix("Type"), required, choice)
    return Element(many, "any", None, required, choice)


@cache
def shape_of(type_name: str) -> Shape:
    """The JSON shape of one R4 type, from its fhir.resources R4B model (read once)."""
    model = get_fhir_model_class(type_name)
    elements: dict[str, Element] = {}
    required: list[str] = []
    groups: dict[str, list[str]] = {}
    group_required: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if alias == "fhir_comments":
            elements[alias] = Element(False, "any")
            continue
        element = _element(field.annotation, extra, alias)
        if field.is_required() or element.required:
            element = Element(element.many, element.kind, element.type_name, True, element.choice)
            required.append(alias)
        if element.choice:
            groups.setdefault(element.choice, []).append(alias)
            group_required[element.choice] = group_required.get(element.choice, False) or bool(
                extra.get("one_of_many_required")
            )
        elements[alias] = element
    choices = tuple((g, tuple(m), group_required[g]) for g, m in groups.items())
    return Shape(type_name, elements, tuple(required), choices)


class _Problem(Exception):
    """Where (filled in on the way out, innermost last) and what is wrong."""

    def __init__(self, what: str, *where: str | int):
        super().__init__(what)
        self.what = what
        self.where = list(where)


def problem(resource: Any, resource_type: str | None = None) -> str | None:
    """None when `resource` has the shape of an R4 resource; else where and what is wrong.

    The answer names elements, never values: it goes into cards and logs.
    """
    given = resource.get("resourceType") if isinstance(resource, dict) else None
    rtype = resource_type or given
    label = f"not a valid FHIR R4 {rtype if isinstance(rtype, str) else 'resource'}"
    if not isinstance(resource, dict):
        return f"{label}: resource: not an object"
    try:
        if given != rtype:
            raise _Problem(f"not {rtype}", "resourceType")
        _check_resource(resource)
    except _Problem as found:
        where = ".".join(str(p) for p in reversed(found.where)) or "resource"
        return f"{label}: {where}: {found.what}"
    return None


def _check_resource(resource: dict) -> None:
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise _Problem("missing", "resourceType")
    try:
        shape = shape_of(rtype)
    except (KeyError, LookupError, ValueError, AttributeError):
        raise _Problem("not a FHIR R4 resource type", "resourceType") from None
    _check_object(resource, shape, is_resource=True)


def _check_object(value: dict, shape: Shape, *, is_resource: bool) -> None:
    elements = shape.elements
    for key, item in value.items():
        element = elements.get(key)
        try:
            if element is None:
                if is_resource and key == "resourceType":
                    continue
                raise _Problem("not an element of " + shape.name)
            if item is None:
                continue  # a null member counts as absent, as the R4B models read it
            if element.many:
                if not isinstance(item, list):
                    raise _Problem("not an array")
                for index, entry in enumerate(item):
                    try:
                        if entry is None:
                            # JSON pairs arrays of primitives with their `_x` arrays
                            # by position, null standing for a missing side
                            if element.kind in _COMPLEX:
                                raise _Problem("null in an array")
                        else:
                            _check_value(entry, element)
                    except _Problem as found:
                        found.where.append(index)
                        raise
            else:
                _check_value(item, element)
        except _Problem as found:
            found.where.append(key)
            raise
    for key in shape.required:
        # a required primitive may be given by its extension alone
        if value.get(key) is None and "_" + key not in value:
            raise _Problem("missing", key)
    for group, members, required in shape.choices:
        given = [m for m in members if value.get(m) is not None]
        if len(given) > 1:
            raise _Problem(f"more than one {group}[x]", given[1])
        if required and not given:
            raise _Problem("missing", group + "[x]")


def _check_value(value: Any, element: Element) -> None:
    kind = element.kind
    if kind == "object":
        if type(value) is not dict:
            raise _Problem("not an object")
        _check_object(value, shape_of(element.type_name), is_resource=False)
    elif kind == "string" or kind == "uri":
        if type(value) is not str:
            raise _Problem(f"not a string ({kind})")
        if kind == "string" and not value:
            raise _Problem("an empty string")
    elif kind == "resource":
        if type(value) is not dict:
            raise _Problem("not an object")
        _check_resource(value)
    elif kind == "extension":
        if type(value) is not dict:
            raise _Problem("not an object")
        _check_object(value, shape_of("Element"), is_resource=False)
    elif kind == "boolean":
        if type(value) is not bool:
            raise _Problem("not a boolean")
    elif kind in _INTEGER_LOW:
        if type(value) is not int:
            raise _Problem("not an integer")
        if not _INTEGER_LOW[kind] <= value <= _INT32[1]:
            raise _Problem(f"out of range for {kind}")
    elif kind == "decimal":
        if type(value) is not int and type(value) is not float:
            raise _Problem("not a number")
    elif kind == "any":
        return
    else:
        if type(value) is not str:
            raise _Problem(f"not a string ({kind})")
        if not _GRAMMAR[kind].fullmatch(value):
            raise _Problem(f"not a valid {kind}")
        if kind in _DATED and len(value) >= 10:
            try:
                date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
            except ValueError:
                raise _Problem(f"not a valid {kind}") from None


_COMPLEX = {"object", "resource"}
_INTEGER_LOW = {"integer": _INT32[0], "unsignedInt": 0, "positiveInt": 1}
_DATED = {"date", "dateTime", "instant"}
