"""Check the files in docker/ without a Docker engine.

    .venv/bin/python scripts/check_docker.py              # static checks, in seconds
    .venv/bin/python scripts/check_docker.py --install    # also the image's pip installs (minutes)

The static checks parse docker/compose.yaml, docker/env.example, docker/Dockerfile, its
.dockerignore and the Kubernetes pod templates, and cross-check them against each other, the
repository, tasks/settings.py and Airflow's configuration reference. ``docker compose config``
and the compose-spec JSON schema run when they are available (see ``compose_cli`` and
``find_compose_schema``). tests/docker/ runs the same functions under pytest.

``--install`` runs the pip steps of the Dockerfile (docker/install-python-deps.sh) in a fresh
venv, on the files that the Dockerfile copies, then imports the stack and checks the CLI
options and settings names that compose.yaml uses against the installed packages. It differs
from an image build in one way: the CPU torch wheel comes from pip's configured indexes
instead of the PyTorch CPU index, which this machine cannot reach.
"""

from __future__ import annotations

import argparse
import ast
import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / "env.example"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"
POD_TEMPLATES = sorted((DOCKER_DIR / "k8s").glob("*.yaml"))
INSTALL_SCRIPT = "docker/install-python-deps.sh"

COMPOSE_TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "secrets", "configs",
                          "include", "models", "version"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# Folder of the repository in the image (WORKDIR of docker/Dockerfile).
IMAGE_PROJECT_DIR = "/opt/social-pulse"
PLUGINS_FILE = REPO / "plugins" / "pulse_airflow.py"
CLI_TIMEOUT_S = 120


# --- Environment files and interpolation --------------------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines as Compose does for --env-file; comments and blank lines skip."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, separator, value = stripped.partition("=")
        key = key.strip()
        if not separator or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path.name} line {number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


# ${NAME}, ${NAME<op>word} with op one of :- - :? ? :+ +, $NAME, and $$ (a literal dollar).
VARIABLE_PATTERN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def variables_in(text: str) -> set[str]:
    """Return the names of the variables that Compose interpolates in ``text``."""
    names = set()
    for match in VARIABLE_PATTERN.finditer(text):
        if match.group("escaped"):
            continue
        names.add(match.group("braced") or match.group("plain"))
    return names


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Substitute variables in ``text`` as Compose does; raise KeyError for a required one."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        operator, word = match.group("operator"), match.group("word") or ""
        value = environment.get(name)
        is_set = value is not None
        is_non_empty = bool(value)
        present = is_non_empty if operator and operator.startswith(":") else is_set
        if operator in (":-", "-"):
            return value if present else word
        if operator in (":?", "?"):
            if not present:
                raise KeyError(f"required variable {name} is missing: {word}")
            return value
        if operator in (":+", "+"):
            return word if present else ""
        return value or ""

    return VARIABLE_PATTERN.sub(substitute, text)


def walk_strings(data: Any) -> Iterator[str]:
    """Yield every string value (not mapping keys) in a parsed YAML tree."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from walk_strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from walk_strings(item)


def interpolate_tree(data: Any, environment: dict[str, str]) -> Any:
    """Return ``data`` with every string value interpolated."""
    if isinstance(data, str):
        return interpolate(data, environment)
    if isinstance(data, dict):
        return {key: interpolate_tree(value, environment) for key, value in data.items()}
    if isinstance(data, list):
        return [interpolate_tree(item, environment) for item in data]
    return data


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """Parse the compose file; YAML anchors and merge keys are resolved."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a YAML mapping")
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as a mapping (the list form KEY=VALUE is converted)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in environment.items()}


# --- Compose checks ----------------------------------------------------------------------

def check_compose_top_level(compose: dict[str, Any]) -> list[str]:
    """Report top-level keys that are neither Compose keys nor x- extensions."""
    return [f"unknown top-level key {key!r}" for key in compose
            if key not in COMPOSE_TOP_LEVEL_KEYS and not str(key).startswith("x-")]


def check_images(compose: dict[str, Any], environment: dict[str, str],
                 compose_dir: Path = DOCKER_DIR) -> list[str]:
    """Check that every service has a build that exists in the repository or a pinned image tag."""
    problems = []
    for name, service in services(compose).items():
        build, image = service.get("build"), service.get("image")
        if build is None and not image:
            problems.append(f"service {name}: neither image nor build")
            continue
        if build is not None:
            problems += _check_build(name, build, compose_dir)
            continue
        reference = interpolate(str(image), environment)
        tag = reference.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in reference and (not tag or tag == "latest"):
            problems.append(f"service {name}: image {reference!r} has no pinned tag")
    return problems


def _check_build(name: str, build: Any, compose_dir: Path) -> list[str]:
    if isinstance(build, str):
        build = {"context": build}
    context = (compose_dir / build.get("context", ".")).resolve()
    if not context.is_dir():
        return [f"service {name}: build context {context} is not a folder"]
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        return [f"service {name}: Dockerfile {dockerfile} not found"]
    declared = dockerfile_arguments(parse_dockerfile(dockerfile))
    args = build.get("args") or {}
    names = [item.partition("=")[0] for item in args] if isinstance(args, list) else list(args)
    return [f"service {name}: build arg {arg} is not an ARG of {dockerfile.name}"
            for arg in names if arg not in declared]


def check_variables_defined(compose: dict[str, Any], defined: dict[str, str]) -> list[str]:
    """Check that every ${VAR} in the compose values is in env.example, and no other variable is.

    Comments are not values, so a variable named only in a comment counts as unused.
    """
    referenced = set()
    for text in walk_strings(compose):
        referenced |= variables_in(text)
    problems = [f"${{{name}}} is used in compose.yaml but not defined in env.example"
                for name in sorted(referenced - set(defined))]
    problems += [f"{name} is defined in env.example but compose.yaml never uses it"
                 for name in sorted(set(defined) - referenced)]
    return problems


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    """Check that depends_on targets exist and can meet their condition, and that there is no cycle."""
    problems = []
    all_services = services(compose)
    graph: dict[str, list[str]] = {}
    for name, service in all_services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {target: {"condition": "service_started"} for target in depends_on}
        graph[name] = list(depends_on)
        for target, options in depends_on.items():
            if target not in all_services:
                problems.append(f"service {name}: depends_on {target!r}, which is not a service")
                continue
            condition = (options or {}).get("condition", "service_started")
            problems += _check_condition(name, target, condition, all_services[target])
            if all_services[target].get("profiles") and not service.get("profiles"):
                problems.append(f"service {name}: depends_on {target}, which runs only with "
                                f"profile {all_services[target]['profiles']}")
    cycle = _find_cycle(graph)
    if cycle:
        problems.append("depends_on cycle: " + " -> ".join(cycle))
    return problems


def _check_condition(name: str, target: str, condition: str, target_service: dict) -> list[str]:
    if condition not in DEPENDS_ON_CONDITIONS:
        return [f"service {name}: invalid depends_on condition {condition!r} for {target}"]
    healthcheck = target_service.get("healthcheck") or {}
    if condition == "service_healthy" and (not healthcheck or healthcheck.get("disable")):
        return [f"service {name}: waits for {target} to be healthy, but {target} has no healthcheck"]
    if condition == "service_completed_successfully" and \
            str(target_service.get("restart", "no")) not in ("no", "on-failure"):
        restart = target_service.get("restart")
        return [f"service {name}: waits for {target} to complete, but {target} restarts ({restart})"]
    return []


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    visiting, done = [], set()

    def visit(node: str) -> list[str]:
        if node in done:
            return []
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        visiting.append(node)
        for target in graph.get(node, []):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return []

    for node in graph:
        cycle = visit(node)
        if cycle:
            return cycle
    return []


def check_volumes(compose: dict[str, Any], compose_dir: Path = DOCKER_DIR) -> list[str]:
    """Check that named volumes are declared at the top level and bind-mount sources exist."""
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    used = set()
    for name, service in services(compose).items():
        for volume in service.get("volumes") or []:
            kind, source = _volume_source(volume)
            if not source:
                continue
            if kind == "volume":
                used.add(source)
                if source not in declared:
                    problems.append(f"service {name}: volume {source!r} is not declared under "
                                    f"the top-level volumes")
            elif source.startswith(("/", "~")):
                problems.append(f"service {name}: bind mount of host path {source!r}: use a "
                                f"path relative to docker/ or a named volume")
            elif not (compose_dir / source).exists():
                problems.append(f"service {name}: bind mount source {source!r} not found in "
                                f"{compose_dir}")
    problems += [f"volume {volume!r} is declared but no service mounts it"
                 for volume in sorted(declared - used)]
    return problems


def _volume_source(volume: Any) -> tuple[str, str]:
    """Return ("volume" or "bind", source) of a short or long volume entry."""
    if isinstance(volume, dict):
        return volume.get("type", "volume"), str(volume.get("source", ""))
    parts = str(volume).split(":")
    if len(parts) == 1:
        return "anonymous", ""
    source = parts[0]
    is_path = source.startswith((".", "/", "~"))
    return ("bind" if is_path else "volume"), source


def check_ports_on_loopback(compose: dict[str, Any]) -> list[str]:
    """Check that every published port names 127.0.0.1 as its host address."""
    problems = []
    for name, service in services(compose).items():
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip", "") if isinstance(port, dict) else \
                (str(port).split(":")[0] if str(port).count(":") == 2 else "")
            if host_ip != "127.0.0.1":
                problems.append(f"service {name}: port {port!r} is not bound to 127.0.0.1")
    return problems


def check_healthchecks(compose: dict[str, Any]) -> list[str]:
    """Check that every long-running service has a healthcheck (one-shot services need none)."""
    return [f"service {name}: no healthcheck" for name, service in services(compose).items()
            if str(service.get("restart", "no")) != "no" and not service.get("healthcheck")]


def check_pulse_settings_names(compose: dict[str, Any]) -> list[str]:
    """Check that every PULSE_* variable in compose.yaml is a settings field or an API token."""
    from tasks.settings import Settings

    tokens = token_variables()
    problems = []
    for name, service in services(compose).items():
        for variable in environment_of(service):
            if not variable.startswith("PULSE_") or variable in tokens:
                continue
            if not _is_settings_field(Settings, variable.removeprefix("PULSE_").lower()):
                problems.append(f"service {name}: {variable} matches no field of "
                                f"tasks.settings.Settings")
    return problems


def _is_settings_field(model: Any, path: str) -> bool:
    fields = model.model_fields
    if path in fields:
        return True
    section, separator, rest = path.partition("__")
    if not separator or section not in fields:
        return False
    annotation = fields[section].annotation
    return hasattr(annotation, "model_fields") and _is_settings_field(annotation, rest)


def token_variables() -> set[str]:
    """Return the token variables of the API post sources, which are not Settings fields.

    They are the keys of TOKEN_CONNECTIONS in plugins/pulse_airflow.py, read without import.
    """
    tree = ast.parse(PLUGINS_FILE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "TOKEN_CONNECTIONS"
                for target in node.targets):
            return set(ast.literal_eval(node.value))
    raise LookupError(f"TOKEN_CONNECTIONS not found in {PLUGINS_FILE}")


# --- Airflow configuration names -------------------------------------------------------------

def airflow_options() -> tuple[dict[str, set[str]], set[str]]:
    """Return {section: options} from the installed Airflow and providers, and the providers' sections.

    Core options come from airflow/config_templates/config.yml, providers' from their
    get_provider_info(). Nothing is imported from Airflow itself.
    """
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("apache-airflow is not installed in this Python")
    config = Path(next(iter(spec.submodule_search_locations))) / "config_templates" / "config.yml"
    described = yaml.safe_load(config.read_text(encoding="utf-8"))
    options = {section: set(body.get("options", {})) for section, body in described.items()}
    provider_sections = set()
    from importlib.metadata import entry_points

    for entry in entry_points(group="apache_airflow_provider"):
        info = entry.load()()
        for section, body in (info.get("config") or {}).items():
            options.setdefault(section, set()).update(body.get("options", {}))
            provider_sections.add(section)
    return options, provider_sections


# Sections that the providers the image adds (celery, cncf.kubernetes) define.
IMAGE_PROVIDER_SECTIONS = {"celery", "celery_kubernetes_executor", "celery_broker_transport_options",
                           "kubernetes_executor"}


def check_airflow_option_names(compose: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Check AIRFLOW__SECTION__KEY variables against the installed Airflow configuration.

    Returns the problems and the variables left unchecked. A variable is left unchecked when
    its section belongs to a provider that only the image installs, so ``--install`` checks it.
    """
    options, _ = airflow_options()
    problems, unchecked = [], []
    for name, service in services(compose).items():
        for variable in environment_of(service):
            match = re.fullmatch(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)", variable)
            if not match:
                continue
            section, option = match.group(1).lower(), match.group(2).lower()
            if section not in options and section in IMAGE_PROVIDER_SECTIONS:
                unchecked.append(variable)
            elif option not in options.get(section, set()):
                problems.append(f"service {name}: {variable} is not an Airflow option "
                                f"([{section}] {option})")
    return problems, sorted(set(unchecked))


# --- Dockerfile and .dockerignore --------------------------------------------------------

@dataclass
class Instruction:
    line: int
    keyword: str
    arguments: str


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining backslash continuations."""
    instructions, buffer, start = [], "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buffer and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, arguments = buffer.strip().partition(" ")
        instructions.append(Instruction(start, keyword.upper(), arguments.strip()))
        buffer = ""
    if buffer:
        raise ValueError(f"{path.name} line {start}: instruction ends with a continuation")
    return instructions


def dockerfile_arguments(instructions: list[Instruction]) -> dict[str, str]:
    """Return ARG names with their defaults ('' when none)."""
    arguments = {}
    for instruction in instructions:
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            arguments[name.strip()] = default.strip()
    return arguments


def dockerfile_environment(instructions: list[Instruction]) -> dict[str, str]:
    """Return the ENV values of the final stage (KEY=VALUE form)."""
    environment = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for item in shlex.split(instruction.arguments):
                key, _, value = item.partition("=")
                environment[key] = value
    return environment


@dataclass
class Copy:
    line: int
    sources: list[str]
    destination: str  # absolute
    into_folder: bool  # the destination is a folder (it ends with / or has several sources)


def dockerfile_copies(instructions: list[Instruction]) -> list[Copy]:
    """Return the COPY and ADD instructions that read from the build context, with absolute destinations."""
    copies, workdir = [], "/"
    for instruction in instructions:
        if instruction.keyword == "WORKDIR":
            workdir = os.path.join(workdir, instruction.arguments)
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        text = instruction.arguments
        words = json.loads(text) if text.startswith("[") else shlex.split(text)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        *sources, destination = words
        into_folder = destination.endswith("/") or len(sources) > 1
        copies.append(Copy(instruction.line, sources,
                           os.path.normpath(os.path.join(workdir, destination)), into_folder))
    return copies


def parse_dockerignore(path: Path = DOCKERIGNORE) -> list[tuple[re.Pattern[str], bool]]:
    """Return (pattern, is_exception) pairs in file order."""
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((re.compile(_dockerignore_regex(pattern)), exception))
    return rules


def _dockerignore_regex(pattern: str) -> str:
    """Translate a .dockerignore pattern (Go filepath.Match plus **) to a regex."""
    parts, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 2
            if pattern.startswith("/", index):
                parts.append("/?")
                index += 1
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return "^" + "".join(parts) + "$"


def is_ignored(relative_path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Return whether Docker leaves ``relative_path`` out of the build context.

    As in Docker, a pattern that matches a parent folder matches the path, and the last
    matching rule wins.
    """
    parts = Path(relative_path).parts
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    ignored = False
    for pattern, exception in rules:
        if any(pattern.match(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


def check_dockerfile(path: Path = DOCKERFILE, repo: Path = REPO,
                     dockerignore: Path = DOCKERIGNORE) -> list[str]:
    """Check the base image, the variant argument, the COPY sources, the user and Airflow's folders."""
    instructions = parse_dockerfile(path)
    arguments = dockerfile_arguments(instructions)
    problems = []

    bases = [interpolate(i.arguments.split()[0], arguments) for i in instructions
             if i.keyword == "FROM"]
    if not bases or not bases[-1].startswith("python:3.11-slim"):
        problems.append(f"base image {bases[-1] if bases else None!r} is not python:3.11-slim")
    if arguments.get("VARIANT") != "cpu":
        problems.append("ARG VARIANT must default to cpu")

    rules = parse_dockerignore(dockerignore) if dockerignore.is_file() else []
    copied = []
    for copy in dockerfile_copies(instructions):
        for source in copy.sources:
            matches = glob.glob(str(repo / source))
            if not matches:
                problems.append(f"line {copy.line}: COPY source {source!r} not found in the repository")
                continue
            relative = os.path.relpath(matches[0], repo)
            if is_ignored(relative, rules):
                problems.append(f"line {copy.line}: COPY source {source!r} is excluded by "
                                f"{dockerignore.name}")
            copied.append((source.rstrip("/"), copy.destination))

    users = [i.arguments.split(":")[0] for i in instructions if i.keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("the image runs as root: add a USER instruction with a non-root user")

    environment = dockerfile_environment(instructions)
    if not environment.get("AIRFLOW_HOME"):
        problems.append("ENV AIRFLOW_HOME is not set")
    destinations = {destination for _, destination in copied}
    for variable, folder in (("AIRFLOW__CORE__DAGS_FOLDER", "dags"),
                             ("AIRFLOW__CORE__PLUGINS_FOLDER", "plugins")):
        value = environment.get(variable)
        expected = f"{IMAGE_PROJECT_DIR}/{folder}"
        if value != expected or expected not in destinations:
            problems.append(f"{variable} is {value!r}: expected {expected}, where {folder}/ is copied")
    return problems


def install_steps(instructions: list[Instruction]) -> list[str]:
    """Return the steps (deps, project) that the RUN lines pass to the install script, in order."""
    steps = []
    for instruction in instructions:
        if instruction.keyword == "RUN":
            steps += re.findall(re.escape(INSTALL_SCRIPT) + r"\s+(\w+)", instruction.arguments)
    return steps


# --- Kubernetes pod templates --------------------------------------------------------------

def check_pod_template(path: Path) -> list[str]:
    """Check that a pod template is a v1 Pod that never restarts, with an image in container "base"."""
    pod = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = []
    if not isinstance(pod, dict) or pod.get("apiVersion") != "v1" or pod.get("kind") != "Pod":
        return [f"{path.name}: not a v1 Pod"]
    spec = pod.get("spec") or {}
    containers = {c.get("name"): c for c in spec.get("containers") or []}
    if "base" not in containers:
        problems.append(f"{path.name}: no container named 'base', which the executor fills in")
    elif not containers["base"].get("image"):
        problems.append(f"{path.name}: container 'base' has no image")
    if spec.get("restartPolicy") != "Never":
        problems.append(f"{path.name}: restartPolicy must be Never (Airflow retries tasks itself)")
    mounted = {m["name"] for c in containers.values() for m in c.get("volumeMounts") or []}
    volumes = {v["name"] for v in spec.get("volumes") or []}
    problems += [f"{path.name}: volumeMount {name!r} has no volume" for name in sorted(mounted - volumes)]
    security = spec.get("securityContext") or {}
    if not security.get("runAsNonRoot"):
        problems.append(f"{path.name}: securityContext.runAsNonRoot is not true")
    return problems


# --- External validators -----------------------------------------------------------------

def compose_cli() -> list[str] | None:
    """Return the command of a working Compose client (the docker plugin or docker-compose)."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            result = subprocess.run([*command, "version"], capture_output=True, text=True,
                                    timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return command
    return None


def run_compose_config(command: list[str], env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    """Run `compose config` on compose.yaml with ``env_file``; it needs no engine."""
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "--profile", "gpu",
         "config", "--quiet"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
    )


def find_compose_schema() -> Path | None:
    """Return the compose-spec JSON schema: PULSE_COMPOSE_SCHEMA, else check-jsonschema's copy."""
    configured = os.environ.get("PULSE_COMPOSE_SCHEMA")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = (Path(next(iter(spec.submodule_search_locations))) / "builtin_schemas" / "vendor"
            / "compose-spec.json")
    return path if path.is_file() else None


def check_compose_schema(compose: dict[str, Any], environment: dict[str, str],
                         schema_path: Path) -> list[str]:
    """Validate the interpolated compose data against the compose-spec JSON schema."""
    import jsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    data = interpolate_tree(compose, environment)
    return [f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))]


# --- All static checks -------------------------------------------------------------------

def static_problems() -> dict[str, list[str]]:
    """Run every check that needs neither a Compose client nor a schema file."""
    compose = load_compose()
    defined = read_env_file(ENV_EXAMPLE)
    results = {
        "top-level keys": check_compose_top_level(compose),
        "images and builds": check_images(compose, defined),
        "variables": check_variables_defined(compose, defined),
        "depends_on": check_depends_on(compose),
        "volumes": check_volumes(compose),
        "published ports": check_ports_on_loopback(compose),
        "healthchecks": check_healthchecks(compose),
        "PULSE_ settings": check_pulse_settings_names(compose),
        "Airflow options": check_airflow_option_names(compose)[0],
        "Dockerfile": check_dockerfile(),
    }
    for template in POD_TEMPLATES:
        results[f"pod template {template.name}"] = check_pod_template(template)
    return results


# --- Image install check -----------------------------------------------------------------

def stage_build_context(target: Path) -> Path:
    """Copy what the Dockerfile's COPY lines copy to ``target``/project, as the image lays it out.

    As with COPY, a folder's contents go into the destination, and a file goes into it when
    it is a folder. Returns the staged project folder (the image's /opt/social-pulse).
    """
    project = target / "project"
    for copy in dockerfile_copies(parse_dockerfile()):
        destination = project / Path(copy.destination).relative_to(IMAGE_PROJECT_DIR)
        for source in copy.sources:
            for match in map(Path, glob.glob(str(REPO / source))):
                if match.is_dir():
                    shutil.copytree(match, destination, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                    continue
                placed = destination / match.name if copy.into_folder else destination
                placed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, placed)
    return project


def _run(command: list[str], log: Path, **kwargs: Any) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n$ {shlex.join(command)}\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False,
                                **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed with exit code {result.returncode}; "
                           f"see {log}")


def run_install_check(work_dir: Path, python: str = "python3.11") -> dict[str, Any]:
    """Run the Dockerfile's install steps in a fresh venv, then smoke-test the result.

    Returns timings in seconds, the installed torch version and the packages that neither
    constraints.txt nor docker/constraints-image.txt pins. Raises RuntimeError when a step fails.
    """
    timings: dict[str, float] = {}
    log = work_dir / "install.log"
    started = time.monotonic()
    project = stage_build_context(work_dir)
    venv = work_dir / "venv"
    _run([python, "-m", "venv", str(venv)], log)
    venv_python = str(venv / "bin" / "python")
    environment = {**os.environ, "PYTHON": venv_python, "VARIANT": "cpu", "TORCH_CPU_INDEX": "",
                   "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    environment.pop("VIRTUAL_ENV", None)
    for step in install_steps(parse_dockerfile()):
        step_started = time.monotonic()
        _run(["bash", str(project / INSTALL_SCRIPT), step, str(project)], log, env=environment)
        timings[f"install {step}"] = round(time.monotonic() - step_started, 1)

    smoke_started = time.monotonic()
    smoke = work_dir / "smoke.json"
    _run([venv_python, str(Path(__file__).resolve()), "--smoke", str(project), str(smoke)], log,
         env={**environment, "AIRFLOW_HOME": str(work_dir / "airflow-home")})
    timings["smoke test"] = round(time.monotonic() - smoke_started, 1)
    timings["total"] = round(time.monotonic() - started, 1)
    return {"timings": timings, **json.loads(smoke.read_text(encoding="utf-8")), "log": str(log)}


def smoke_test(project: Path, output: Path) -> int:
    """Run inside the fresh venv: imports, CLI options, config names, DAG parsing, pins."""
    report: dict[str, Any] = {"problems": []}
    problems = report["problems"]
    # As in the image; Airflow reads these when it is first imported.
    os.environ.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    })

    import torch

    report["torch"] = torch.__version__
    for module in ("airflow", "mlflow", "celery", "psycopg2", "asyncpg", "boto3",
                   "airflow.providers.celery.executors.celery_executor",
                   "airflow.providers.cncf.kubernetes.executors.kubernetes_executor",
                   "airflow.providers.postgres", "tasks.jobs"):
        try:
            __import__(module)
        except Exception as error:  # noqa: BLE001  (report every failed import, not the first only)
            problems.append(f"import {module} failed: {error!r}")

    compose = load_compose()
    option_problems, unchecked = check_airflow_option_names(compose)
    problems += option_problems
    problems += [f"{variable}: its provider section is still unknown" for variable in unchecked]
    problems += check_cli_options(compose)
    problems += check_dag_import(project)
    report["unpinned"] = unpinned_packages(project)
    problems += [f"{name}=={version} is pinned by neither constraints file"
                 for name, version in report["unpinned"]]
    output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def check_cli_options(compose: dict[str, Any]) -> list[str]:
    """Check that each airflow, mlflow or celery command in compose.yaml has the options it passes.

    Service commands and healthchecks are checked against the command's --help output.
    """
    problems = []
    for name, service in services(compose).items():
        commands = [service.get("command")]
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test and test[0] == "CMD":
            commands.append(test[1:])
        elif isinstance(test, list) and test and test[0] == "CMD-SHELL":
            commands.append(shlex.split(test[1]))
        for command in commands:
            if not isinstance(command, list) or not command or \
                    command[0] not in ("airflow", "mlflow", "celery"):
                continue
            problems += _check_command_help(name, command)
    return problems


def _check_command_help(service: str, command: list[str]) -> list[str]:
    # celery takes its global --app option first: `celery --app APP inspect ping ...`.
    prefix_length = 3 if command[0] == "celery" and command[1:2] == ["--app"] else 1
    words, rest = list(command[:prefix_length]), command[prefix_length:]
    while rest and not rest[0].startswith("-"):
        words.append(rest.pop(0))
    options = [word.split("=")[0] for word in rest if word.startswith("--")]
    executable = shutil.which(words[0])
    if executable is None:
        return [f"service {service}: {words[0]} is not installed"]
    result = subprocess.run([executable, *words[1:], "--help"], capture_output=True, text=True,
                            timeout=CLI_TIMEOUT_S, check=False)
    help_text = result.stdout + result.stderr
    if result.returncode != 0:
        return [f"service {service}: `{' '.join(words)} --help` failed: {help_text[-300:]}"]
    return [f"service {service}: `{' '.join(words)}` has no option {option}"
            for option in options if not re.search(re.escape(option) + r"(?![\w-])", help_text)]


def check_dag_import(project: Path) -> list[str]:
    """Parse the image's DAG folder with the image's packages; report import errors."""
    sys.path[:0] = [str(project / "plugins")]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(project / "dags"))
    problems = [f"DAG file {path}: {error.strip().splitlines()[-1]}"
                for path, error in bag.import_errors.items()]
    if not bag.dag_ids:
        problems.append("no DAG was found in the image's dags/ folder")
    return problems


def unpinned_packages(project: Path) -> list[tuple[str, str]]:
    """Return the installed distributions that neither constraints file pins (pip and its tools aside)."""
    from importlib.metadata import distributions

    pinned = set()
    for path in (project / "constraints.txt", project / "docker" / "constraints-image.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            name = re.split(r"[=<>!~ ;\[]", line.strip(), maxsplit=1)[0]
            if name and not name.startswith("#"):
                pinned.add(_normalize(name))
    exempt = {"pip", "setuptools", "wheel", "social-pulse"}
    found = {(_normalize(d.metadata["Name"]), d.version) for d in distributions()}
    return sorted((name, version) for name, version in found
                  if name not in pinned and name not in exempt)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- Command line ------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true",
                        help="also run the image's pip install steps in a fresh venv (minutes)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the install check's folder (about 2.5 GB) instead of deleting it")
    parser.add_argument("--smoke", nargs=2, metavar=("PROJECT", "OUTPUT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.smoke:
        return smoke_test(Path(arguments.smoke[0]), Path(arguments.smoke[1]))

    failed = False
    for check, problems in static_problems().items():
        print(f"{'FAIL' if problems else 'ok  '} {check}")
        for problem in problems:
            print(f"       {problem}")
        failed |= bool(problems)

    command = compose_cli()
    if command is None:
        print("skip compose config: no `docker compose` or `docker-compose` client works here")
    else:
        result = run_compose_config(command)
        print(f"{'ok  ' if result.returncode == 0 else 'FAIL'} {' '.join(command)} config")
        if result.returncode != 0:
            print(result.stderr.strip())
            failed = True
    schema = find_compose_schema()
    if schema is None:
        print("skip compose-spec schema: set PULSE_COMPOSE_SCHEMA or install check-jsonschema")
    else:
        problems = check_compose_schema(load_compose(), read_env_file(ENV_EXAMPLE), schema)
        print(f"{'FAIL' if problems else 'ok  '} compose-spec schema ({schema})")
        for problem in problems:
            print(f"       {problem}")
        failed |= bool(problems)

    if arguments.install:
        work_dir = Path(tempfile.mkdtemp(prefix="pulse-image-install-"))
        keep = arguments.keep
        try:
            result = run_install_check(work_dir)
            print(json.dumps(result, indent=2))
            failed |= bool(result["problems"])
        except RuntimeError as error:
            print(f"FAIL image install: {error}")
            failed, keep = True, True  # the log in the folder contains the error
        finally:
            if keep:
                print(f"install check folder kept: {work_dir}")
            else:
                shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
