"""Griffe extension for the API pages: pydantic signatures and numpydoc markup.

It changes only what the documentation site shows, never the package.

Pydantic signatures
    Static analysis sees a pydantic model's fields as annotated class attributes but not the
    ``__init__(**data)`` that pydantic builds from them, so griffe would render ``Loan()``
    and report every documented parameter as missing from the signature. Like griffe's
    built-in dataclasses extension, this one writes the signature pydantic accepts,
    ``Loan(*, loan_to_value=0.2, rate=0.045, ...)``, on every class derived from
    ``pydantic.BaseModel``. griffe's numpy parser gives every name of a grouped entry
    (``jump_mean, jump_vol : float``) the first name's default; each gets its own here.
numpydoc markup
    The docstrings are written for numpydoc and ``help()``, with Sphinx roles (``:func:``,
    ``:class:``, ``:math:`` ...) and ``.. math::`` blocks. mkdocstrings renders Markdown, so
    the cross-reference roles become code spans, ``:math:`` becomes ``$...$`` and a math
    block ``$$...$$`` (pymdownx.arithmatex renders both).

mkdocs.yml loads it by path (``extensions: [docs/api/griffe_invlend.py]``) and keeps it out of
the site (``exclude_docs``).
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_BASE = "pydantic.BaseModel"

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_XREF_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`~?([^`]+)`")
_MATH_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?:[ \t]*\n)*"
    r"(?P<body>(?:(?P=indent)[ \t]+\S.*\n|[ \t]*\n(?=(?P=indent)[ \t]+\S))+)",
    re.M,
)


def _markdown(text: str) -> str:
    """Sphinx roles and math directives of a numpydoc docstring as Markdown."""

    def block(m: re.Match) -> str:
        indent = m["indent"]
        body = textwrap.indent(textwrap.dedent(m["body"]).strip("\n"), indent)
        return f"{indent}$$\n{body}\n{indent}$$\n"

    text = _MATH_BLOCK.sub(block, text + "\n")[:-1]
    text = _MATH_ROLE.sub(lambda m: f"${m[1].strip()}$", text)
    return _XREF_ROLE.sub(lambda m: f"`{m[1]}`", text)


def _is_model(cls: griffe.Class, seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``cls`` derives from pydantic's BaseModel (through classes griffe has loaded)."""
    for base in cls.bases:
        path = getattr(base, "canonical_path", str(base))
        if path == _BASE:
            return True
        if path in seen:
            continue
        try:
            parent = cls.modules_collection[path]
        except (KeyError, ValueError):
            continue
        if isinstance(parent, griffe.Class) and _is_model(parent, seen | {path}):
            return True
    return False


def _default(attr: griffe.Attribute) -> str | griffe.Expr | None:
    """The field default: the assigned value, or ``Field(default=...)``'s (None = required)."""
    value = attr.value
    if isinstance(value, griffe.ExprCall) and value.function.canonical_path in {
        "pydantic.Field",
        "pydantic.fields.Field",
    }:
        for arg in value.arguments:
            if isinstance(arg, griffe.ExprKeyword):
                if arg.name == "default":
                    return arg.value
                if arg.name == "default_factory":
                    return griffe.ExprCall(function=arg.value, arguments=[])
            elif arg != "...":
                return arg  # Field(default, ...) positionally
        return None
    return value


def _fields(cls: griffe.Class) -> list[griffe.Parameter]:
    params = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if member.name.startswith("_") or member.name == "model_config":
            continue
        # Properties are not fields, nor are ClassVars (griffe labels those class-only).
        if "property" in member.labels or "instance-attribute" not in member.labels:
            continue
        params.append(
            griffe.Parameter(
                member.name,
                annotation=member.annotation,
                kind=griffe.ParameterKind.keyword_only,
                default=_default(member),
                docstring=member.docstring,
            )
        )
    return params


class InvlendDocs(griffe.Extension):
    """Markdown markup everywhere; a keyword-only ``__init__`` on every pydantic model."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the markup, then add the signatures, once the package is loaded."""
        self._rewrite(pkg)
        self._visit(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member)

    def _visit(self, obj: griffe.Module | griffe.Class) -> None:
        for member in obj.members.values():
            if member.is_alias:
                continue
            if member.is_module:
                self._visit(member)
            elif member.is_class:
                if "__init__" not in member.members and _is_model(member):
                    self._set_init(member)
                self._visit(member)

    @staticmethod
    def _set_init(cls: griffe.Class) -> None:
        fields: dict[str, griffe.Parameter] = {}
        for klass in reversed([cls, *cls.mro()]):  # parents first, subclasses override
            if isinstance(klass, griffe.Class):
                fields.update((p.name, p) for p in _fields(klass))
        self_param = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
        init = griffe.Function(
            "__init__",
            lineno=0,
            endlineno=0,
            parent=cls,
            parameters=griffe.Parameters(self_param, *fields.values()),
            returns="None",
        )
        cls.set_member("__init__", init)
        _fix_grouped_defaults(cls, fields)


def _fix_grouped_defaults(cls: griffe.Class, fields: dict[str, griffe.Parameter]) -> None:
    """Give each name of a grouped entry (``jump_mean, jump_vol : float``) its own default.

    griffe's numpy parser takes one default for the whole group, the first name's; parse the
    docstring now and set each parameter's default from the signature instead.
    """
    if cls.docstring is None:
        return
    for section in cls.docstring.parsed:
        if section.kind is griffe.DocstringSectionKind.parameters:
            for param in section.value:
                if param.name in fields:
                    param.value = fields[param.name].default
