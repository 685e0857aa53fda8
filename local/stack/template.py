"""Reading template.yaml: the functions, their routes, environments and event sources, and the tables.

Intrinsic functions are resolved against a local context: `!Ref` of a parameter gives its local override or
Default, `!Ref` of a table gives the local table name (its `TableName` or the logical id), `!GetAtt Table.StreamArn`
and `.Arn` give moto's ARNs when known, `!Sub` combines those, and a few condition functions (`!If`, `!Equals`,
`!Not`, `!And`, `!Or`) plus `!Join`, `!Select`, `!Split` are evaluated. Anything else resolves to None, which drops
the value (a local stand-in can then be supplied by an override).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PSEUDO = {
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "local",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/local/00000000-0000-0000-0000-000000000000",
}
NO_VALUE = object()  # `!Ref AWS::NoValue`: the property is left out, on purpose
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")


class TemplateError(ValueError):
    """The template cannot be served locally (the message names the resource)."""


@dataclass(frozen=True)
class Intrinsic:
    """A `!Tag value` (or `{"Fn::X": value}`) as read from YAML, resolved later."""

    name: str
    value: Any


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that keeps CloudFormation short-form tags as `Intrinsic` values."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Intrinsic:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Intrinsic(name, value)


_Loader.add_multi_constructor("!", _construct)


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: not a template (no mapping at the top)")
    return data


@dataclass(frozen=True)
class Route:
    method: str  # upper-case, or ANY
    path: str  # as declared, e.g. /users/{third_party_user_id}
    function: str  # logical id
    auth: str  # AWS_IAM, NONE, or an authorizer name
    event: str  # the event's logical name

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Schedule:
    function: str
    event: str
    expression: str
    input: str | None
    kind: str  # "ScheduleV2" or "Schedule"
    name: str | None


@dataclass(frozen=True)
class StreamSource:
    function: str
    event: str
    table: str | None  # logical id of the table whose stream it reads
    stream_arn: Any
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int
    report_batch_item_failures: bool
    filters: tuple[str, ...]


@dataclass(frozen=True)
class RuleSource:
    function: str
    event: str
    pattern: dict[str, Any]
    bus: str | None  # None = the default bus
    input: str | None


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source mapping: the function is invoked with batches of the queue's messages."""

    function: str
    event: str
    queue: str | None  # logical id of the AWS::SQS::Queue
    batch_size: int
    maximum_concurrency: int | None
    report_batch_item_failures: bool


@dataclass(frozen=True)
class QueueRule:
    """An AWS::Events::Rule resource whose target is one of the template's queues."""

    logical_id: str
    pattern: dict[str, Any]
    bus: str | None
    queue: str  # logical id of the target AWS::SQS::Queue


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    properties: dict[str, Any]  # resolved


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layers: tuple[Path, ...]


@dataclass
class Template:
    path: Path
    parameters: dict[str, Any]
    functions: dict[str, Function] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)
    streams: list[StreamSource] = field(default_factory=list)
    rules: list[RuleSource] = field(default_factory=list)
    buses: dict[str, str] = field(default_factory=dict)  # logical id -> bus name
    buckets: dict[str, str] = field(default_factory=dict)  # logical id -> bucket name (moto's S3)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> resolved properties
    queue_sources: list[QueueSource] = field(default_factory=list)
    queue_rules: list[QueueRule] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # "Function.VAR" that resolved to nothing


def _present(value: Any) -> bool:
    return value is not None and value is not NO_VALUE


class Resolver:
    """Evaluates intrinsic functions for the local stack."""

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        refs: Mapping[str, Any],
        attributes: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.template = template
        self.parameters = parameters
        self.refs = refs
        self.attributes = attributes or (lambda _logical, _attribute: None)
        self.conditions: dict[str, bool] = {}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        return None

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            definition = (self.template.get("Conditions") or {}).get(name)
            self.conditions[name] = bool(self.resolve(definition)) if definition is not None else False
        return self.conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Intrinsic):
            return self._intrinsic(value.name, value.value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, inner),) = value.items()
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    return self._intrinsic(key, inner)
            resolved = {key: self.resolve(inner) for key, inner in value.items()}
            return {key: inner for key, inner in resolved.items() if _present(inner)}
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if _present(item)]
        return value

    def _intrinsic(self, name: str, value: Any) -> Any:
        if name == "Ref":
            return self.ref(str(self.resolve(value)))
        if name == "Condition":
            return self.condition(str(value))
        if name == "Fn::GetAtt":
            parts = value if isinstance(value, list) else str(value).split(".", 1)
            return self.attributes(str(parts[0]), str(parts[1]))
        if name == "Fn::Sub":
            return self._sub(value)
        if name == "Fn::If":
            condition, when_true, when_false = value
            return self.resolve(when_true if self.condition(str(condition)) else when_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(item) for item in value)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(value[0])
        if name == "Fn::And":
            return all(self.resolve(item) for item in value)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in value)
        if name == "Fn::Join":
            separator, items = value
            items = self.resolve(items)
            return None if items is None else str(separator).join(str(item) for item in items)
        if name == "Fn::Select":
            index, items = value
            items = self.resolve(items)
            return None if not items else items[int(self.resolve(index))]
        if name == "Fn::Split":
            separator, text = value
            text = self.resolve(text)
            return None if text is None else str(text).split(str(separator))
        if name == "Fn::ToJsonString":
            import json

            return json.dumps(self.resolve(value))
        return None

    def _sub(self, value: Any) -> str | None:
        if isinstance(value, list):
            text, variables = str(value[0]), {key: self.resolve(item) for key, item in value[1].items()}
        else:
            text, variables = str(value), {}
        missing: list[str] = []

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                result = variables[expression]
            elif "." in expression and expression not in PSEUDO:
                logical, attribute = expression.split(".", 1)
                result = self.attributes(logical, attribute)
            else:
                result = self.ref(expression)
            if result is None:
                missing.append(expression)
                return ""
            return str(result)

        text = re.sub(r"\$\{([^}]+)\}", replace, text)
        return None if missing else text


def parameter_value(spec: Mapping[str, Any], value: Any) -> Any:
    """A parameter's value as CloudFormation hands it to intrinsics: a CommaDelimitedList is a list."""
    if isinstance(spec, Mapping) and spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    return value


def load(
    path: Path,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    table_names: Mapping[str, str] | None = None,
    attributes: Callable[[str, str], Any] | None = None,
    resource_refs: Mapping[str, str] | None = None,
) -> Template:
    """Read the template and resolve what the local stack needs from it.

    `resource_refs` gives `!Ref` of other resources their local value (e.g. a queue's URL).
    """
    path = path.resolve()
    raw = load_yaml(path)
    resources: dict[str, Any] = raw.get("Resources") or {}
    overrides = dict(parameter_overrides or {})
    parameters: dict[str, Any] = {}
    for name, spec in (raw.get("Parameters") or {}).items():
        if name in overrides:
            parameters[name] = parameter_value(spec, overrides[name])
        elif isinstance(spec, dict) and "Default" in spec:
            parameters[name] = parameter_value(spec, spec["Default"])

    refs: dict[str, Any] = {}
    early = Resolver(raw, parameters, refs)
    tables: dict[str, Table] = {}
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        if resource.get("Condition") and not early.condition(str(resource["Condition"])):
            continue
        local_name = (table_names or {}).get(logical)
        properties = early.resolve(resource.get("Properties") or {})
        name = local_name or str(properties.get("TableName") or logical)
        refs[logical] = name
        tables[logical] = Table(logical, name, properties)

    buses: dict[str, str] = {}
    for logical, resource in resources.items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Events::EventBus":
            properties = early.resolve(resource.get("Properties") or {})
            buses[logical] = str(properties.get("Name") or logical)
            refs[logical] = buses[logical]

    buckets: dict[str, str] = {}
    keys: set[str] = set()
    for logical, resource in resources.items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::S3::Bucket":
            properties = early.resolve(resource.get("Properties") or {})
            buckets[logical] = str(properties.get("BucketName") or f"local-{logical.lower()}")  # S3: lower case
            refs[logical] = buckets[logical]
        elif isinstance(resource, dict) and resource.get("Type") == "AWS::KMS::Key":
            keys.add(logical)

    def attribute(logical: str, name: str) -> Any:
        if attributes is not None:
            found = attributes(logical, name)
            if found is not None:
                return found
        if logical in tables and name == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{tables[logical].name}"
        if logical in buses and name in ("Arn", "Name"):
            return (
                buses[logical] if name == "Name" else f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{buses[logical]}"
            )
        if logical in buckets and name == "Arn":
            return f"arn:aws:s3:::{buckets[logical]}"
        if logical in keys and name == "Arn":  # moto's S3 takes a key id without checking it exists
            return f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{logical}"
        return None

    resolver = Resolver(raw, parameters, refs, attribute)
    refs.update(resource_refs or {})
    # Remaining resources: Ref gives something recognisable (their logical id) so !Sub strings still resolve.
    for logical, resource in resources.items():
        refs.setdefault(logical, logical)
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            refs[logical] = logical

    template = Template(path=path, parameters=parameters, tables=tables, buses=buses, buckets=buckets)
    _read_queues(template, resources, resolver)
    globals_function: dict[str, Any] = ((raw.get("Globals") or {}).get("Function")) or {}
    globals_api: dict[str, Any] = ((raw.get("Globals") or {}).get("HttpApi")) or {}
    apis = _http_apis(resources, resolver, globals_api)
    base = path.parent

    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        if resource.get("Condition") and not resolver.condition(str(resource["Condition"])):
            continue
        properties = resource.get("Properties") or {}
        merged = {**globals_function, **properties}
        environment: dict[str, str] = {}
        for source in (globals_function, properties):
            variables = ((source.get("Environment") or {}).get("Variables")) or {}
            for name, value in variables.items():
                resolved = resolver.resolve(value)
                if resolved is NO_VALUE:
                    environment.pop(name, None)
                elif resolved is None:
                    template.unresolved.append(f"{logical}.{name}")
                    environment.pop(name, None)
                else:
                    environment[name] = _text(resolved)
        code_uri = resolver.resolve(merged.get("CodeUri"))
        handler = resolver.resolve(merged.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            raise TemplateError(f"{logical}: CodeUri and Handler must be local paths/strings to run locally")
        layers = tuple(
            _layer_path(resources, resolver, layer, base)
            for layer in (resolver.resolve(merged.get("Layers")) or [])
            if _layer_path(resources, resolver, layer, base) is not None
        )
        template.functions[logical] = Function(
            logical_id=logical,
            code_uri=(base / code_uri).resolve(),
            handler=handler,
            runtime=str(resolver.resolve(merged.get("Runtime")) or "python3.13"),
            timeout=int(resolver.resolve(merged.get("Timeout")) or 3),
            memory=int(resolver.resolve(merged.get("MemorySize")) or 128),
            environment=environment,
            layers=layers,  # type: ignore[arg-type]
        )
        for event_name, event in (properties.get("Events") or {}).items():
            _read_event(template, resolver, apis, logical, event_name, event)
    template.routes.sort(key=route_priority)
    return template


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    return str(value)


def _layer_path(resources: Mapping[str, Any], resolver: Resolver, layer: Any, base: Path) -> Path | None:
    """A layer given as the logical id of an AWS::Serverless::LayerVersion in this template -> its content folder."""
    logical = layer if isinstance(layer, str) else None
    resource = resources.get(logical or "")
    if not isinstance(resource, dict) or resource.get("Type") not in (
        "AWS::Serverless::LayerVersion",
        "AWS::Lambda::LayerVersion",
    ):
        return None
    properties = resource.get("Properties") or {}
    content = resolver.resolve(properties.get("ContentUri") or properties.get("Content"))
    return (base / content).resolve() if isinstance(content, str) else None


def _http_apis(resources: Mapping[str, Any], resolver: Resolver, globals_api: Mapping[str, Any]) -> dict[str, str]:
    """HttpApi logical id -> its default authorizer ("NONE" when there is none)."""
    apis: dict[str, str] = {}
    for logical, resource in resources.items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::HttpApi":
            properties = {**globals_api, **(resource.get("Properties") or {})}
            auth = resolver.resolve(properties.get("Auth")) or {}
            apis[logical] = str(auth.get("DefaultAuthorizer") or "NONE")
    return apis


def _read_event(
    template: Template,
    resolver: Resolver,
    apis: Mapping[str, str],
    function: str,
    name: str,
    event: Mapping[str, Any],
) -> None:
    kind = event.get("Type")
    properties = event.get("Properties") or {}
    if kind == "HttpApi":
        api_id = properties.get("ApiId")
        api = (
            api_id.value
            if isinstance(api_id, Intrinsic) and api_id.name == "Ref"
            else (api_id.get("Ref") if isinstance(api_id, dict) else None)
        )
        default_auth = apis.get(str(api), "NONE") if api else "NONE"
        auth = resolver.resolve(properties.get("Auth")) or {}
        path = resolver.resolve(properties.get("Path"))
        method = str(resolver.resolve(properties.get("Method")) or "ANY").upper()
        if path is None:  # SAM: an HttpApi event without Path/Method is the $default route
            template.routes.append(
                Route("ANY", "$default", function, str(auth.get("Authorizer") or default_auth), name)
            )
            return
        if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
            method = "ANY"
        if method not in HTTP_METHODS:
            raise TemplateError(f"{function}.{name}: unsupported method {method}")
        template.routes.append(Route(method, str(path), function, str(auth.get("Authorizer") or default_auth), name))
    elif kind in ("ScheduleV2", "Schedule"):
        resolved = resolver.resolve(properties)
        state = resolved.get("State")
        if resolved.get("Enabled") is False or state == "DISABLED":
            return
        template.schedules.append(
            Schedule(
                function,
                name,
                str(resolved.get("ScheduleExpression") or resolved.get("Schedule") or ""),
                resolved.get("Input"),
                str(kind),
                resolved.get("Name"),
            )
        )
    elif kind == "DynamoDB":
        stream = properties.get("Stream")
        table = None
        if isinstance(stream, Intrinsic) and stream.name == "Fn::GetAtt":
            parts = stream.value if isinstance(stream.value, list) else str(stream.value).split(".", 1)
            table = str(parts[0])
        elif isinstance(stream, dict) and "Fn::GetAtt" in stream:
            parts = stream["Fn::GetAtt"]
            table = str(parts[0] if isinstance(parts, list) else str(parts).split(".", 1)[0])
        resolved = resolver.resolve(properties)
        filters = tuple(
            str(item.get("Pattern"))
            for item in ((resolved.get("FilterCriteria") or {}).get("Filters") or [])
            if item.get("Pattern")
        )
        template.streams.append(
            StreamSource(
                function=function,
                event=name,
                table=table,
                stream_arn=resolved.get("Stream"),
                batch_size=int(resolved.get("BatchSize") or 100),
                starting_position=str(resolved.get("StartingPosition") or "LATEST"),
                maximum_retry_attempts=int(resolved.get("MaximumRetryAttempts", -1)),
                report_batch_item_failures="ReportBatchItemFailures" in (resolved.get("FunctionResponseTypes") or []),
                filters=filters,
            )
        )
    elif kind == "SQS":
        resolved = resolver.resolve(properties)
        scaling = resolved.get("ScalingConfig") or {}
        template.queue_sources.append(
            QueueSource(
                function=function,
                event=name,
                queue=_logical_of(properties.get("Queue")),
                batch_size=int(resolved.get("BatchSize") or 10),
                maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
                report_batch_item_failures="ReportBatchItemFailures" in (resolved.get("FunctionResponseTypes") or []),
            )
        )
    elif kind in ("EventBridgeRule", "CloudWatchEvent"):
        resolved = resolver.resolve(properties)
        bus = resolved.get("EventBusName")
        template.rules.append(
            RuleSource(
                function, name, dict(resolved.get("Pattern") or {}), str(bus) if bus else None, resolved.get("Input")
            )
        )


def _logical_of(value: Any) -> str | None:
    """`!GetAtt X.Arn` (short or long form) or `!Ref X` -> X."""
    if isinstance(value, Intrinsic) and value.name in ("Fn::GetAtt", "Ref"):
        parts = value.value if isinstance(value.value, list) else str(value.value).split(".", 1)
        return str(parts[0])
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key in ("Fn::GetAtt", "Ref"):
            parts = inner if isinstance(inner, list) else str(inner).split(".", 1)
            return str(parts[0])
    return None


def _read_queues(template: Template, resources: Mapping[str, Any], resolver: Resolver) -> None:
    """The template's SQS queues and the EventBridge rules (resources, not function events) that feed them."""
    for logical, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        if resource.get("Condition") and not resolver.condition(str(resource["Condition"])):
            continue
        if resource.get("Type") == "AWS::SQS::Queue":
            raw = resource.get("Properties") or {}
            properties = dict(resolver.resolve(raw))
            target = _logical_of((raw.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
            redrive = properties.get("RedrivePolicy")
            if (
                target
                and isinstance(redrive, dict)
                and not str(redrive.get("deadLetterTargetArn", "")).startswith("arn:")
            ):
                redrive["deadLetterTargetArn"] = target  # a queue of this template: its local ARN once created
            template.queues[logical] = properties
    for logical, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resource.get("Properties") or {}
        pattern = resolver.resolve(properties.get("EventPattern"))
        bus = resolver.resolve(properties.get("EventBusName"))
        for target in properties.get("Targets") or []:
            queue = _logical_of(target.get("Arn"))
            if queue in template.queues and isinstance(pattern, dict):
                template.queue_rules.append(QueueRule(logical, dict(pattern), str(bus) if bus else None, queue))


_GREEDY = re.compile(r"\{[^}]+\+\}$")


def route_priority(route: Route) -> tuple[int, int, int]:
    """API Gateway picks the most specific route: exact paths, then parameters, then greedy; methods before ANY."""
    if route.path == "$default":
        return (3, 0, 0)
    parts = [part for part in route.path.split("/") if part]
    category = 2 if _GREEDY.search(route.path) else (1 if "{" in route.path else 0)
    literal = sum(1 for part in parts if not part.startswith("{"))
    return (category, -literal, 1 if route.method == "ANY" else 0)


def match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would choose for `method path`, with the path parameters (raw, not yet decoded)."""
    method = method.upper()
    segments = path.split("/")
    best: tuple[tuple[int, int, int], Route, dict[str, str]] | None = None
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        found = {} if route.path == "$default" else _match_path(route.path.split("/"), segments)
        if found is None:
            continue
        key = route_priority(route)
        if best is None or key < best[0]:
            best = (key, route, found)
    return None if best is None else (best[1], best[2])


def _match_path(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for index, part in enumerate(pattern):
        if part.startswith("{") and part.endswith("+}"):
            rest = "/".join(segments[index:])
            if not rest:
                return None
            found[part[1:-2]] = rest
            return found
        if index >= len(segments):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not segments[index]:
                return None
            found[part[1:-1]] = segments[index]
        elif part != segments[index]:
            return None
    return found if len(segments) == len(pattern) else None


def describe(template: Template) -> list[str]:
    """What the local stack would serve from `template`, one line each."""
    lines = [f"{route.method:<6} {route.path:<44} -> {route.function} (auth {route.auth})" for route in template.routes]
    for table in template.tables.values():
        indexes = [index["IndexName"] for index in table.properties.get("GlobalSecondaryIndexes", [])]
        stream = (table.properties.get("StreamSpecification") or {}).get("StreamViewType", "no stream")
        lines.append(f"table  {table.name} (indexes: {', '.join(indexes) or 'none'}; {stream})")
    lines.extend(f"schedule {item.expression} -> {item.function}" for item in template.schedules)
    lines.extend(f"stream {item.table} -> {item.function}" for item in template.streams)
    lines.extend(f"rule   {item.pattern} on {item.bus or 'default'} -> {item.function}" for item in template.rules)
    lines.extend(f"queue  {item.queue} -> {item.function} (batch {item.batch_size})" for item in template.queue_sources)
    lines.extend(
        f"rule   {item.pattern} on {item.bus or 'default'} -> queue {item.queue}" for item in template.queue_rules
    )
    return lines


if __name__ == "__main__":
    import sys

    for line in describe(load(Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))):
        print(line)
