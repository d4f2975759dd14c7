"""Compiled execution plans: a validated query run without graphql-core's per-field
machinery, calling the same resolvers with the same arguments and info.

graphql-core collects fields, builds a resolve info, looks up arguments and walks
the return type's wrappers anew for every value; a hundred badges do that work a
hundred times over. A plan does the document-dependent part once per document (cached
with the parsed document): for each selection and runtime type, the fields to run,
their definitions, how each resolves and how its value completes. Per request it
coerces the variables, computes each field's arguments once, and then only resolves
and completes values. Once a plan has run a few times (``_WRITTEN_AFTER``), each of
its selections on each object type is written out as a Python function of its own
(``_executor``): a field's read, its rule's check and the completion of an ordinary
value are lines of that function, and a value of the field's own object type (or a list
of them) goes straight to the function of the field's selection; anything else takes
``Run``'s general path, by which the plan ran until then. A field that reads an
attribute, or calls a method of its object that takes no argument, is read or called
directly, its visibility rule checked as VisibilityExtension would check it; a field
with a resolver of its own is called as Strawberry would call it (its arguments
converted once, its rule checked, ``self``, ``info``, ``root`` or ``parent`` passed as
it asks) without Strawberry's layers of wrappers; a field Strawberry would treat
otherwise (other field extensions, exception handlers) runs through its Strawberry
resolver.

Semantics follow graphql-core's executor, which stays the reference: errors are
located at the field (or list item), a null in a non-null position propagates to the
nearest nullable parent and cancels its pending siblings, an error under a position
already nulled is dropped. tests/test_plan.py runs both on generated operations.

Not covered, and so left to graphql-core (``compile_plan`` returns None): mutations
and subscriptions, directives on selections (``@skip``/``@include``/``@defer``),
introspection beyond ``__typename``, and a document whose operation cannot be chosen.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import keyword
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import CodeType
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    default_type_resolver,
    is_abstract_type,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
    is_required_argument,
    located_error,
)
from graphql.execution.collect_fields import does_fragment_condition_match
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    get_argument_values,
    get_variable_values,
    input_is_nested_too_deeply,
)
from graphql.pyutils import Path, Undefined, inspect, is_iterable
from graphql.type.definition import GraphQLResolveInfoHelpers
from graphql.type.scalars import GRAPHQL_MAX_INT, GRAPHQL_MIN_INT
from graphql.utilities import coerce_input_value
from graphql.utilities.coerce_input_value import coerce_default_value
from strawberry.execution import optimized_is_awaitable
from strawberry.relay import GlobalID
from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo as ResolveInfo
from strawberry.types.arguments import StrawberryArgument, _is_leaf_type, convert_arguments
from strawberry.types.base import StrawberryList, StrawberryMaybe, StrawberryOptional

from resolvers.context import Context
from resolvers.limits import cached_document
from resolvers.permissions import (
    Decision,
    Located,
    Rule,
    VisibilityExtension,
    closed_to_viewer,
    denied_at,
    field_denial,
    fragment_definitions,
    located_denial,
    open_rules,
    open_to_viewer,
    select_operation,
    shut_rules,
)

__all__ = ["Plan", "compile_plan", "compiled_plan"]

is_awaitable = optimized_is_awaitable
#: ``Path`` is a named tuple: ``_tuple(Path, (prev, key, typename))`` builds one as
#: ``Path(prev, key, typename)`` does, without the Python ``__new__`` named tuples get.
_tuple = tuple.__new__

#: How a field gets its value: its type's name, an attribute of the object, a method
#: of the object, its resolver called directly (these three checking the field's
#: visibility rule as VisibilityExtension would), or the field's Strawberry resolver.
_TYPENAME, _ATTRIBUTE, _METHOD, _DIRECT, _RESOLVER = range(5)
#: Argument values a plan may hand to every run of a field (a copy of the dict each
#: time): nothing a resolver could change in place.
_IMMUTABLE = (str, int, float, bool, type(None), enum.Enum)
#: How a value of a type completes.
_NON_NULL, _LIST, _LEAF, _OBJECT, _ABSTRACT = range(5)
#: graphql-core's scalars that serialize a value of this exact class as the value
#: itself (``serialize_string``, ``serialize_boolean``, ``serialize_id``).
_SAME = ((GraphQLString, str), (GraphQLBoolean, bool), (GraphQLID, str))


class _Unsupported(Exception):
    """The document uses something plans leave to graphql-core."""


class Completion:
    """How a value of one (wrapped) output type completes."""

    __slots__ = ("enum_class", "enum_names", "kind", "of", "type")

    def __init__(self, type_: GraphQLOutputType) -> None:
        self.type = type_
        self.of: Completion | None = None
        #: A Strawberry enum's Python class and each member's GraphQL name: what
        #: ``coerce_output_value`` answers for a member (the first name whose value is
        #: the member's), looked up instead of searched for; by the member's ``id``
        #: (members live as long as their class), as an Enum hashes in Python.
        self.enum_class: type | None = None
        self.enum_names: dict[int, str] = {}
        wrapped: Any = getattr(type_, "wrapped_cls", None)
        if isinstance(type_, GraphQLEnumType) and isinstance(wrapped, enum.EnumMeta):
            self.enum_class = wrapped
            member: Any
            for member in wrapped:
                for name, value in type_.values.items():
                    if member.value == value.value:
                        self.enum_names[id(member)] = name
                        break
            if len(self.enum_names) != len(wrapped):
                self.enum_class = None  # a member without a name: the type's own way
        if isinstance(type_, GraphQLNonNull):
            self.kind = _NON_NULL
            self.of = Completion(type_.of_type)
        elif isinstance(type_, GraphQLList):
            self.kind = _LIST
            self.of = Completion(type_.of_type)
        elif is_leaf_type(type_):
            self.kind = _LEAF
        elif is_abstract_type(type_):
            self.kind = _ABSTRACT
        else:
            self.kind = _OBJECT


class FieldPlan:
    """One response key of a selection on one object type."""

    __slots__ = (
        "call",
        "completion",
        "definition",
        "denials",
        "has_arguments",
        "how",
        "info_class",
        "info_name",
        "is_async",
        "key",
        "lazy_info",
        "leaf",
        "leaf_arguments",
        "leaf_type",
        "listed",
        "many",
        "name",
        "nodes",
        "parent_type",
        "passes_self",
        "python_name",
        "resolve",
        "rule",
        "same",
        "selection",
        "source_names",
        "static_arguments",
        "strawberry_field",
        "target",
        "variable_arguments",
        "variable_free",
    )

    def __init__(
        self,
        plan: Plan,
        parent_type: GraphQLObjectType,
        key: str,
        nodes: list[FieldNode],
    ) -> None:
        self.key = key
        self.nodes = nodes
        self.parent_type = parent_type
        self.name = name = nodes[0].name.value
        self.selection = Selection(plan, nodes)
        self.rule: Rule | None = None
        self.python_name = ""
        self.call: Callable[..., Any] | None = None
        self.resolve: Callable[..., Any] | None = None
        self.definition: GraphQLField | None = None
        self.completion: Completion | None = None
        self.strawberry_field: Any = None
        self.static_arguments: dict[str, Any] | None = None
        #: The field's denial located once per decision (``Run.deny``).
        self.denials: dict[Decision, Located] = {}
        #: (GraphQL name, Python name, whether a list) of each argument, when every one
        #: is a scalar, an enum or a list of them: what Strawberry's conversion leaves as
        #: graphql-core coerced it (a list copied).
        self.leaf_arguments: tuple[tuple[str, str, bool], ...] | None = None
        #: Per argument of the definition, in order, when every one given is a
        #: variable: (its name in the arguments, the variable or None, whether
        #: non-null, its default when not given); None otherwise (``Run._raw_arguments``).
        self.variable_arguments: tuple[tuple[str, str | None, bool, Any], ...] | None = None
        #: Set for a public scalar read off its object (``execute_fields``).
        self.leaf_type: Any = None
        self.leaf: Completion | None = None
        #: The Python class whose values this leaf's type serializes as they are.
        self.same: type | None = None
        #: For a field of an object type, or of a list of one: the type's Python class,
        #: its ``is_type_of`` (None, or Strawberry's, which ignores its info) and the
        #: selection's executor on it (``_executor``), so that a value of that class
        #: goes straight to it; whether a list, and the list's completion. Set when the
        #: executor of the field's own selection is written.
        self.target: tuple[type, Any, Callable[..., Any]] | None = None
        self.many = False
        self.listed: Completion | None = None
        if name == "__typename":
            self.how = _TYPENAME
            self.has_arguments = False
            return
        definition = parent_type.fields.get(name)
        if definition is None or name.startswith("__"):
            raise _Unsupported(name)  # introspection: graphql-core's own resolvers
        self.definition = definition
        self.completion = Completion(definition.type)
        self.has_arguments = bool(definition.args or nodes[0].arguments)
        self.variable_arguments = _variable_arguments(definition, nodes[0])
        self.resolve = definition.resolve
        self.how = _RESOLVER
        strawberry_field = definition.extensions.get("strawberry-definition")
        if strawberry_field is None:
            return
        extensions = strawberry_field.extensions
        if extensions and not (len(extensions) == 1 and type(extensions[0]) is VisibilityExtension):
            return
        resolver = strawberry_field.base_resolver
        if resolver is None:
            if getattr(definition.resolve, "_is_default", False) or (
                extensions and not self.has_arguments
            ):
                self.how = _ATTRIBUTE
                self.python_name = strawberry_field.python_name
        elif (
            not self.has_arguments
            and not resolver.arguments
            and resolver.self_parameter is not None
            and resolver.info_parameter is None
            and resolver.root_parameter is None
            and resolver.parent_parameter is None
        ):
            # A method of the object with no argument: called as Strawberry would.
            self.how = _METHOD
            self.call = resolver.wrapped_func
        elif callable(resolver.wrapped_func) and plan.converter is not None:
            if plan.converter._get_field_exception_handlers(strawberry_field):
                return  # Strawberry turns some exceptions into values here
            self.how = _DIRECT
            self.strawberry_field = strawberry_field
            self.call = resolver.wrapped_func
            self.is_async = strawberry_field.is_async
            self.info_class = plan.converter.config.info_class
            self.passes_self = resolver.self_parameter is not None
            self.source_names = tuple(
                parameter.name
                for parameter in (resolver.parent_parameter, resolver.root_parameter)
                if parameter is not None
            )
            info = resolver.info_parameter
            self.info_name = info.name if info is not None else None
            #: Strawberry's own Info class: the plan's lazy one stands in for it.
            self.lazy_info = self.info_class is strawberry.Info
            self.variable_free = not any(
                _uses_variables(argument.value) for argument in nodes[0].arguments or ()
            )
            self.leaf_arguments = _leaf_arguments(strawberry_field.arguments, plan.converter)
        if self.how != _RESOLVER and extensions:
            self.rule = extensions[0].rule
        if self.how in (_ATTRIBUTE, _METHOD):
            # A scalar read off its object: ``execute_fields`` completes it in line
            # when its value is an ordinary one and its rule (if any) lets every
            # value through for the viewer.
            leaf = self.completion
            if leaf.kind == _NON_NULL:
                leaf = leaf.of  # type: ignore[assignment]
            if leaf.kind == _LEAF:
                self.leaf_type = leaf.type
                self.leaf = leaf
                self.same = next((cls for type_, cls in _SAME if leaf.type is type_), None)
                if getattr(leaf.type, "coerce_output_value", None) is str:
                    self.same = str  # a scalar of ours that serializes with ``str`` (USCC)


def _variable_arguments(
    definition: GraphQLField, node: FieldNode
) -> tuple[tuple[str, str | None, bool, Any], ...] | None:
    """What ``FieldPlan.variable_arguments`` holds for a field node: None unless every
    argument it is given is a variable, and every one it is not given is optional with
    a default (if any) that nothing could change in place."""
    given = {argument.name.value: argument.value for argument in node.arguments or ()}
    if not given or not all(isinstance(value, VariableNode) for value in given.values()):
        return None
    entries: list[tuple[str, str | None, bool, Any]] = []
    for name, argument in definition.args.items():
        out_name = argument.out_name or name
        value = given.get(name)
        if isinstance(value, VariableNode):
            entries.append((out_name, value.name.value, is_non_null_type(argument.type), None))
            continue
        if is_required_argument(argument):
            return None
        try:
            default = coerce_default_value(argument)
        except Exception:
            return None
        if default is Undefined:
            continue
        if not isinstance(default, _IMMUTABLE):
            return None
        entries.append((out_name, None, False, default))
    return tuple(entries)


def _leaf_arguments(
    arguments: list[StrawberryArgument], converter: Any
) -> tuple[tuple[str, str, bool], ...] | None:
    """What ``FieldPlan.leaf_arguments`` holds for these arguments, or None when one of
    them is converted by Strawberry (an input type, a ``Maybe``, a global ID)."""
    registry = converter.scalar_registry
    leaves: list[tuple[str, str, bool]] = []
    for argument in arguments:
        type_: Any = argument.type
        if isinstance(type_, StrawberryMaybe):
            return None
        if isinstance(type_, StrawberryOptional):
            type_ = type_.of_type
        many = isinstance(type_, StrawberryList)
        if many:
            type_ = type_.of_type
            if isinstance(type_, StrawberryOptional):
                type_ = type_.of_type
        if type_ is GlobalID or not _is_leaf_type(type_, registry, skip_classes=(GlobalID,)):
            return None
        name = converter.config.name_converter.from_argument(argument)
        leaves.append((name, argument.python_name, many))
    return tuple(leaves)


class Selection:
    """The selection of a group of field nodes, by runtime object type (built on
    first use: a field of an abstract type learns its runtime types as it runs)."""

    __slots__ = ("by_type", "executors", "nodes", "plan")

    def __init__(self, plan: Plan, nodes: list[FieldNode]) -> None:
        self.plan = plan
        self.nodes = nodes
        self.by_type: dict[str, list[FieldPlan]] = {}
        self.executors: dict[str, Callable[[Run, Any, Path | None], Any]] = {}

    def executor(self, runtime_type: GraphQLObjectType) -> Callable[[Run, Any, Path | None], Any]:
        """The selection's fields on the type, run (``_executor``)."""
        found = self.executors.get(runtime_type.name)
        if found is None:
            found = _executor(self.fields(runtime_type), runtime_type)
            self.executors[runtime_type.name] = found
        return found

    def fields(self, runtime_type: GraphQLObjectType) -> list[FieldPlan]:
        found = self.by_type.get(runtime_type.name)
        if found is None:
            plan = self.plan
            grouped: dict[str, list[FieldNode]] = {}
            for node in self.nodes:
                if node.selection_set is not None:
                    plan.collect(node.selection_set, runtime_type, grouped, set())
            found = [FieldPlan(plan, runtime_type, key, group) for key, group in grouped.items()]
            self.by_type[runtime_type.name] = found
        return found


class Plan:
    """One query operation of one document, compiled."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: Any) -> None:
        self.schema = schema
        self.document = document
        self.operation: OperationDefinitionNode = operation
        self.fragments: dict[str, FragmentDefinitionNode] = fragment_definitions(document)
        root = schema.query_type
        assert root is not None
        self.root_type = root
        #: Strawberry's converter of this schema: how it converts arguments, its Info
        #: class, its exception handlers (None for a schema Strawberry did not build).
        strawberry_schema = getattr(schema, "_strawberry_schema", None)
        self.converter: Any = getattr(strawberry_schema, "schema_converter", None)
        signatures = [
            get_variable_signature(schema, node) for node in operation.variable_definitions or ()
        ]
        #: The variables' signatures, looked up once (None: one is not an input type,
        #: which graphql-core reports).
        self.signatures: list[GraphQLVariableSignature] | None = (
            None
            if any(isinstance(signature, GraphQLError) for signature in signatures)
            else signatures  # type: ignore[assignment]
        )
        #: Per signature, how a scalar or a list of scalars coerces without
        #: graphql-core's general walk (``_Leaves``), else None.
        self.leaves: list[_Leaves | None] = [
            _Leaves.of(signature.type) for signature in self.signatures or ()
        ]
        grouped: dict[str, list[FieldNode]] = {}
        self.collect(operation.selection_set, root, grouped, set())
        self.root = [FieldPlan(self, root, key, group) for key, group in grouped.items()]
        # Compile every selection for every type it can meet now (an abstract type's
        # for each of its possible types), so what plans leave to graphql-core is
        # found before anything runs.
        pending = list(self.root)
        while pending:
            field = pending.pop()
            completion = field.completion
            while completion is not None and completion.kind in (_NON_NULL, _LIST):
                completion = completion.of
            if completion is None or completion.kind == _LEAF:
                continue
            if completion.kind == _OBJECT:
                assert isinstance(completion.type, GraphQLObjectType)
                pending.extend(field.selection.fields(completion.type))
                continue
            assert isinstance(completion.type, GraphQLAbstractType)
            for possible in schema.get_possible_types(completion.type):
                pending.extend(field.selection.fields(possible))
        #: Runs so far, counted up to ``_WRITTEN_AFTER``; then the root selection's
        #: executor, written on first use.
        self.runs = 0
        self.execute_root: Callable[[Run, Any, Path | None], Any] | None = None

    def collect(
        self,
        selection_set: SelectionSetNode,
        runtime_type: GraphQLObjectType,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """graphql-core's field collection, for a document without directives."""
        for selection in selection_set.selections:
            if selection.directives:
                raise _Unsupported("directives")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if does_fragment_condition_match(self.schema, selection, runtime_type):
                    self.collect(selection.selection_set, runtime_type, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is None or not does_fragment_condition_match(
                    self.schema, fragment, runtime_type
                ):
                    continue
                if fragment.directives or fragment.variable_definitions:
                    raise _Unsupported("fragment directives or variables")
                self.collect(fragment.selection_set, runtime_type, grouped, visited)

    async def run(
        self,
        raw_variables: dict[str, Any] | None,
        context: Context,
        extensions: dict[str, Any] | None = None,
        *,
        written: bool | None = None,
    ) -> ExecutionResult:
        """``written``: whether the selections run as the Python functions written for
        them (``_executor``) or through ``Run.execute_fields``; by default, once the
        plan has run ``_WRITTEN_AFTER`` times."""
        coerced = self.variables(raw_variables or {})
        if isinstance(coerced, list):
            return ExecutionResult(None, coerced)
        if written is None:
            written = self.runs >= _WRITTEN_AFTER
            if not written:
                self.runs += 1
        run = Run(self, coerced, context, extensions or {}, written)
        try:
            if written:
                execute = self.execute_root
                if execute is None:
                    execute = self.execute_root = _executor(self.root, self.root_type)
                data = execute(run, None, None)
            else:
                data = run.execute_fields(self.root, self.root_type, None, None)
            if is_awaitable(data):
                data = await data
        except GraphQLError as error:
            run.add_error(error, None)
            data = None
        return ExecutionResult(data, run.errors or None)

    def variables(self, raw: dict[str, Any]) -> VariableValues | list[GraphQLError]:
        """``get_variable_values`` with the signatures looked up once: when every
        variable is given and coerces, done here as graphql-core does it; anything else
        (a default to apply, a variable left out, an error to report) by graphql-core."""
        signatures = self.signatures
        if signatures is not None:
            sources: dict[str, VariableValueSource] = {}
            coerced: dict[str, Any] = {}
            for signature, leaves in zip(signatures, self.leaves, strict=True):
                value = raw.get(signature.name, Undefined)
                if value is Undefined:
                    break
                if leaves is not None:
                    converted = leaves.coerce(value)
                elif input_is_nested_too_deeply(value, signature.type):
                    break
                else:
                    converted = coerce_input_value(value, signature.type)
                if converted is Undefined:
                    break
                sources[signature.name] = VariableValueSource(signature, value)
                coerced[signature.name] = converted
            else:
                return VariableValues(sources, coerced)
        return get_variable_values(
            self.schema, self.operation.variable_definitions or (), raw, _MAX_VARIABLE_ERRORS
        )


#: Variable errors reported before coercion stops (graphql-core's ``max_errors``).
_MAX_VARIABLE_ERRORS = 50
#: Runs of a plan before its selections are written out as Python: writing them costs
#: some twenty times what compiling the plan did (7 ms for the whole archive, 140 ms
#: for twenty of it under aliases), which a document sent once should never pay.
_WRITTEN_AFTER = 8


class _Leaves:
    """How a variable of a scalar or enum type, or of a list of them, coerces:
    ``coerce_input_value``'s result for a value that coerces (a list given as a list),
    and Undefined for anything else, which graphql-core then coerces and reports. Such
    a type nests at most one level, so no nesting check is needed."""

    __slots__ = ("item_non_null", "many", "non_null", "parse")

    def __init__(self, leaf: Any, non_null: bool, many: bool, item_non_null: bool) -> None:
        self.parse = leaf.parse_value
        self.non_null = non_null
        self.many = many
        self.item_non_null = item_non_null

    @classmethod
    def of(cls, type_: Any) -> _Leaves | None:
        non_null = isinstance(type_, GraphQLNonNull)
        if non_null:
            type_ = type_.of_type
        many = isinstance(type_, GraphQLList)
        item_non_null = False
        if many:
            type_ = type_.of_type
            item_non_null = isinstance(type_, GraphQLNonNull)
            if item_non_null:
                type_ = type_.of_type
        if not is_leaf_type(type_):
            return None
        return cls(type_, non_null, many, item_non_null)

    def coerce(self, value: Any) -> Any:
        if value is None:
            return Undefined if self.non_null else None
        if not self.many:
            return self._one(value)
        if type(value) is not list:
            return Undefined  # one value for a list, or an iterable: graphql-core's way
        items: list[Any] = []
        for item in value:
            if item is None:
                if self.item_non_null:
                    return Undefined
                items.append(None)
                continue
            parsed = self._one(item)
            if parsed is Undefined:
                return Undefined
            items.append(parsed)
        return items

    def _one(self, value: Any) -> Any:
        try:
            return self.parse(value)
        except Exception:
            return Undefined  # graphql-core says why


class Run:
    """One execution of a plan."""

    __slots__ = (
        "arguments",
        "context",
        "errors",
        "extensions",
        "nulled",
        "open",
        "plan",
        "shut",
        "variables",
        "written",
    )

    def __init__(
        self,
        plan: Plan,
        variables: VariableValues,
        context: Context,
        extensions: dict[str, Any],
        written: bool = False,
    ) -> None:
        self.plan = plan
        #: Whether selections run as their written executors (``_executor``).
        self.written = written
        self.extensions = extensions
        self.variables = variables
        self.context = context
        self.errors: list[GraphQLError] = []
        self.nulled: set[Path | None] = set()
        self.arguments: dict[FieldPlan, dict[str, Any]] = {}
        #: Per rule met: whether it lets every value through for this viewer
        #: (``open_to_viewer``), so its fields skip the check value by value; shared
        #: by every run of the viewer's kind where its decisions allow (``open_rules``).
        # (A test's schema may run without a viewer.)
        viewer = getattr(context, "viewer", None)
        self.open: dict[Rule, bool] = open_rules(viewer)
        #: Per rule met that is not open: the denial of every value it guards, whatever
        #: the enterprise (``closed_to_viewer``), or None; shared as ``open`` is.
        self.shut: dict[Rule, Decision | None] = shut_rules(viewer)

    def opens(self, rule: Rule) -> bool:
        opened = self.open.get(rule)
        if opened is None:
            opened = self.open[rule] = open_to_viewer(self.context, rule)
        return opened

    def closes(self, rule: Rule) -> Decision | None:
        """The denial of every value of ``rule``'s fields for this viewer, or None."""
        shut = self.shut
        if rule in shut:
            return shut[rule]
        decision = shut[rule] = closed_to_viewer(self.context, rule)
        return decision

    def deny(self, field: FieldPlan, path: Path, decision: Decision) -> None:
        """A field shut to the viewer (``closes``): its denial kept at ``path`` as the
        error of a null value, as ``field_denial`` and ``Run._allowed`` would keep it,
        without the resolver's arguments and info made first; raised when the field
        is non-null (to null its parent)."""
        located = field.denials.get(decision)
        if located is None:
            located = field.denials[decision] = located_denial(
                field.name,
                field.nodes,
                field.rule,  # type: ignore[arg-type]
                decision,
            )
        denied = denied_at(located, path)
        if field.completion.kind == _NON_NULL:  # type: ignore[union-attr]
            raise denied
        # ``add_error``, but a position that nothing under it ever fills (its field
        # is not resolved) need not be remembered as nulled.
        if self.nulled and self._nulled_at(path):
            return
        self.errors.append(denied)

    # errors -------------------------------------------------------------------------

    def add_error(self, error: GraphQLError, path: Path | None) -> None:
        """Keep an error, unless its position or an ancestor was already nulled."""
        nulled = self.nulled
        if nulled and self._nulled_at(path):
            return
        nulled.add(path)
        self.errors.append(error)

    def _nulled_at(self, path: Path | None) -> bool:
        """Whether ``path`` or an ancestor was already nulled."""
        nulled = self.nulled
        at = path
        while at is not None:
            if at in nulled:
                return True
            at = at.prev
        return None in nulled

    def field_error(
        self, raw: Exception, completion: Completion, nodes: list[FieldNode], path: Path
    ) -> None:
        # ``located_error`` keeps an error already located (a denial) as it is: its
        # path is then not worth listing.
        error = (
            raw
            if isinstance(raw, GraphQLError) and raw.path is not None
            else located_error(raw, nodes, path.as_list())
        )
        if completion.kind == _NON_NULL:
            raise error
        self.add_error(error, path)

    # fields -------------------------------------------------------------------------

    def execute_fields(
        self,
        fields: list[FieldPlan],
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path | None,
    ) -> Any:
        results: dict[str, Any] = {}
        pending: list[str] = []
        type_name = parent_type.name
        try:
            for field in fields:
                leaf_type = field.leaf_type
                if leaf_type is not None and (field.rule is None or self.opens(field.rule)):
                    # In line, for an ordinary value (no path built, no call made):
                    # anything else (an error, null, an awaitable) goes the long way.
                    try:
                        if field.how == _ATTRIBUTE:
                            result = getattr(source, field.python_name)
                        else:
                            result = field.call(source)  # type: ignore[misc]
                        if result.__class__ is field.same:
                            results[field.key] = result
                            continue
                        leaf: Completion = field.leaf  # type: ignore[assignment]
                        if result.__class__ is leaf.enum_class:
                            results[field.key] = leaf.enum_names[id(result)]
                            continue
                        if (
                            result is not None
                            and result is not Undefined
                            and not isinstance(result, Exception)
                            and not is_awaitable(result)
                        ):
                            coerced = leaf_type.coerce_output_value(result)
                            if coerced is not None and coerced is not Undefined:
                                results[field.key] = coerced
                                continue
                    except Exception as raw:
                        at = _tuple(Path, (path, field.key, type_name))
                        self.field_error(raw, field.completion, field.nodes, at)  # type: ignore[arg-type]
                        results[field.key] = None
                        continue
                    value = self._completed(
                        field, _tuple(Path, (path, field.key, type_name)), result
                    )
                else:
                    value = self.execute_field(
                        field, source, _tuple(Path, (path, field.key, type_name))
                    )
                results[field.key] = value
                if is_awaitable(value):
                    pending.append(field.key)
        except Exception:
            _settle([results[key] for key in pending])
            raise
        if not pending:
            return results
        return _await_pending(results, pending)

    def _leaf(self, field: FieldPlan, path: Path | None, type_name: str, result: Any) -> Any:
        """A scalar read off its object (``_executor``), when it is not already of the
        class its type serializes as is: an enum member's name, an ordinary value
        coerced, anything else (an error, null, an awaitable) the long way."""
        try:
            leaf: Completion = field.leaf  # type: ignore[assignment]
            if result.__class__ is leaf.enum_class:
                return leaf.enum_names[id(result)]
            if (
                result is not None
                and result is not Undefined
                and not isinstance(result, Exception)
                and not is_awaitable(result)
            ):
                coerced = field.leaf_type.coerce_output_value(result)
                if coerced is not None and coerced is not Undefined:
                    return coerced
        except Exception as raw:
            at = _tuple(Path, (path, field.key, type_name))
            self.field_error(raw, field.completion, field.nodes, at)  # type: ignore[arg-type]
            return None
        return self._completed(field, _tuple(Path, (path, field.key, type_name)), result)

    def _info(self, field: FieldPlan, path: Path) -> Any:
        plan = self.plan
        return ResolveInfo(
            field.name,
            field.nodes,
            field.definition.type,  # type: ignore[union-attr]
            field.parent_type,
            path,
            plan.schema,
            plan.fragments,
            None,
            plan.operation,
            self.variables.coerced,
            self.context,
            is_awaitable,
            None,
            _HELPERS,
            self.extensions,
        )

    def execute_field(self, field: FieldPlan, source: Any, path: Path) -> Any:
        how = field.how
        if how == _TYPENAME:
            return field.parent_type.name
        completion: Completion = field.completion  # type: ignore[assignment]
        try:
            if how < _DIRECT:  # an attribute or a method
                rule = field.rule
                if rule is not None and not self.opens(rule):
                    denied = field_denial(
                        self.context,
                        rule,
                        getattr(source, "enterprise_uscc", None),
                        field.name,
                        field.nodes,
                        path,
                        field.parent_type.name,
                    )
                    if denied is not None:
                        if completion.kind == _NON_NULL:
                            raise denied  # nulls its parent (field_error, below)
                        self.add_error(denied, path)  # kept as is, never raised
                        return None
                if how == _ATTRIBUTE:
                    result = getattr(source, field.python_name)
                else:
                    result = field.call(source)  # type: ignore[misc]
                info = None
            elif how == _DIRECT:
                if field.is_async:
                    return self._resolved_async(field, source, path)
                info = None  # built for completion only if it needs one
                result = self._call(field, source, path)
            else:
                info = self._info(field, path)
                arguments = self.arguments.get(field) if field.has_arguments else _NO_ARGUMENTS
                if arguments is None:
                    arguments = self._raw_arguments(field)
                    self.arguments[field] = arguments
                result = field.resolve(source, info, **arguments)  # type: ignore[misc]
        except Exception as raw:
            self.field_error(raw, completion, field.nodes, path)
            return None
        return self._completed(field, path, result, info)

    def _call(self, field: FieldPlan, source: Any, path: Path) -> Any:
        """Strawberry's resolver chain for one field, without its wrappers: the
        arguments converted (``get_arguments``), the field's rule checked
        (``VisibilityExtension``, which sees the converted arguments), the resolver
        called with ``self``, ``root``/``parent`` and ``info`` as it asks."""
        info = (
            _ResolverInfo(self, field, path)
            if field.lazy_info
            else field.info_class(_raw_info=self._info(field, path), _field=field.strawberry_field)
        )
        kwargs = self._converted(field, info)
        rule = field.rule
        if rule is not None and not self.opens(rule):
            self._check(field, source, kwargs, path)
        for name in field.source_names:
            kwargs[name] = source
        if field.info_name is not None:
            kwargs[field.info_name] = info
        if field.passes_self:
            return field.call(source, **kwargs)  # type: ignore[misc]
        return field.call(**kwargs)  # type: ignore[misc]

    def _check(self, field: FieldPlan, source: Any, kwargs: dict[str, Any], path: Path) -> None:
        """A resolver's rule checked for its enterprise: its object's, or the one its
        arguments name (VisibilityExtension sees the converted arguments)."""
        denied = self._denied(field, source, kwargs, path)
        if denied is not None:
            raise denied

    def _allowed(self, field: FieldPlan, source: Any, kwargs: dict[str, Any], path: Path) -> bool:
        """``_check`` for the written executors: whether the resolver may be called; if
        not, its denial is kept at ``path`` as the error of a null value, without a
        raise, a catch and a traceback to drop, unless the field is non-null (the
        denial is then raised, to null the parent as a resolver's error would)."""
        denied = self._denied(field, source, kwargs, path)
        if denied is None:
            return True
        if field.completion.kind == _NON_NULL:  # type: ignore[union-attr]
            raise denied
        self.add_error(denied, path)
        return False

    def _denied(
        self, field: FieldPlan, source: Any, kwargs: dict[str, Any], path: Path
    ) -> GraphQLError | None:
        enterprise = getattr(source, "enterprise_uscc", None) or kwargs.get("uscc")
        return field_denial(
            self.context,
            field.rule,  # type: ignore[arg-type]
            enterprise,
            field.name,
            field.nodes,
            path,
            field.parent_type.name,
        )

    async def _resolved_async(self, field: FieldPlan, source: Any, path: Path) -> Any:
        """An asynchronous resolver's field, called, awaited and completed in one
        coroutine: checked and converted when it is awaited, as Strawberry's
        asynchronous resolver is (a denial is raised when the field is awaited, not
        when it is started)."""
        completion: Completion = field.completion  # type: ignore[assignment]
        try:
            result = await self._call(field, source, path)
            completed = self.complete(field, completion, path, result, None)
            if is_awaitable(completed):
                completed = await completed
            return completed
        except Exception as raw:
            self.field_error(raw, completion, field.nodes, path)
            return None

    def _raw_arguments(self, field: FieldPlan) -> dict[str, Any]:
        """``get_argument_values`` for the field: read straight off the coerced
        variables when every argument it is given is a variable the request holds
        (``FieldPlan.variable_arguments``), else by graphql-core (a default to apply, a
        null to refuse, a literal to coerce)."""
        entries = field.variable_arguments
        if entries is not None:
            coerced = self.variables.coerced
            raw: dict[str, Any] = {}
            for name, variable, non_null, default in entries:
                if variable is None:
                    raw[name] = default
                    continue
                value = coerced.get(variable, Undefined)
                if value is Undefined or (value is None and non_null):
                    break
                raw[name] = value
            else:
                return raw
        return get_argument_values(
            field.definition,  # type: ignore[arg-type]
            field.nodes[0],
            self.variables,
        )

    def _converted(self, field: FieldPlan, info: Any) -> dict[str, Any]:
        """A fresh dict of the field's converted arguments: converted once per run (once
        per plan when they name no variable and hold nothing mutable)."""
        static = field.static_arguments
        if static is not None:
            return dict(static)
        converted = self.arguments.get(field)
        if converted is None:
            raw = self._raw_arguments(field) if field.has_arguments else _NO_ARGUMENTS
            leaves = field.leaf_arguments
            if leaves is not None:
                converted = {
                    python_name: list(raw[name]) if many and raw[name] is not None else raw[name]
                    for name, python_name, many in leaves
                    if name in raw
                }
            else:
                converter = self.plan.converter
                converted = convert_arguments(
                    raw,
                    field.strawberry_field.arguments,
                    scalar_registry=converter.scalar_registry,
                    config=converter.config,
                    info=info,
                )
            if field.variable_free and all(
                isinstance(value, _IMMUTABLE) for value in converted.values()
            ):
                field.static_arguments = converted
            else:
                self.arguments[field] = converted
        return dict(converted)

    def _completed(self, field: FieldPlan, path: Path, result: Any, info: Any = None) -> Any:
        """A field's value, once in hand (resolved, or read off its object already):
        completed, or its error kept at ``path``."""
        completion: Completion = field.completion  # type: ignore[assignment]
        try:
            if is_awaitable(result):
                return self._complete_awaitable(field, completion, path, result, info)
            completed = self.complete(field, completion, path, result, info)
            if is_awaitable(completed):
                return self._await_completed(field, completion, path, completed)
            return completed
        except Exception as raw:
            self.field_error(raw, completion, field.nodes, path)
            return None

    async def _complete_awaitable(
        self, field: FieldPlan, completion: Completion, path: Path, result: Any, info: Any
    ) -> Any:
        try:
            resolved = await result
            completed = self.complete(field, completion, path, resolved, info)
            if is_awaitable(completed):
                completed = await completed
            return completed
        except Exception as raw:
            self.field_error(raw, completion, field.nodes, path)
            return None

    async def _await_completed(
        self, field: FieldPlan, completion: Completion, path: Path, completed: Any
    ) -> Any:
        try:
            return await completed
        except Exception as raw:
            self.field_error(raw, completion, field.nodes, path)
            return None

    # completion ---------------------------------------------------------------------

    def complete(
        self, field: FieldPlan, completion: Completion, path: Path, result: Any, info: Any
    ) -> Any:
        target = field.target
        if target is not None and completion is field.completion:
            # A field's own value of its object type (or a list): straight to the
            # selection's executor.
            if field.many:
                if result.__class__ is list:
                    return self.complete_list(field, field.listed, path, result, info, target)  # type: ignore[arg-type]
            elif result.__class__ is target[0] and (target[1] is None or target[1](result, None)):
                return target[2](self, result, path)
        if isinstance(result, Exception):
            raise result
        non_null = completion.kind == _NON_NULL
        if non_null:  # its type's completion, in this same call
            completion = completion.of  # type: ignore[assignment]
        kind = completion.kind
        if result is None or result is Undefined:
            completed = None
        elif kind == _LEAF:
            if result.__class__ is completion.enum_class:
                return completion.enum_names[id(result)]
            type_: Any = completion.type
            completed = type_.coerce_output_value(result)
            if completed is Undefined or completed is None:
                raise TypeError(
                    f"Expected `{inspect(type_)}.coerce_output_value({inspect(result)})`"
                    f" to return non-nullable value, returned: {inspect(completed)}"
                )
            return completed
        elif kind == _OBJECT:
            completed = self.complete_object(field, completion.type, path, result, info)  # type: ignore[arg-type]
        elif kind == _LIST:
            completed = self.complete_list(field, completion, path, result, info)
        else:
            completed = self.complete_abstract(field, completion.type, path, result, info)  # type: ignore[arg-type]
        if completed is None and non_null:
            raise TypeError(
                f"Cannot return null for non-nullable field {field.parent_type}.{field.name}."
            )
        return completed

    def complete_list(
        self,
        field: FieldPlan,
        completion: Completion,
        path: Path,
        result: Any,
        info: Any,
        target: tuple[type, Any, Callable[..., Any]] | None = None,
    ) -> Any:
        """``target``: the items' object type's Python class, its ``is_type_of`` (or
        None) and the field's executor on it (``_executor``), for items run directly."""
        if type(result) is not list and not is_iterable(result):  # a list, mostly
            raise GraphQLError(
                "Expected Iterable, but did not find one for field"
                f" '{field.parent_type}.{field.name}'."
            )
        item_completion: Completion = completion.of  # type: ignore[assignment]
        completed: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(result):
                item_path = _tuple(Path, (path, index, None))
                if (
                    target is not None
                    and item.__class__ is target[0]
                    and (target[1] is None or target[1](item, None))
                ):
                    try:
                        value = target[2](self, item, item_path)
                    except Exception as raw:
                        self.field_error(raw, item_completion, field.nodes, item_path)
                        value = None
                    else:
                        if value.__class__ is not dict:
                            value = self._await_completed(field, item_completion, item_path, value)
                            pending.append(index)
                    completed.append(value)
                    continue
                if is_awaitable(item):
                    completed.append(
                        self._complete_awaitable(field, item_completion, item_path, item, info)
                    )
                    pending.append(index)
                    continue
                try:
                    value = self.complete(field, item_completion, item_path, item, info)
                    if is_awaitable(value):
                        value = self._await_completed(field, item_completion, item_path, value)
                        pending.append(index)
                    completed.append(value)
                except Exception as raw:
                    self.field_error(raw, item_completion, field.nodes, item_path)
                    completed.append(None)
        except Exception:
            _settle([completed[index] for index in pending])
            raise
        if not pending:
            return completed
        return _await_pending(completed, pending)

    def complete_object(
        self,
        field: FieldPlan,
        type_: GraphQLObjectType,
        path: Path,
        result: Any,
        info: Any,
    ) -> Any:
        is_type_of = type_.is_type_of
        if is_type_of is not None:
            if info is None and not _ignores_info(type_):
                info = self._info(field, path)
            matches = is_type_of(result, info)
            if is_awaitable(matches):
                return self._complete_object_async(field, type_, path, result, matches)
            if not matches:
                raise _not_of_type(field, type_, result)
        if self.written:
            return field.selection.executor(type_)(self, result, path)
        return self.execute_fields(field.selection.fields(type_), type_, result, path)

    async def _complete_object_async(
        self,
        field: FieldPlan,
        type_: GraphQLObjectType,
        path: Path,
        result: Any,
        matches: Any,
    ) -> Any:
        if not await matches:
            raise _not_of_type(field, type_, result)
        value = (
            field.selection.executor(type_)(self, result, path)
            if self.written
            else self.execute_fields(field.selection.fields(type_), type_, result, path)
        )
        return await value if is_awaitable(value) else value

    def complete_abstract(
        self,
        field: FieldPlan,
        type_: GraphQLAbstractType,
        path: Path,
        result: Any,
        info: Any,
    ) -> Any:
        info = info or self._info(field, path)
        resolver = type_.resolve_type or default_type_resolver
        runtime: Any = resolver(result, info, type_)
        if is_awaitable(runtime):

            async def later() -> Any:
                runtime_type = self._runtime_type(field, type_, await runtime, result)
                value = self.complete_object(field, runtime_type, path, result, info)
                return await value if is_awaitable(value) else value

            return later()
        runtime_type = self._runtime_type(field, type_, runtime, result)
        return self.complete_object(field, runtime_type, path, result, info)

    def _runtime_type(
        self, field: FieldPlan, type_: GraphQLAbstractType, name: Any, result: Any
    ) -> GraphQLObjectType:
        """graphql-core's ``ensure_valid_runtime_type``, word for word."""
        where = f"for field '{field.parent_type}.{field.name}'"
        if name is None:
            raise GraphQLError(
                f"Abstract type '{type_}' must resolve to an Object type at runtime {where}."
                f" Either the '{type_}' type should provide a 'resolve_type' function or each"
                " possible type should provide an 'is_type_of' function.",
                field.nodes,
            )
        if not isinstance(name, str):
            raise GraphQLError(
                f"Abstract type '{type_}' must resolve to an Object type at runtime {where}"
                f" with value {inspect(result)}, received '{inspect(name)}', which is not a"
                " valid Object type name.",
                field.nodes,
            )
        schema = self.plan.schema
        runtime_type = schema.get_type(name)
        if runtime_type is None:
            raise GraphQLError(
                f"Abstract type '{type_}' was resolved to a type '{name}' that does not"
                " exist inside the schema.",
                field.nodes,
            )
        if not is_object_type(runtime_type):
            raise GraphQLError(
                f"Abstract type '{type_}' was resolved to a non-object type '{name}'.",
                field.nodes,
            )
        assert isinstance(runtime_type, GraphQLObjectType)
        if not schema.is_sub_type(type_, runtime_type):
            raise GraphQLError(
                f"Runtime Object type '{runtime_type}' is not a possible type for '{type_}'.",
                field.nodes,
            )
        return runtime_type


_NO_ARGUMENTS: dict[str, Any] = {}


@functools.cache
def _ignores_info(type_: GraphQLObjectType) -> bool:
    """Whether the type's ``is_type_of`` is the one Strawberry makes for a type with
    interfaces (an ``isinstance`` check that never looks at its info), not one the type
    declares itself."""
    definition = type_.extensions.get("strawberry-definition")
    return definition is not None and definition.is_type_of is None


class _ResolverInfo(strawberry.Info):
    """Strawberry's ``Info`` for a resolver a plan calls: graphql-core's resolve info
    (fifteen fields) is built only when the resolver looks past its context and path,
    as most here never do."""

    def __init__(self, run: Run, field: FieldPlan, path: Path) -> None:
        self._run = run
        self._plan_field = field
        self._path = path
        self._field = field.strawberry_field
        self._built: Any = None

    @property
    def _raw_info(self) -> Any:  # type: ignore[override]
        built = self._built
        if built is None:
            built = self._built = self._run._info(self._plan_field, self._path)
        return built

    @property
    def context(self) -> Any:
        return self._run.context

    @property
    def path(self) -> Path:
        return self._path


def _uses_variables(value: Any) -> bool:
    """Whether an argument's literal names a variable anywhere in it."""
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_uses_variables(item) for item in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_uses_variables(field.value) for field in value.fields)
    return False


def _not_of_type(field: FieldPlan, type_: GraphQLObjectType, result: Any) -> GraphQLError:
    """graphql-core's refusal of a value its object type's ``is_type_of`` rejects."""
    return GraphQLError(
        f"Expected value of type '{type_.name}' but got: {inspect(result)}.", field.nodes
    )


async def _await_pending(container: Any, pending: list[Any]) -> Any:
    """Replace the awaitables at ``pending`` (keys of a dict or indices of a list) with
    their values, concurrently when there are several."""
    if len(pending) == 1:
        at = pending[0]
        container[at] = await container[at]
        return container
    values = await _gather([container[at] for at in pending])
    for at, value in zip(pending, values, strict=True):
        container[at] = value
    return container


async def _gather(awaitables: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await concurrently; the first exception cancels the rest (graphql-core's
    ``gather_with_cancel``: a null propagating past siblings stops them)."""
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return await asyncio.gather(*futures)
    except Exception:
        for future in futures:
            if not future.done():
                future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        raise


def _gather_list(awaitables: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return _gather(awaitables)


def _track(values: Sequence[Any]) -> None:
    _settle([value for value in values if is_awaitable(value)])


def _settle(awaitables: Iterable[Any]) -> None:
    """Let awaitables abandoned by an error finish (and their errors be observed)."""
    for awaitable in awaitables:
        future = asyncio.ensure_future(awaitable)
        future.add_done_callback(_observe)


def _observe(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


#: What ``info`` offers resolvers for their own asynchronous work (graphql-core's).
_HELPERS = GraphQLResolveInfoHelpers(gather=_gather_list, track=_track)


def compile_plan(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> Plan | None:
    """The plan of the operation, or None when it is left to graphql-core."""
    operation = select_operation(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    if operation.directives:
        return None
    try:
        return Plan(schema, document, operation)
    except _Unsupported:
        return None


@functools.lru_cache(maxsize=256)
def compiled_plan(
    schema: GraphQLSchema, query: str, max_tokens: int, operation_name: str | None
) -> Plan | None:
    """The plan of a short document ``measure`` accepted, cached by its text (as the
    parse is: a document's own hash walks its whole tree)."""
    return compile_plan(schema, cached_document(query, max_tokens), operation_name)


# generated field runs --------------------------------------------------------------


def _executor(
    fields: list[FieldPlan], runtime_type: GraphQLObjectType
) -> Callable[[Run, Any, Path | None], Any]:
    """``Run.execute_fields`` for one selection on one object type, written out as a
    Python function: a few lines per field where the loop would look up, per value,
    how the field resolves, whether its rule lets it through and how its value
    completes. An attribute read, a method or a synchronous resolver called, its value
    completed in line when it is an ordinary scalar, or passed straight to the function
    of the field's selection when it is of the field's object type (or a list of them);
    an asynchronous resolver called, awaited and completed in one coroutine; anything
    unusual (an error, null, an awaitable, another class, a rule that is not open to
    the viewer) takes ``Run``'s general path, which stays the reference."""
    namespace: dict[str, Any] = {
        "Path": Path,
        "_tuple": _tuple,
        "is_awaitable": is_awaitable,
        "_settle": _settle,
        "_await_pending": _await_pending,
    }
    type_name = runtime_type.name
    lines = [
        "def execute(run, source, path):",
        "    results = {}",
        "    pending = []",
        "    opens = run.opens",
        "    opened = run.open.get",
        "    closes = run.closes",
        "    try:",
    ]
    head = len(lines) - 1  # where the lines that name them end
    for index, field in enumerate(fields):
        key = repr(field.key)
        if field.how == _TYPENAME:
            lines.append(f"        results[{key}] = {type_name!r}")
            continue
        name = f"F{index}"
        namespace[name] = field
        _target(field)
        at = f"_tuple(Path, (path, {key}, {type_name!r}))"  # this field's path
        generic = [
            f"value = run.execute_field({name}, source, {at})",
            f"results[{key}] = value",
            f"if is_awaitable(value): pending.append({key})",
        ]
        fetch = _fetch(field, index, namespace)
        if field.how == _DIRECT and field.is_async:
            body = [
                f"value = run._resolved_async({name}, source, {at})",
                f"results[{key}] = value",
                f"pending.append({key})",
            ]
        elif fetch is None:
            body = generic
        elif field.leaf_type is not None:
            body = _leaf_lines(field, index, key, type_name, fetch, namespace)
        else:
            body = _value_lines(field, index, key, type_name, fetch, namespace)
        # A rule shut to the viewer (``Run.closes``): the value is the denial, kept
        # at once, without the resolver's arguments and info made first (for a
        # resolver, once its arguments are known to convert: static ones).
        deny = [
            f"run.deny({name}, {at}, decision)",
            f"results[{key}] = None",
        ]
        if body is not generic and field.rule is not None and field.how != _DIRECT:
            namespace[f"R{index}"] = field.rule
            lines.append(f"        if opened(R{index}) or opens(R{index}):")
            lines.extend(f"            {line}" for line in body)
            lines.append(f"        elif (decision := closes(R{index})) is not None:")
            lines.extend(f"            {line}" for line in deny)
            lines.append("        else:")
            lines.extend(f"            {line}" for line in generic)
        elif fetch is not None and field.rule is not None:  # a resolver called in line
            converts = f" and {name}.static_arguments is not None" if field.has_arguments else ""
            lines.append(
                f"        if not opened(R{index}){converts}"
                f" and (decision := closes(R{index})) is not None:"
            )
            lines.extend(f"            {line}" for line in deny)
            lines.append("        else:")
            lines.extend(f"            {line}" for line in body)
        else:
            lines.extend(f"        {line}" for line in body)
    # Only the names the fields use are bound, each a lookup every call would pay.
    used = "\n".join(lines[head:])
    lines[head - 3 : head] = [
        line for line in lines[head - 3 : head] if f"{line.split()[0]}(" in used
    ]
    lines += [
        "    except Exception:",
        "        _settle([results[key] for key in pending])",
        "        raise",
        "    if not pending:",
        "        return results",
        "    return _await_pending(results, pending)",
    ]
    # The text holds the schema's names and the document's response keys, each key
    # written as a Python literal (``repr``); everything else is a name in ``namespace``.
    exec(_compiled("\n".join(lines), type_name), namespace)
    execute: Callable[[Run, Any, Path | None], Any] = namespace["execute"]
    return execute


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, type_name: str) -> CodeType:
    """An executor's text compiled, once for every selection written the same (the
    same fields of a type under the same keys, in any document or under any alias)."""
    return compile(text, f"<plan {type_name}>", "exec")


def _fetch(field: FieldPlan, index: int, namespace: dict[str, Any]) -> list[str] | None:
    """The lines that set ``result`` to a field's value off ``source`` (at ``p`` when
    they need its path): an attribute read, a method called, or a synchronous resolver
    called as ``Run._call`` calls it. None for a field resolved otherwise."""
    if field.how == _ATTRIBUTE:
        name = field.python_name
        if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__"):
            return [f"result = source.{name}"]
        return [f"result = getattr(source, {name!r})"]
    if field.how == _METHOD:
        namespace[f"C{index}"] = field.call
        return [f"result = C{index}(source)"]
    if field.how != _DIRECT or field.is_async or not field.lazy_info:
        return None
    namespace[f"C{index}"] = field.call
    namespace["_ResolverInfo"] = _ResolverInfo
    lines = [f"info = _ResolverInfo(run, F{index}, p)"]
    if field.has_arguments:
        lines.append(f"kwargs = run._converted(F{index}, info)")
        call = [f"kwargs[{name!r}] = source" for name in field.source_names]
        if field.info_name is not None:
            call.append(f"kwargs[{field.info_name!r}] = info")
        call.append(
            f"result = C{index}(source, **kwargs)"
            if field.passes_self
            else f"result = C{index}(**kwargs)"
        )
    else:
        # No argument: nothing to convert, the parameters passed by name in the call.
        namespace["_NO_ARGUMENTS"] = _NO_ARGUMENTS
        lines.append("kwargs = _NO_ARGUMENTS")
        passed = [f"{name}=source" for name in field.source_names]
        if field.info_name is not None:
            passed.append(f"{field.info_name}=info")
        given = ", ".join((["source"] if field.passes_self else []) + passed)
        call = [f"result = C{index}({given})"]
    if field.rule is None:
        return lines + call
    # A denial is kept by ``Run._allowed`` without being raised; the value is then null
    # (a non-null field's denial is raised, as the resolver's own check would be).
    namespace[f"R{index}"] = field.rule
    return [
        *lines,
        f"if opened(R{index}) or opens(R{index}) or run._allowed(F{index}, source, kwargs, p):",
        *(f"    {line}" for line in call),
        "else:",
        "    result = None",
    ]


def _leaf_lines(
    field: FieldPlan,
    index: int,
    key: str,
    type_name: str,
    fetch: list[str],
    namespace: dict[str, Any],
) -> list[str]:
    """A scalar read off its object: values of the class its type serializes as they
    are, and enum members, in line; anything else through ``Run._leaf``."""
    shortcuts: list[tuple[str, str]] = []
    if field.same is not None:
        namespace[f"S{index}"] = field.same
        shortcuts.append((f"result.__class__ is S{index}", "result"))
    leaf: Completion = field.leaf  # type: ignore[assignment]
    if leaf.type is GraphQLInt:  # ``serialize_int``: an int in 32 bits is itself
        shortcuts.append(
            (
                f"result.__class__ is int and {GRAPHQL_MIN_INT} <= result <= {GRAPHQL_MAX_INT}",
                "result",
            )
        )
    if leaf.enum_class is not None:
        namespace[f"E{index}"] = leaf.enum_class
        namespace[f"N{index}"] = leaf.enum_names
        shortcuts.append((f"result.__class__ is E{index}", f"N{index}[id(result)]"))
    slow = [
        f"value = run._leaf(F{index}, path, {type_name!r}, result)",
        f"results[{key}] = value",
        f"if is_awaitable(value): pending.append({key})",
    ]
    branches: list[str] = []
    for number, (condition, value) in enumerate(shortcuts):
        branches += [
            f"{'elif' if number else 'if'} {condition}:",
            f"    results[{key}] = {value}",
        ]
    if branches:
        branches += ["else:", *(f"    {line}" for line in slow)]
    else:
        branches = slow
    return [
        "try:",
        *(f"    {line}" for line in fetch),
        "except Exception as raw:",
        f"    run.field_error(raw, F{index}.completion, F{index}.nodes,"
        f" _tuple(Path, (path, {key}, {type_name!r})))",
        f"    results[{key}] = None",
        "else:",
        *(f"    {line}" for line in branches),
    ]


def _value_lines(
    field: FieldPlan,
    index: int,
    key: str,
    type_name: str,
    fetch: list[str],
    namespace: dict[str, Any],
) -> list[str]:
    """Any other field read or called: a value of its object type (or a list of them)
    straight to the executor of its selection, anything else through
    ``Run._completed``."""
    name = f"F{index}"
    fast: list[str] = []
    target = field.target
    if target is not None:
        origin, type_of, child = target
        if field.many:
            call = f"run.complete_list({name}, {name}.listed, p, result, None, {name}.target)"
            made, check = "list", "result.__class__ is list"
        else:
            namespace[f"O{index}"] = origin
            namespace[f"X{index}"] = child
            call, made, check = f"X{index}(run, result, p)", "dict", f"result.__class__ is O{index}"
            if type_of is not None:
                namespace[f"IT{index}"] = type_of
                check += f" and IT{index}(result, None)"
        fast = [
            f"if {check}:",
            "    try:",
            f"        value = {call}",
            "    except Exception as raw:",
            f"        run.field_error(raw, {name}.completion, {name}.nodes, p)",
            "        value = None",
            "    else:",
            f"        if value.__class__ is not {made}:",
            f"            value = run._await_completed({name}, {name}.completion, p, value)",
        ]
    if field.completion.kind != _NON_NULL:  # type: ignore[union-attr]
        # A null (a resolver's "none here", or a denial kept) completes as itself.
        fast += [f"{'el' if fast else ''}if result is None:", "    value = None"]
    return [
        f"p = _tuple(Path, (path, {key}, {type_name!r}))",
        "try:",
        *(f"    {line}" for line in fetch),
        "except Exception as raw:",
        f"    run.field_error(raw, {name}.completion, {name}.nodes, p)",
        "    value = None",
        "else:",
        *(f"    {line}" for line in fast),
        *(["    else:"] if fast else []),
        f"    {'    ' if fast else ''}value = run._completed({name}, p, result)",
        f"results[{key}] = value",
        "if value.__class__ is not dict and value is not None and is_awaitable(value):",
        f"    pending.append({key})",
    ]


def _target(field: FieldPlan) -> None:
    """Set ``field.target`` (and ``many``, ``listed``) when its values are of one object
    type whose ``is_type_of`` is absent or Strawberry's, or lists of them, the list and
    its items possibly non-null."""
    completion: Any = field.completion
    if completion.kind == _NON_NULL:
        completion = completion.of
    many = completion.kind == _LIST
    listed = completion
    if many:
        completion = completion.of
        if completion.kind == _NON_NULL:
            completion = completion.of
    if completion.kind != _OBJECT:
        return
    type_: Any = completion.type
    definition = type_.extensions.get("strawberry-definition")
    origin = getattr(definition, "origin", None)
    if not isinstance(origin, type):
        return
    type_of = type_.is_type_of
    if type_of is not None and not _ignores_info(type_):
        return
    field.many = many
    field.listed = listed if many else None
    field.target = (origin, type_of, field.selection.executor(type_))
