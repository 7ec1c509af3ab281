"""Reading the CloudFormation template the way CloudFormation does, for what finbatch checks.

Three pure steps, used to prove that the template's job definitions are the ones
:mod:`cluster.batch.jobdef` builds, and to create the template's resources through the AWS APIs
in the tests:

1. :func:`load_template` parses the YAML with CloudFormation's short-form tags (``!Ref``,
   ``!Sub``, ``!GetAtt`` ...) into their long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``).
2. :func:`resolve` evaluates the intrinsic functions with given parameter values and resource
   attributes (``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, ``Fn::Select``, ``Fn::Join``,
   ``Fn::Split``, ``Fn::Base64``, ``Fn::If`` and the condition functions; ``AWS::NoValue``
   removes a key). :func:`present` tells which resources the conditions create.
3. :func:`to_request` turns resolved properties (PascalCase) into an API request (the
   operation's own member names, found case-insensitively in botocore's service model), and
   casts values to the member types as CloudFormation does (a ``Number`` parameter arrives as a
   string). A property the operation does not know is an error: it names the path.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "templates" / "finbatch.yaml"
NO_VALUE = "AWS::NoValue"
_TAGS = (
    "Ref",
    "Condition",
    "Sub",
    "GetAtt",
    "Select",
    "Join",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "GetAZs",
    "ImportValue",
    "Cidr",
)
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")
#: What ``{"Ref": "AWS::NoValue"}`` resolves to: the key or item holding it is removed.
_NoValue = object()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short-form tags."""


def _long_form(tag: str) -> Any:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":  # !GetAtt Resource.Attribute
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag in _TAGS:
    _Loader.add_constructor(f"!{_tag}", _long_form(_tag))


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as a dict, intrinsic functions in their long form."""
    with open(path, encoding="utf-8") as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_Loader)
    return template


@dataclass(frozen=True)
class Context:
    """What the intrinsic functions refer to.

    ``parameters`` holds every template parameter and the pseudo parameters (``AWS::Region``,
    ``AWS::AccountId``, ``AWS::Partition``, ``AWS::StackName``); ``resources`` holds, per
    logical id, ``{"Ref": ..., attribute: ...}`` of the resources created so far.
    """

    parameters: Mapping[str, Any]
    resources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    conditions: Mapping[str, Any] = field(default_factory=dict)


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter's value: ``given``, else the template's default; lists are split."""
    values: dict[str, Any] = {}
    for name, declared in template.get("Parameters", {}).items():
        if name in given:
            value: Any = given[name]
        elif "Default" in declared:
            value = declared["Default"]
        else:
            raise KeyError(f"template parameter {name} has no default: give a value")
        value = str(value) if not isinstance(value, list) else value
        if declared["Type"] == "CommaDelimitedList" or declared["Type"].startswith("List<"):
            value = value if isinstance(value, list) else [v.strip() for v in value.split(",")]
        values[name] = value
    unknown = set(given) - set(values)
    if unknown:
        raise KeyError(f"not parameters of the template: {', '.join(sorted(unknown))}")
    return values


def _ref(name: str, ctx: Context) -> Any:
    if name in ctx.parameters:
        return ctx.parameters[name]
    if name in ctx.resources:
        return ctx.resources[name]["Ref"]
    raise KeyError(f"Ref {name}: neither a parameter nor a resource created so far")


def _get_att(resource: str, attribute: str, ctx: Context) -> Any:
    try:
        return ctx.resources[resource][attribute]
    except KeyError:
        raise KeyError(f"GetAtt {resource}.{attribute}: not known yet") from None


def _sub(text: str, variables: Mapping[str, Any], ctx: Context) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):  # ${!Literal} is the text ${Literal}
            return "${" + name[1:] + "}"
        if name in variables:
            return str(variables[name])
        resource, _, attribute = name.partition(".")
        if attribute and resource in ctx.resources:
            return str(_get_att(resource, attribute, ctx))
        return str(_ref(name, ctx))

    return _SUB_VARIABLE.sub(value, text)


def _function(name: str, args: Any, ctx: Context) -> Any:
    if name == "Ref":
        return _ref(args, ctx)
    if name == "Condition":
        return bool(ctx.conditions[args])
    if name == "Fn::GetAtt":
        return _get_att(args[0], args[1], ctx)
    if name == "Fn::Sub":
        text, variables = (args, {}) if isinstance(args, str) else args
        return _sub(text, resolve(variables, ctx), ctx)
    if name == "Fn::If":
        condition, then, otherwise = args
        return resolve(then if ctx.conditions[condition] else otherwise, ctx)
    values = resolve(args, ctx)
    if name == "Fn::Select":
        return values[1][int(values[0])]
    if name == "Fn::Join":
        return str(values[0]).join(str(v) for v in values[1])
    if name == "Fn::Split":
        return str(values[1]).split(values[0])
    if name == "Fn::Base64":
        return base64.b64encode(str(values).encode()).decode()
    if name == "Fn::Equals":
        return str(values[0]) == str(values[1])
    if name == "Fn::Not":
        return not values[0]
    if name == "Fn::And":
        return all(values)
    if name == "Fn::Or":
        return any(values)
    raise NotImplementedError(f"intrinsic function {name} is not supported here")


def _is_function(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and len(node) == 1
        and next(iter(node)) in ("Ref", "Condition", *(f"Fn::{t}" for t in _TAGS))
    )


def resolve(node: Any, ctx: Context) -> Any:
    """``node`` with every intrinsic function evaluated; ``AWS::NoValue`` keys and items go."""
    if _is_function(node):
        name, args = next(iter(node.items()))
        if name == "Ref" and args == NO_VALUE:
            return _NoValue
        return _function(name, args, ctx)
    if isinstance(node, dict):
        resolved = {key: resolve(value, ctx) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NoValue}
    if isinstance(node, list):
        return [item for item in (resolve(v, ctx) for v in node) if item is not _NoValue]
    return node


def conditions(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, bool]:
    """The template's conditions evaluated with these parameter values."""
    ctx = Context(parameters)
    return {name: bool(resolve(body, ctx)) for name, body in template.get("Conditions", {}).items()}


def present(template: Mapping[str, Any], conditions: Mapping[str, bool]) -> dict[str, Any]:
    """The template's resources that these conditions create (a resource's ``Condition``)."""
    return {
        name: body
        for name, body in template["Resources"].items()
        if conditions.get(body.get("Condition", ""), True)
    }


def to_request(properties: Any, service: str, operation: str) -> dict[str, Any]:
    """Resolved CloudFormation properties as the ``operation``'s request.

    Raises
    ------
    KeyError
        A property that the operation's input has no member for (its path is named).
    """
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    request: dict[str, Any] = _cast(properties, shape, operation)
    return request


def _cast(value: Any, shape: Any, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        members = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            member = members.get(key.lower())
            if member is None:
                raise KeyError(f"{path}.{key}: {shape.name} has no such member")
            out[member] = _cast(item, shape.members[member], f"{path}.{key}")
        return out
    if kind == "list":
        return [_cast(item, shape.member, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        return {str(k): _cast(v, shape.value, f"{path}.{k}") for k, v in value.items()}
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("double", "float"):
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "string":
        return str(value)
    return value
