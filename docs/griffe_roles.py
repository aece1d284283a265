"""A griffe extension for the API reference: Sphinx roles in docstrings become cross-references.

The docstrings use Sphinx's roles (``:func:`solve```, ``:class:`~grouping.adapter.WindowLayout```),
which Markdown would print as they are. Each becomes an *optional* autorefs cross-reference: a
link where the target is documented on the site, plain code where it is not (no warning). A
name without a package prefix is looked up next to the object first, then in its module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _target(name: str, obj: griffe.Object) -> str:
    if name.startswith("grouping"):
        return name
    head = name.split(".")[0]
    scope = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        if head in scope.members:
            return f"{scope.path}.{name}"
        scope = scope.parent
    return f"{obj.module.path}.{name}"


def convert(text: str, obj: griffe.Object) -> str:
    """``text`` with every Sphinx role replaced by an optional cross-reference."""

    def replace(match: re.Match[str]) -> str:
        tilde, name = match.groups()
        name = name.strip().removesuffix("()")
        title = name.split(".")[-1] if tilde else name
        target = escape(_target(name, obj), quote=True)
        return f'<autoref identifier="{target}" optional><code>{escape(title)}</code></autoref>'

    return _ROLE.sub(replace, text)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the package is loaded (so that names are
    looked up among members that exist)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)

    on_package_loaded = on_package  # griffe < 2
