"""The deployment files pass their linters (cfn-lint, hadolint) with no finding at all, and the
Dockerfile and constraints keep the contract the image depends on.

CI runs both linters too (.ci/run); running them here makes a finding fail the test suite.
Each linter is also shown a planted defect, so a linter that checks nothing cannot pass.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "cluster" / "templates" / "finbatch.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
LOCK = ROOT / "requirements.lock"


def _tool(name: str) -> str:
    """The linter installed next to this Python (the test extra), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def _cfn_lint(path: Path) -> list[dict[str, object]]:
    # Informational checks too: the template has no finding of any level.
    done = subprocess.run(
        [_tool("cfn-lint"), "--format", "json", "--include-checks", "I", "--", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


def _hadolint(path: Path) -> list[dict[str, object]]:
    # Style findings count, and `# hadolint ignore=` pragmas are not honoured.
    done = subprocess.run(
        [
            _tool("hadolint"),
            "--format",
            "json",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


def test_template_passes_cfn_lint() -> None:
    assert _cfn_lint(TEMPLATE) == []


def test_cfn_lint_finds_a_planted_defect(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = TEMPLATE.read_text().replace("SPOT_PRICE_CAPACITY_OPTIMIZED", "SPOT_CHEAPEST", 1)
    broken.write_text(text)
    findings = _cfn_lint(broken)
    assert any("spot_cheapest" in str(f.get("Message", "")).lower() for f in findings), findings


def test_dockerfile_passes_hadolint() -> None:
    assert _hadolint(DOCKERFILE) == []


def test_hadolint_finds_a_planted_defect(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("--no-cache-dir ", "", 1))
    codes = {f["code"] for f in _hadolint(broken)}
    assert "DL3042" in codes  # pip's cache left in the image


# --------------------------------------------------------------------------------------------
# The Dockerfile's contract


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_dockerfile_contract() -> None:
    steps = _instructions()
    froms = [args for word, args in steps if word == "FROM"]
    # Multi-stage, both stages on one slim Python 3.11, pinned by digest (a re-pushed tag
    # cannot change the image).
    assert len(froms) == 2
    assert all(re.match(r"python:3\.11(\.\d+)?-slim", f) for f in froms), froms
    bases = {f.split()[0] for f in froms}
    assert len(bases) == 1, bases
    assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", bases.pop())
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    final_words = dict(final)
    # Runs as a fixed non-root user (numeric: resolvable without /etc/passwd lookups).
    user = final_words["USER"]
    assert re.fullmatch(r"\d+(:\d+)?", user) and not user.startswith("0"), user
    assert sorted(final_words["EXPOSE"].split()) == ["8786", "8787"]
    assert json.loads(final_words["ENTRYPOINT"]) == ["finbatch"]
    # The final stage copies the built virtualenv only: no source tree, no build tools.
    copies = [args for word, args in final if word in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/finbatch /opt/finbatch"]
    # The lock is used with its hashes, and nothing unlocked comes in: the dependencies with
    # --require-hashes, the project (a folder: no hash) without dependencies.
    runs = [args for word, args in steps if word == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert len(installs) == 2, installs
    assert "--require-hashes --no-deps --requirement requirements.lock" in installs[0]
    assert re.search(r"--no-deps \.( |$)", installs[1]), installs[1]
    assert "pip check" in installs[1]
    # No secrets in the image: no ARG/ENV that looks like a credential.
    for word, args in steps:
        if word in ("ARG", "ENV"):
            assert not re.search(r"AWS_(ACCESS|SECRET|SESSION)|PASSWORD|TOKEN", args), args


def test_the_build_context_is_an_allowlist() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything is excluded, then only what the Dockerfile copies comes back: data folders,
    # credentials (.aws, .env) and virtualenvs cannot reach the build.
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "Dockerfile",
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "entrypoint.py",
        "analytics",
        "cluster",
        "finbatch",
    }
    copied = set()
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from"):
            copied.update(p.rstrip("/") for p in args.split()[:-1])
    assert copied <= allowed


# --------------------------------------------------------------------------------------------
# constraints.txt: every runtime dependency pinned, within pyproject's ranges


def _pins() -> dict[str, str]:
    pins = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {raw!r} is not pinned with =="
            pins[_normal(name)] = version
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the runtime dependencies pull in, from the installed metadata."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = _normal(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        extras = req.extras
        for text in metadata.requires(req.name) or []:
            sub = Requirement(text)
            if sub.marker and not any(
                sub.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            todo.append(sub)
    return seen


def test_constraints_pin_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [Requirement(text) for text in project["dependencies"]]
    pins = _pins()
    for req in direct:
        name = _normal(req.name)
        assert name in pins, f"{req.name} is a runtime dependency but not in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req}"
    missing = _runtime_closure(direct) - set(pins)
    assert not missing, f"not pinned in constraints.txt (regenerate it): {sorted(missing)}"


@pytest.mark.parametrize("name", ["dask", "distributed", "pandas", "pyarrow", "numpy", "s3fs"])
def test_tests_run_the_versions_the_image_ships(name: str) -> None:
    # CI installs with --constraint constraints.txt: the packages every node checks for
    # equality (cluster/mnp.py) are the ones tested here.
    assert metadata.version(name) == _pins()[_normal(name)]


# --------------------------------------------------------------------------------------------
# requirements.lock: constraints.txt's versions, each with its files' hashes


def _locked(path: Path = LOCK) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement of the lock (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    locked = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement, *options = line.split()
            name, _, version = requirement.partition("==")
            assert version, f"requirements.lock: {requirement!r} is not pinned with =="
            assert all(o.startswith("--hash=sha256:") for o in options), line
            locked[_normal(name)] = (version, [o.removeprefix("--hash=sha256:") for o in options])
    return locked


def _unhashed(locked: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Requirements pip --require-hashes would refuse: no hash, or one that is no SHA-256."""
    return sorted(
        name
        for name, (_, hashes) in locked.items()
        if not hashes or not all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes)
    )


def test_lock_holds_the_constraints_versions_with_hashes() -> None:
    locked = _locked()
    # The same set and versions as constraints.txt (runtime and build backend): the image
    # ships what CI tested.
    assert {name: version for name, (version, _) in locked.items()} == _pins()
    assert _unhashed(locked) == []


def test_the_lock_check_sees_a_missing_hash(tmp_path: Path) -> None:
    text = LOCK.read_text()
    # Drop six's hashes: the entry is then a bare pin.
    broken = re.sub(r"(six==[^\s\\]+)(?: \\\n\s+--hash=sha256:[0-9a-f]{64})+", r"\1", text)
    assert broken != text
    (tmp_path / "requirements.lock").write_text(broken)
    assert _unhashed(_locked(tmp_path / "requirements.lock")) == ["six"]
