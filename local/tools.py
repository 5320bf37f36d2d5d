"""Generated artefacts and their gates: ``python -m local.tools statelint | openapi | diagrams``.

- statelint: every state machine, placeholders replaced with ARNs of the right shape (and the ItemReader
  fields statelint does not know yet checked here).
- openapi: docs/openapi.json generated from the handlers' routes and models (Powertools), plus the
  signed request bodies the handlers parse themselves after verifying the signature.
- diagrams: the Mermaid state diagrams in README.md, generated from the ASL so they cannot drift.
``--write`` regenerates; ``--check`` fails when the committed file differs from what would be made.
- bundle-check: what ``sam build`` made imports and is pinned (see ``run_bundle_check``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from local.cfn import ROOT, Stack
from local.lambdas import load_handler_module

OPENAPI = ROOT / "docs" / "openapi.json"
README = ROOT / "README.md"


def substituted_definitions() -> dict[str, dict[str, Any]]:
    """Each state machine's ASL as deployed (substitutions resolved to ARNs of a placeholder stack)."""
    stack = Stack.from_template("refundflow")
    return {
        logical_id: json.loads(stack.definition(logical_id))
        for logical_id in stack.of_type("AWS::Serverless::StateMachine")
    }


# ItemReader.ReaderConfig fields of the current ASL that statelint 3.1.0 does not know yet (it only knows
# MaxItems): checked here against the values the Step Functions documentation lists, then hidden from it.
READER_CONFIG_VALUES: dict[str, set[str] | None] = {
    "InputType": {"CSV", "JSON", "JSONL", "MANIFEST"},
    "CSVHeaderLocation": {"FIRST_ROW", "GIVEN"},
    "CSVDelimiter": {"COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB"},
    "CSVHeaders": None,
}


def _reader_config_problems(node: Any, path: str = "") -> list[str]:
    """Check, then remove, the ReaderConfig fields statelint cannot judge (in place)."""
    problems: list[str] = []
    if isinstance(node, dict):
        config = node.get("ItemReader", {}).get("ReaderConfig") if isinstance(node.get("ItemReader"), dict) else None
        if isinstance(config, dict):
            for field, allowed in READER_CONFIG_VALUES.items():
                if field in config:
                    value = config.pop(field)
                    if allowed is not None and value not in allowed:
                        problems.append(f"{path}.ItemReader.ReaderConfig.{field}: {value!r} not in {sorted(allowed)}")
        for key, value in node.items():
            problems += _reader_config_problems(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += _reader_config_problems(value, f"{path}[{index}]")
    return problems


def run_statelint() -> int:
    from statelint.cli import main as statelint

    failures = 0
    for logical_id, definition in substituted_definitions().items():
        for problem in _reader_config_problems(definition):
            print(f"statelint {logical_id}: {problem}")
            failures += 1
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
            json.dump(definition, handle)
        status = statelint([handle.name])
        print(f"statelint {logical_id}: {'ok' if status == 0 else 'FAILED'}")
        failures += status != 0
        Path(handle.name).unlink()
    return 1 if failures else 0


# ------------------------------------------------------------------ OpenAPI


def openapi_document() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    stack = Stack.from_template("refundflow")
    app = APIGatewayHttpResolver(enable_validation=True)
    signed_bodies: dict[str, Any] = {}
    for logical_id, resource in sorted(stack.of_type("AWS::Serverless::Function").items()):
        events = resource["Properties"].get("Events", {}).values()
        if not any(event["Type"] == "HttpApi" for event in events):
            continue
        folder = stack.function_folder(logical_id)
        module = load_handler_module(folder, f"refundflow_openapi_{folder.name}")
        app.include_router(module.router)
        signed_bodies.update(getattr(module, "SIGNED_REQUEST_BODIES", {}))
        signed_bodies.update(getattr(module, "REQUEST_BODIES", {}))
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="refundflow API",
            version="1.0.0",
            summary="Refund triggers, provider webhooks, the refund status API and approvals.",
            description=(
                "Generated from the handlers (functions/*/app.py) by `make openapi`; `make test` fails if it "
                "drifts. Signed routes verify the raw body before parsing it: their request bodies are "
                "documented here from the models the handlers parse them into."
            ),
        )
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path, model in signed_bodies.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
        operation = document["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    return document


def run_openapi(write: bool) -> int:
    rendered = json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
    if write:
        OPENAPI.parent.mkdir(exist_ok=True)
        OPENAPI.write_text(rendered)
        print(f"wrote {OPENAPI.relative_to(ROOT)}")
        return 0
    if not OPENAPI.exists() or OPENAPI.read_text() != rendered:
        print("docs/openapi.json is out of date: run `make openapi` and commit it", file=sys.stderr)
        return 1
    print("docs/openapi.json is up to date")
    return 0


# ------------------------------------------------------------------ Mermaid diagrams


def _choice_label(rule: dict[str, Any]) -> str:
    """A choice rule as a transition's label: the string compared, a path that must be present, each of an And."""
    if "And" in rule:
        return " and ".join(_choice_label(operand) for operand in rule["And"])
    if "StringEquals" in rule:
        return str(rule["StringEquals"])
    if rule.get("IsPresent") is True:
        return f"{str(rule['Variable']).removeprefix('$.')} given"
    return str(rule.get("Variable", ""))


def mermaid(definition: dict[str, Any]) -> str:
    """A Mermaid stateDiagram of an ASL definition: Next, Choice branches, Catch and End."""
    lines = ["stateDiagram-v2", "  direction TB", f"  [*] --> {definition['StartAt']}"]
    for name, state in definition["States"].items():
        kind = state["Type"]
        if kind == "Choice":
            lines.append(f"  state {name} <<choice>>")
            for choice in state.get("Choices", []):
                lines.append(f"  {name} --> {choice['Next']}: {_choice_label(choice)}")
            if "Default" in state:
                lines.append(f"  {name} --> {state['Default']}: otherwise")
            continue
        if "Next" in state:
            lines.append(f"  {name} --> {state['Next']}")
        stops = "stopped or error" if "startExecution" in str(state.get("Resource", "")) else "error"
        for catch in state.get("Catch", []):
            errors = ", ".join(catch["ErrorEquals"]).replace("States.ALL", stops).replace("States.", "")
            lines.append(f"  {name} --> {catch['Next']}: {errors}")
        if state.get("End") or kind in {"Succeed", "Fail"}:
            lines.append(f"  {name} --> [*]")
    return "\n".join(lines)


def diagram_block(logical_id: str, definition: dict[str, Any]) -> str:
    begin = f"<!-- BEGIN {logical_id} (generated by make diagrams) -->"
    return f"{begin}\n```mermaid\n{mermaid(definition)}\n```\n<!-- END {logical_id} -->"


def rendered_readme() -> str:
    text = README.read_text()
    for logical_id, definition in substituted_definitions().items():
        begin, end = f"<!-- BEGIN {logical_id} ", f"<!-- END {logical_id} -->"
        if begin not in text:
            raise SystemExit(f"README.md has no block for {logical_id}: add '{begin}...' and '{end}' markers")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + diagram_block(logical_id, definition) + tail
    return text


def run_diagrams(write: bool) -> int:
    rendered = rendered_readme()
    if write:
        README.write_text(rendered)
        print("README.md diagrams regenerated")
        return 0
    if README.read_text() != rendered:
        print("README.md state diagrams are out of date: run `make diagrams` and commit", file=sys.stderr)
        return 1
    print("README.md state diagrams are up to date")
    return 0


# ------------------------------------------------------------------ bundle check

# Runs in the Lambda interpreter with -I -S (no site-packages, no PYTHON* variables): argv is the handler
# ("app.lambda_handler") and the folders Lambda puts on the path, in Lambda's order.
_IMPORT_PROBE = """
import importlib, sys
handler, also, *folders = sys.argv[1:]
sys.path[:0] = folders
module_name, _, attribute = handler.rpartition(".")
if not callable(getattr(importlib.import_module(module_name), attribute)):
    raise SystemExit(f"{handler} is not callable")
for name in filter(None, also.split(",")):
    importlib.import_module(name)
"""


# Runs in the Lambda interpreter: every module under the folder (argv[1]) has a pyc that this interpreter
# would use without compiling: its magic number, hash-based and not checked against the source (unchecked-hash,
# the build's choice: tools/lambda_bundle.py), for this very source. Prints one problem a line, then a count.
_BYTECODE_PROBE = """
import importlib.util, pathlib, sys
folder = pathlib.Path(sys.argv[1])
sources = sorted(folder.rglob("*.py"))
for source in sources:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        print(f"{source.relative_to(folder)}: no bytecode")
        continue
    header = cached.read_bytes()[:16]
    flags = int.from_bytes(header[4:8], "little")
    if header[:4] != importlib.util.MAGIC_NUMBER:
        print(f"{source.relative_to(folder)}: bytecode of another Python")
    elif flags != 0b01:
        print(f"{source.relative_to(folder)}: bytecode is not unchecked-hash (flags {flags:#b})")
    elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
        print(f"{source.relative_to(folder)}: bytecode of another source")
print(len(sources))
"""


def bytecode_problems(python: str, folder: Path) -> tuple[int, list[str]]:
    """How many modules ``folder`` ships, and those without bytecode the Lambda interpreter can use as is."""
    result = subprocess.run(
        [python, "-I", "-S", "-c", _BYTECODE_PROBE, str(folder)], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return 0, [f"bytecode probe failed: {(result.stderr or result.stdout).strip()[-300:]}"]
    return int(lines[-1]), lines[:-1]


def top_level_names(folder: Path) -> set[str]:
    """The importable names the distributions in ``folder`` install (first parts of their RECORD paths)."""
    names: set[str] = set()
    for record in folder.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first and not first.endswith((".dist-info", ".data")) and first not in {"..", "bin", "__pycache__"}:
                names.add(first.removesuffix(".py"))
    return names


def shadowing_problems(folder: Path, runtime: Path) -> list[str]:
    """What ``folder`` ships that the Lambda runtime already has: it would come first on the path and be imported
    instead of the runtime's own compiled copy."""
    shipped = [name for name in distributions(folder) if name in distributions(runtime)]
    modules = [
        name
        for name in sorted(top_level_names(runtime))
        if (folder / name).exists() or (folder / f"{name}.py").exists()
    ]
    return [f"ships {name}, which the runtime provides" for name in shipped] + [
        f"ships the module {name}, which the runtime provides"
        for name in modules
        if canonical_name(name) not in shipped
    ]


# The Lambda python3.13 runtime on arm64, for the markers of a shipped distribution's requirements.
_LAMBDA_MARKERS = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "extra": "",
}


def unmet_requirements(folder: Path, available: list[Path], installed_alone: frozenset[str] = frozenset()) -> list[str]:
    """The requirements of the distributions in ``folder`` that nothing on the Lambda path (``available``: the
    folder, its layers, the runtime) satisfies at a version it accepts: shipping only what the runtime lacks
    must not leave a package without its dependency."""
    from email.parser import Parser

    from packaging.requirements import Requirement

    versions: dict[str, str] = {}
    for path in reversed(available):  # the first folder on the path wins
        versions.update(distributions(path))
    problems: list[str] = []
    for metadata in sorted(folder.glob("*.dist-info/METADATA")):
        owner = metadata.parent.name.removesuffix(".dist-info")
        if canonical_name(owner.rsplit("-", 1)[0]) in installed_alone:
            continue  # installed without its dependencies on purpose (requirements-nodeps.txt says why)
        for line in Parser().parsestr(metadata.read_text(), headersonly=True).get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(_LAMBDA_MARKERS):
                continue
            found = versions.get(canonical_name(requirement.name))
            if found is None or not requirement.specifier.contains(found, prereleases=True):
                problems.append(f"{owner} requires {requirement}, the Lambda path has {found or 'none'}")
    return problems


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them (PyYAML, pyyaml and py_yaml are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(folder: Path) -> dict[str, str]:
    """The distributions pip installed into a bundle folder: canonical name -> version."""
    found: dict[str, str] = {}
    for info in folder.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        found[canonical_name(name)] = version
    return found


def constraint_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints file: canonical name -> version."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            pins[canonical_name(name)] = version
    return pins


def bundle_problems(shipped: Path, host: Path, pins: dict[str, str]) -> list[str]:
    """Why a shipped bundle folder is not the host-platform one, or ships something not pinned to constraints."""
    problems: list[str] = []
    ours, theirs = distributions(shipped), distributions(host)
    for name in sorted(ours.keys() | theirs.keys()):
        if ours.get(name) != theirs.get(name):
            problems.append(f"{name} {ours.get(name, 'missing')} shipped, {theirs.get(name, 'missing')} on the host")
        elif pins.get(name) != ours[name]:
            problems.append(f"{name} {ours[name]} is not the version constraints.txt pins ({pins.get(name, 'none')})")
    return problems


def import_problem(
    python: str, handler: str, folders: list[Path], environment: dict[str, str], also: tuple[str, ...] = ()
) -> str | None:
    """Import a handler in a clean interpreter with only ``folders`` (and the stdlib) on its path, then the
    modules ``also`` (what the handler imports on first use: a platform's connector and its SDK)."""
    command = [python, "-I", "-S", "-c", _IMPORT_PROBE, handler, ",".join(also), *map(str, folders)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def lambda_environment(stack: Any, logical_id: str) -> dict[str, str]:
    """A function's environment as Lambda gives it (its template variables and the runtime's own), for a probe
    process that stands in for its container (the cold-import and memory benchmarks)."""
    return {
        "PATH": "/usr/bin:/bin",
        **stack.function_environment(logical_id),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": stack.physical_name(logical_id),
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "LAMBDA_TASK_ROOT": "/var/task",
    }


def lambda_python(requested: str | None) -> str | None:
    """The absolute path of a Python 3.13 (Lambda's runtime version): the one asked for, else any found."""
    home_versions = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.13*/bin/python3.13")))
    for candidate in [requested] if requested else ["python3.13", *home_versions]:
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13), sys.executable)"],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            continue
        is_313, _, executable = result.stdout.strip().partition(" ")
        if result.returncode == 0 and is_313 == "True":
            return executable
    return None


def first_use_imports(logical_id: str) -> tuple[str, ...]:
    """The modules a function imports on its first invocation rather than at load, from the catalog: a platform
    function's connector (its SDK or the shared HTTP client); intake's routes other than refund requests (the
    models, the domain, X-Ray's Tracer: refundflow.intake_routes) and its inbound modules (what verification
    needs)."""
    from refundflow import catalog

    modules = [
        f"refundflow.platforms.{entry.name}.connector"
        for entry in catalog.platforms()
        for role in entry.function_roles
        if entry.logical_id(role) == logical_id
    ]
    if logical_id == "ReceiveWebhookFunction":
        modules += ["refundflow.intake_routes"]
        modules += [f"refundflow.platforms.{entry.name}.inbound" for entry in catalog.platforms() if entry.inbound]
    return tuple(modules)


def run_bundle_check(shipped: Path, host: Path, runtime: Path, requested_python: str | None) -> int:
    """Check what ``sam build`` made, honestly, on a host that cannot run the shipped aarch64 wheels.

    - the shipped build and a build of the same Makefiles for this host's platform hold the same
      distributions, each at the version constraints.txt pins;
    - every function's handler imports from the host build in a clean Python 3.13 with nothing on its path
      but what Lambda gives it: the function folder, its layers' python/ and ``runtime`` (what the Lambda
      runtime provides: boto3 and its dependencies at the pinned versions);
    - nothing shipped shadows the runtime's own (compiled) packages, and every shipped distribution's
      requirements are met on the Lambda path (its folder, its layers, the runtime);
    - every module shipped has bytecode the Lambda's Python 3.13 uses as is (unchecked-hash, of that source).
    """
    stack = Stack.from_template("refundflow")
    pins = constraint_pins(ROOT / "constraints.txt")
    functions = stack.of_type("AWS::Serverless::Function")
    # a Python layer's packages are under python/ in its zip (Lambda puts /opt/python on the path)
    folders = {logical_id: Path(logical_id, "python") for logical_id in stack.of_type("AWS::Serverless::LayerVersion")}
    folders.update({logical_id: Path(logical_id) for logical_id in functions})
    installed_alone = frozenset(
        name for path in ROOT.glob("layers/*/requirements-nodeps.txt") for name in constraint_pins(path)
    )
    function_globals = stack.template.get("Globals", {}).get("Function", {})
    layers_of = {
        logical_id: [
            layer["Ref"] for layer in {**function_globals, **functions[logical_id]["Properties"]}.get("Layers", [])
        ]
        for logical_id in functions
    }
    problems = [
        f"{logical_id}: {problem}"
        for logical_id, folder in folders.items()
        for problem in [
            *bundle_problems(shipped / folder, host / folder, pins),
            *shadowing_problems(shipped / folder, runtime),
            *unmet_requirements(
                shipped / folder,
                [shipped / folder, *(shipped / folders[layer] for layer in layers_of.get(logical_id, [])), runtime],
                installed_alone,
            ),
        ]
    ]
    python = lambda_python(requested_python)
    compiled = 0
    if python is None:
        message = "no Python 3.13 found (set LAMBDA_PYTHON): the handlers' imports were NOT checked"
        if os.environ.get("CI") == "true":
            problems.append(message)
        else:
            print(f"bundle-check: SKIPPED imports: {message}", file=sys.stderr)
    else:

        def check(logical_id: str) -> str | None:
            properties = {**function_globals, **functions[logical_id]["Properties"]}
            path = [
                host / folders[logical_id],
                *(host / folders[layer_id] for layer_id in layers_of[logical_id]),
                runtime,
            ]
            environment = {
                **stack.function_environment(logical_id),
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "AWS_LAMBDA_FUNCTION_NAME": stack.physical_name(logical_id),
                "AWS_REGION": stack.region,
                "LAMBDA_TASK_ROOT": str(host / logical_id),
            }
            problem = import_problem(python, properties["Handler"], path, environment, first_use_imports(logical_id))
            return f"{logical_id}: {properties['Handler']} does not import: {problem}" if problem else None

        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            problems += [problem for problem in pool.map(check, sorted(functions)) if problem]
            for logical_id, (modules, stale) in zip(
                folders,
                pool.map(lambda folder: bytecode_problems(python, shipped / folder), folders.values()),
                strict=True,
            ):
                compiled += modules
                problems += [f"{logical_id}: {problem}" for problem in stale[:5]]
                if len(stale) > 5:
                    problems.append(f"{logical_id}: {len(stale) - 5} more modules without usable bytecode")
    for problem in problems:
        print(f"bundle-check: {problem}", file=sys.stderr)
    imported = "" if python is None else f", every handler imports in {python}, {compiled} modules compiled for it"
    if not problems:
        print(
            f"bundle-check: {len(folders)} artefacts pinned, alike on both platforms, shadowing nothing the runtime"
            f" provides, their requirements met{imported}"
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.tools")
    parser.add_argument("tool", choices=["statelint", "openapi", "diagrams", "bundle-check"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    bundles = parser.add_argument_group("bundle-check")
    bundles.add_argument("--shipped", type=Path, default=ROOT / ".aws-sam/build", help="the build that is deployed")
    bundles.add_argument("--host", type=Path, default=ROOT / ".aws-sam/host/build", help="the same for this host")
    bundles.add_argument("--runtime", type=Path, default=ROOT / ".aws-sam/lambda-runtime", help="Lambda's own packages")
    bundles.add_argument("--python", help="a Python 3.13 interpreter (default: python3.13 or pyenv's)")
    args = parser.parse_args(argv)
    if args.tool == "statelint":
        return run_statelint()
    if args.tool == "bundle-check":
        return run_bundle_check(args.shipped, args.host, args.runtime, args.python)
    if args.tool == "openapi":
        return run_openapi(write=args.write)
    return run_diagrams(write=args.write)


if __name__ == "__main__":
    sys.exit(main())
