"""``dashboards/``: the compose file, Grafana's provisioning and the dashboard agree, and every
query asks for spans the runtime really emits.

PyYAML is not a dependency, so the YAML files are read by :func:`read_yaml`, a reader for the
small block-style subset they are written in (mappings, lists, plain or quoted scalars). It
rejects anything else, so a file that outgrows the subset fails here instead of being misread.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pflow_trace import api
from pflow_trace.api import TraceOptions
from pflow_trace.cli.run import EXIT_BY_STATUS
from pflow_trace.observe import conventions as conv
from pflow_trace.observe.export_settings import (
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    DEFAULT_SERVICE_NAME,
    resolve_export_settings,
)

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
COMPOSE = DASHBOARDS / "docker-compose.yml"
DATASOURCES = DASHBOARDS / "grafana" / "provisioning" / "datasources" / "jaeger.yml"
PROVIDERS = DASHBOARDS / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = DASHBOARDS / "grafana" / "dashboards" / "pflow-trace-runs.json"
README = DASHBOARDS / "README.md"

#: Tags Jaeger derives from the span status when it ingests OTLP (not attributes we set).
JAEGER_STATUS_TAGS = {"error": {"true"}}
#: What the issue asks the dashboard to show.
REQUIRED_PANELS = (
    "Recent runs by workflow",
    "Slowest nodes",
    "Batch item durations",
    "Failed items",
)
_JAEGER_DURATION = re.compile(r"\d+(\.\d+)?(ns|us|µs|ms|s|m|h)")


# -- a reader for the YAML subset the files use --------------------------------------------------

_KEY = re.compile(r"([A-Za-z0-9_.\-/]+):(?:\s+(.*))?$")


def _strip_comment(line: str) -> str:
    quote = None
    for position, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1] in " \t"):
            return line[:position].rstrip()
    return line.rstrip()


def _scalar(text: str) -> Any:
    if text[:1] in "\"'":
        if len(text) < 2 or text[-1] != text[0]:
            raise ValueError(f"unterminated quoted scalar: {text}")
        return text[1:-1]
    if text[:1] in "[{|>&*!":
        raise ValueError(f"outside the YAML subset this reader knows: {text}")
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def read_yaml(path: Path) -> Any:
    lines: list[tuple[int, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"{path}: tab indentation")
        content = _strip_comment(raw)
        if content.strip():
            lines.append((len(content) - len(content.lstrip()), content.strip()))
    value, position = _block(lines, 0)
    if position != len(lines):
        raise ValueError(f"{path}: cannot read line {lines[position][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], position: int) -> tuple[Any, int]:
    indent, content = lines[position]
    if content == "-" or content.startswith("- "):
        return _sequence(lines, position, indent)
    return _mapping(lines, position, indent)


def _mapping(lines: list[tuple[int, str]], position: int, indent: int) -> tuple[Any, int]:
    result: dict[str, Any] = {}
    while position < len(lines) and lines[position][0] == indent:
        match = _KEY.match(lines[position][1])
        if match is None:
            break
        key, rest = match.group(1), match.group(2)
        position += 1
        if rest:
            result[key] = _scalar(rest)
        elif position < len(lines) and (
            lines[position][0] > indent
            or (lines[position][0] == indent and lines[position][1].startswith("- "))
        ):
            result[key], position = _block(lines, position)
        else:
            result[key] = None
    return result, position


def _sequence(lines: list[tuple[int, str]], position: int, indent: int) -> tuple[Any, int]:
    items: list[Any] = []
    while (
        position < len(lines)
        and lines[position][0] == indent
        and (lines[position][1] == "-" or lines[position][1].startswith("- "))
    ):
        rest = lines[position][1][1:].lstrip()
        if not rest:
            item, position = _block(lines, position + 1)
        elif _KEY.match(rest):
            # "- key: value" opens a mapping whose keys line up with "key".
            child = indent + len(lines[position][1]) - len(rest)
            lines = [*lines[:position], (child, rest), *lines[position + 1 :]]
            item, position = _mapping(lines, position, child)
        else:
            item, position = _scalar(rest), position + 1
        items.append(item)
    return items, position


def test_the_yaml_reader_reads_its_subset_and_refuses_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "sample.yml"
    path.write_text(
        "a: 1  # note\nb:\n  - x\n  - 'y: z'\nc:\n  - name: n\n    on: true\n  - name: m\n"
        'd: "#not a comment"\n',
        encoding="utf-8",
    )
    assert read_yaml(path) == {
        "a": 1,
        "b": ["x", "y: z"],
        "c": [{"name": "n", "on": True}, {"name": "m"}],
        "d": "#not a comment",
    }
    path.write_text("a: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError):
        read_yaml(path)


# -- the files and how they refer to each other ----------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_yaml(COMPOSE)


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (only,) = read_yaml(DATASOURCES)["datasources"]
    return only


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """``host port → container port`` from compose's short syntax ``"HOST:CONTAINER"``."""
    ports = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        ports[int(host.rsplit(":", 1)[-1])] = int(container.split("/")[0])
    return ports


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """``container path → host path`` (resolved against the compose file's directory)."""
    result = {}
    for entry in service.get("volumes", []):
        host, container = str(entry).split(":")[:2]
        result[container] = (COMPOSE.parent / host).resolve()
    return result


def test_compose_starts_jaeger_with_otlp_and_ui_ports_and_grafana(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"jaeger", "grafana"}
    assert "jaeger" in services["jaeger"]["image"]
    assert "grafana" in services["grafana"]["image"]
    assert published_ports(services["jaeger"]) == {4317: 4317, 4318: 4318, 16686: 16686}
    assert published_ports(services["grafana"]) == {3000: 3000}
    assert services["grafana"]["depends_on"] == ["jaeger"]


def test_the_default_otlp_endpoints_reach_the_published_jaeger_ports(
    compose: dict[str, Any],
) -> None:
    """``run --exporter otlp`` / ``export --to otlp`` without an endpoint land in this Jaeger."""
    jaeger_ports = published_ports(compose["services"]["jaeger"])
    for protocol, default in (
        ("http/protobuf", DEFAULT_HTTP_ENDPOINT),
        ("grpc", DEFAULT_GRPC_ENDPOINT),
    ):
        endpoint = resolve_export_settings("otlp", protocol=protocol, env={}).endpoint
        assert endpoint is not None and endpoint.startswith(default)
        url = urlsplit(endpoint)
        assert url.hostname == "localhost"
        assert url.port in jaeger_ports


def test_grafana_mounts_the_provisioning_and_the_dashboard_directory(
    compose: dict[str, Any],
) -> None:
    grafana = mounts(compose["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == DATASOURCES.parents[1]
    (provider,) = read_yaml(PROVIDERS)["providers"]
    assert provider["type"] == "file"
    dashboards_path = provider["options"]["path"]
    assert grafana[dashboards_path] == DASHBOARD.parent
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert home == f"{dashboards_path}/{DASHBOARD.name}"


def test_the_datasource_points_at_the_jaeger_service_query_port(
    compose: dict[str, Any], datasource: dict[str, Any]
) -> None:
    assert datasource["type"] == "jaeger"
    assert datasource["uid"]
    url = urlsplit(datasource["url"])
    assert url.hostname in compose["services"]
    assert url.hostname == "jaeger"
    assert url.port in published_ports(compose["services"]["jaeger"]).values()
    assert url.port == 16686


def test_every_panel_and_query_uses_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    expected = {"type": "jaeger", "uid": datasource["uid"]}
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]


def test_the_dashboard_has_the_panels_the_readme_describes(dashboard: dict[str, Any]) -> None:
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    assert set(REQUIRED_PANELS) <= set(titles)
    readme = README.read_text(encoding="utf-8")
    for title in titles:
        assert f"| {title} |" in readme.replace("`", ""), title
    for command in (
        "docker compose -f dashboards/docker-compose.yml up",
        "--exporter otlp",
        "--to otlp",
    ):
        assert command in readme
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)


def search_targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        if target.get("queryType") == "search"
    ]


def logfmt(tags: str) -> dict[str, str]:
    pairs = {}
    for token in shlex.split(tags):
        key, separator, value = token.partition("=")
        assert separator, f"not key=value: {token}"
        pairs[key] = value
    return pairs


def test_variables_are_defined_and_default_to_what_the_runtime_uses(
    dashboard: dict[str, Any],
) -> None:
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    text = json.dumps(dashboard["panels"])
    for name in set(re.findall(r"\$(\w+)", text)):
        assert name in variables, f"${name} is used but not defined"
    assert variables["service"]["query"] == DEFAULT_SERVICE_NAME
    for name in ("min_node_duration", "min_item_duration"):
        assert _JAEGER_DURATION.fullmatch(variables[name]["query"])


def test_every_tag_a_query_uses_is_an_attribute_the_runtime_emits(
    dashboard: dict[str, Any],
) -> None:
    targets = search_targets(dashboard)
    assert len(targets) >= len(REQUIRED_PANELS)
    documented = (Path(__file__).resolve().parents[2] / "docs" / "spans.md").read_text("utf-8")
    for title, target in targets:
        assert target["service"] == "$service", title
        tags = logfmt(target["tags"])
        assert tags.get(conv.ATTR_LAYER) in conv.LAYERS, title
        for key, value in tags.items():
            if key in JAEGER_STATUS_TAGS:
                assert value in JAEGER_STATUS_TAGS[key], title
                continue
            assert key in conv.ALL_ATTRIBUTES, f"{title}: {key} is not an attribute we emit"
            assert f"`{key}`" in documented, f"{title}: {key} is not in docs/spans.md"
        if conv.ATTR_FINAL_STATUS in tags:
            assert tags[conv.ATTR_FINAL_STATUS] in EXIT_BY_STATUS, title


# -- the queries find real spans -------------------------------------------------------------------


def _matches(span: ReadableSpan, tags: dict[str, str]) -> bool:
    for key, value in tags.items():
        if key == "error":
            if (span.status.status_code is StatusCode.ERROR) != (value == "true"):
                return False
            continue
        actual = (span.attributes or {}).get(key)
        shown = str(actual).lower() if isinstance(actual, bool) else str(actual)
        if shown != value:
            return False
    return True


def _run_spans(workflow: dict[str, Any]) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    options = TraceOptions(write_trace_file=False, extra_processors=[SimpleSpanProcessor(exporter)])
    api.run(workflow, options=options)
    return list(exporter.get_finished_spans())


def test_every_search_finds_spans_in_real_runs(dashboard: dict[str, Any]) -> None:
    """Each query, as Jaeger applies it to single spans, matches spans of a degraded run (a
    failed item) or of a failed run."""
    degraded = {
        "ir_version": "0.1.0",
        "name": "dash-degraded",
        "nodes": [
            {
                "id": "items",
                "type": "echo",
                "params": {"value": "${item}", "fail_if": 2},
                "batch": {"items": [1, 2, 3], "parallel": True, "error_handling": "continue"},
            }
        ],
    }
    failed = {
        "ir_version": "0.1.0",
        "name": "dash-failed",
        "nodes": [{"id": "boom", "type": "echo", "params": {"fail": True}}],
    }
    spans = _run_spans(degraded) + _run_spans(failed)
    for title, target in search_targets(dashboard):
        tags = logfmt(target["tags"])
        assert any(_matches(span, tags) for span in spans), f"{title}: no span matches {tags}"
