"""The cost of a validated operation: objects × list sizes (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)

from resolvers.permissions import fragment_definitions, select_operation

__all__ = ["LIST_SIZES", "SIZE_ARGUMENTS", "TYPE_WEIGHTS", "cached_cost", "operation_cost"]

SIZE_ARGUMENTS = ("first", "usccs", "ids")
#: Lists of objects that take no size argument, and how long they can be.
LIST_SIZES = {"businessFiles": 4}
#: What one object of a type costs; every other type costs 1. An enterprise is what the
#: service agreement forbids harvesting (clause 2.2(2)), so each one a response can
#: carry costs ten times a part of one: a crawler pays per enterprise, a person reading
#: an archive page pays mostly for its parts. An abstract type costs its dearest member.
TYPE_WEIGHTS = {"Enterprise": 10, "IntegrityBadge": 10}


def _argument_value(
    node: ValueNode | None, variables: Mapping[str, Any], default: Any = None
) -> Any:
    if node is None:
        return default
    if isinstance(node, VariableNode):
        return variables.get(node.name.value, default)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, ListValueNode):
        return list(node.values)
    return default


def _size(
    node: FieldNode, definition: Any, variables: Mapping[str, Any], pending: int | None
) -> tuple[int, int | None]:
    """The field's own multiplier, and the size it passes to the lists under it."""
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    explicit: int | None = None
    for name in SIZE_ARGUMENTS:
        if name in definition.args:
            value = _argument_value(given.get(name), variables, definition.args[name].default_value)
            if isinstance(value, list):
                explicit = len(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                explicit = max(value, 0)
    field_type: GraphQLOutputType = definition.type
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if not isinstance(field_type, GraphQLList):
        # A single object; a connection's `first` sizes the lists under it.
        return 1, explicit
    if explicit is not None:
        return explicit, None
    if pending is not None:
        return pending, None
    return LIST_SIZES.get(node.name.value, 1), None


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """Objects × list sizes for a *validated* document (see the module docstring)."""
    operation = select_operation(document, operation_name)
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = fragment_definitions(document)
    values = variables or {}

    def weight(named: Any) -> int:
        if isinstance(named, GraphQLObjectType):
            return TYPE_WEIGHTS.get(named.name, 1)
        return max((weight(member) for member in schema.get_possible_types(named)), default=1)

    def cost(node: SelectionSetNode | None, parent: Any, pending: int | None) -> int:
        if node is None:
            return 0
        total = 0
        for child in node.selections:
            if isinstance(child, FieldNode):
                name = child.name.value
                if name.startswith("__") or not isinstance(
                    parent, GraphQLObjectType | GraphQLInterfaceType
                ):
                    continue
                definition = parent.fields.get(name)
                if definition is None:
                    continue
                named = get_named_type(definition.type)
                if not is_composite_type(named):
                    continue
                size, passed = _size(child, definition, values, pending)
                total += size * (weight(named) + cost(child.selection_set, named, passed))
            elif isinstance(child, InlineFragmentNode):
                condition = child.type_condition
                target = schema.get_type(condition.name.value) if condition else parent
                total += cost(child.selection_set, target, pending)
            elif isinstance(child, FragmentSpreadNode):
                found = fragments.get(child.name.value)
                if found is not None:
                    target = schema.get_type(found.type_condition.name.value)
                    total += cost(found.selection_set, target, pending)
        return total

    return cost(operation.selection_set, root, None)


#: Costs of documents already priced, by (document, operation, what its size variables
#: hold): the document, its cost. A cached document is the same object in every
#: request, so the walk above runs once per document and sizes.
_COSTS: dict[tuple[int, str | None, tuple[Any, ...]], tuple[DocumentNode, int]] = {}
#: Variables that size a list, per document: (document, their names).
_SIZING: dict[int, tuple[DocumentNode, tuple[str, ...]]] = {}
_KEPT = 4096
_MISSING = ("missing",)


def _sizing_variables(document: DocumentNode) -> tuple[str, ...]:
    """The variables a size argument (``first``, ``usccs``, ``ids``) of the document
    names: the only ones its cost depends on."""
    found = _SIZING.get(id(document))
    if found is not None and found[0] is document:
        return found[1]
    names: list[str] = []
    pending: list[Any] = list(document.definitions)
    while pending:
        node = pending.pop()
        if isinstance(node, FieldNode):
            for argument in node.arguments or ():
                if argument.name.value in SIZE_ARGUMENTS and isinstance(
                    argument.value, VariableNode
                ):
                    names.append(argument.value.name.value)
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            pending.extend(selection_set.selections)
    sizing = tuple(sorted(set(names)))
    if len(_SIZING) >= _KEPT:
        _SIZING.clear()
    _SIZING[id(document)] = (document, sizing)
    return sizing


def _size_of(value: Any) -> tuple[Any, ...]:
    """What of a variable's value the cost reads: a list's length, an integer."""
    if isinstance(value, list):
        return ("list", len(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return ("int", value)
    return ("other",)


def cached_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """``operation_cost``, remembered per document and the sizes its variables give."""
    values = variables or {}
    sizes = tuple(
        _size_of(values[name]) if name in values else _MISSING
        for name in _sizing_variables(document)
    )
    key = (id(document), operation_name, sizes)
    found = _COSTS.get(key)
    if found is not None and found[0] is document:
        return found[1]
    cost = operation_cost(schema, document, operation_name, variables)
    if len(_COSTS) >= _KEPT:
        _COSTS.clear()
    _COSTS[key] = (document, cost)
    return cost
