"""The shape of an operation, measured on the parsed document before validation."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from resolvers.permissions import fragment_definitions, select_operation

__all__ = ["Shape", "operation_shape"]

#: Introspection is governed by its own rule (operators and dev mode only, in
#: production); its fields are not counted in depth or cost.
_INTROSPECTION = ("__schema", "__type")


@dataclass(frozen=True, slots=True)
class Shape:
    """What an operation looks like, fragments expanded (every spread counted)."""

    depth: int = 0
    aliases: int = 0
    root_fields: int = 0
    directives: int = 0
    #: Field selections, leaves included: graphql-core's overlapping-fields check is
    #: quadratic in them, so they are bounded before it runs.
    fields: int = 0


def _combine(shapes: Iterator[Shape]) -> Shape:
    depth = aliases = directives = fields = 0
    for shape in shapes:
        depth = max(depth, shape.depth)
        aliases += shape.aliases
        directives += shape.directives
        fields += shape.fields
    return Shape(depth=depth, aliases=aliases, directives=directives, fields=fields)


def operation_shape(document: DocumentNode, operation_name: str | None) -> Shape:
    """The shape of the operation that would run; safe on an invalid document (unknown
    fragments count nothing, a fragment cycle is cut), and linear in the document
    however often fragments are spread."""
    fragments = fragment_definitions(document)
    operation = select_operation(document, operation_name)
    if operation is None:
        return Shape()

    @functools.cache
    def fragment(name: str) -> Shape:
        found = fragments.get(name)
        if found is None or name in visiting:
            return Shape()
        visiting.add(name)
        try:
            own = len(found.directives or ())
            inner = selections(found.selection_set)
            return Shape(inner.depth, inner.aliases, 0, inner.directives + own, inner.fields)
        finally:
            visiting.discard(name)

    visiting: set[str] = set()

    def selections(node: SelectionSetNode | None) -> Shape:
        if node is None:
            return Shape()
        return _combine(selection(child) for child in node.selections)

    def selection(node: Any) -> Shape:
        own = len(node.directives or ())
        if isinstance(node, FieldNode):
            aliased = int(node.alias is not None)
            if node.name.value in _INTROSPECTION:
                return Shape(depth=1, aliases=aliased, directives=own, fields=1)
            inner = selections(node.selection_set)
            return Shape(
                inner.depth + 1,
                inner.aliases + aliased,
                0,
                inner.directives + own,
                inner.fields + 1,
            )
        if isinstance(node, FragmentSpreadNode):
            inner = fragment(node.name.value)
        else:
            inner = selections(node.selection_set)
        return Shape(inner.depth, inner.aliases, 0, inner.directives + own, inner.fields)

    whole = selections(operation.selection_set)
    return Shape(
        depth=whole.depth,
        aliases=whole.aliases,
        root_fields=_root_fields(operation.selection_set, fragments, set()),
        directives=whole.directives + len(operation.directives or ()),
        fields=whole.fields,
    )


def _root_fields(
    node: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> int:
    count = 0
    for child in node.selections:
        if isinstance(child, FieldNode):
            count += 1
        elif isinstance(child, InlineFragmentNode):
            count += _root_fields(child.selection_set, fragments, seen)
        elif isinstance(child, FragmentSpreadNode) and child.name.value not in seen:
            found = fragments.get(child.name.value)
            if found is not None:
                count += _root_fields(found.selection_set, fragments, seen | {child.name.value})
    return count
