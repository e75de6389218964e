"""Independent releases: bump only what changed since its last release, and what depends on it.

The released state of every workspace member (version, tag, and a digest of its files) is
recorded in ``releases.json`` at the repository root, so "changed since the last release"
needs neither git history nor tags: it holds on a fresh clone. ``python3 dev.py release``
runs :func:`release`; CI runs :func:`check` (``python3 dev.py release-check``).

Rules:

- a library (``packages/*``) whose files changed must have an entry under ``## Unreleased``
  in its CHANGELOG.md; the release refuses it otherwise. The heading becomes its new version,
  bumped as :func:`level_from_notes` reads the entry (``--bump NAME=major|minor|patch``
  overrides);
- libraries depend on sibling libraries with a compatible range (``>=0.2.0,<0.3``), widened
  only when a new version falls outside it (the dependent is then released too);
- services pin every sibling exactly; a service is released (patch) when its own files
  changed or anything in its dependency closure was released, and its pins are rewritten;
- the per-service image tags in ``deploy/k8s/base/kustomization.yaml`` follow the versions.

Standard library only, like dev.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mdp_images import Member, closure, load_members, member_files, normalize

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = Path("releases.json")
KUSTOMIZATION = Path("deploy/k8s/base/kustomization.yaml")
LEVELS = ("major", "minor", "patch")
_UNRELEASED = re.compile(r"^## Unreleased[ \t]*\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)
# "BREAKING" anywhere, or an entry that opens with "**Breaking" (the changelogs' own style).
_BREAKING = re.compile(r"^### Removed\b|\bBREAKING\b|^- \*\*Breaking\b", re.M)
_ADDED = re.compile(r"^### Added\b", re.M)
_DEPENDENCIES_NOTE = "- Released with its dependencies.\n"
_VERSION_LINE = re.compile(r'^(version\s*=\s*")([^"]+)(")', re.M)


class ReleaseError(Exception):
    """The release cannot go ahead; the message says why, one problem a line."""


def tag_name(name: str, version: str) -> str:
    """The git tag of one release of one member, e.g. ``mdp-core/v0.2.0``."""
    return f"{name}/v{version}"


def member_digest(root: Path, member: Member) -> str:
    """SHA-256 over the member's files (the changelog and caches excluded)."""
    digest = hashlib.sha256()
    for relative in member_files(root, member.folder):
        digest.update(relative.relative_to(member.folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((root / relative).read_bytes()).digest())
    return digest.hexdigest()


def load_state(root: Path) -> dict[str, dict[str, str]]:
    """The recorded released state, by member name."""
    path = root / STATE_FILE
    if not path.is_file():
        raise ReleaseError(f"{STATE_FILE} is missing: no released state to compare with")
    state: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))["members"]
    return state


def save_state(root: Path, state: dict[str, dict[str, str]], note: str) -> None:
    """Write the released state, sorted, with a note saying what it is."""
    document = {"note": note, "members": {name: state[name] for name in sorted(state)}}
    (root / STATE_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


_STATE_NOTE = (
    "The released state of every workspace member, written by `python3 dev.py release`: "
    "its version, its tag and the digest of its files (tools/mdp_release.py). Do not edit."
)


def changed_members(root: Path) -> dict[str, Member]:
    """Members whose files differ from their last release (or that were never released)."""
    members = load_members(root)
    state = load_state(root)
    return {
        name: member
        for name, member in members.items()
        if state.get(name, {}).get("digest") != member_digest(root, member)
    }


def unreleased_notes(root: Path, member: Member) -> str | None:
    """The text under ``## Unreleased`` in the member's changelog, or None when empty/absent."""
    changelog = root / member.folder / "CHANGELOG.md"
    if not changelog.is_file():
        return None
    match = _UNRELEASED.search(changelog.read_text(encoding="utf-8"))
    if match is None or not match["body"].strip():
        return None
    return match["body"]


def _parse(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ReleaseError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    return int(parts[0]), int(parts[1]), int(parts[2])


def level_from_notes(notes: str, version: str) -> str:
    """The bump the notes call for: a Removed section or BREAKING marks a breaking change.

    Breaking is ``major`` (the minor while at 0.x, see :func:`bump`); an Added section is
    ``minor`` from 1.0 on; anything else, and any non-breaking change at 0.x, is ``patch``.
    """
    if _BREAKING.search(notes):
        return "major"
    if _ADDED.search(notes) and _parse(version)[0] > 0:
        return "minor"
    return "patch"


def bump(version: str, level: str) -> str:
    """The next version at ``level``; at 0.x a breaking (major) change bumps the minor."""
    major, minor, patch = _parse(version)
    if level == "major" and major > 0:
        return f"{major + 1}.0.0"
    if level in {"major", "minor"}:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def compatible_range(version: str) -> str:
    """The versions API-compatible with ``version``: same major, or same minor at 0.x."""
    major, minor, _ = _parse(version)
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={version},<{upper}"


def admits(specifier: str, version: str) -> bool:
    """Whether a specifier of the forms this project writes (``==``, ``>=``, ``<``) admits it."""
    wanted = _parse(version)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        operator = re.match(r"(==|>=|<=|<|>|~=)", clause)
        if operator is None:
            raise ReleaseError(f"cannot read the specifier {specifier!r}")
        bound = tuple(int(p) for p in clause[operator.end() :].strip().split("."))
        padded = bound + (0,) * (3 - len(bound))
        ok = {
            "==": wanted == padded,
            ">=": wanted >= padded,
            "<=": wanted <= padded,
            "<": wanted < padded,
            ">": wanted > padded,
            "~=": wanted >= padded and wanted[: len(bound) - 1] == bound[: len(bound) - 1],
        }[operator[1]]
        if not ok:
            return False
    return True


def _requirement_pattern(name: str) -> re.Pattern[str]:
    # "mdp-core==0.2.0" or "mdp-core[otel]>=0.2.0,<0.3" inside a TOML string.
    return re.compile(rf'"({re.escape(name)}(?:\[[^\]]*\])?)\s*([^";]*)"')


def _specifiers(pyproject: str, name: str) -> list[str]:
    return [m[2] for m in _requirement_pattern(name).finditer(pyproject)]


@dataclass
class Plan:
    """What a release will do."""

    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (old, new)
    reasons: dict[str, str] = field(default_factory=dict)
    widened: dict[str, list[str]] = field(default_factory=dict)  # library -> siblings widened


def _changed_libraries(
    root: Path, changed: dict[str, Member], levels: dict[str, str], result: Plan
) -> None:
    problems = []
    for name, member in sorted(changed.items()):
        if member.kind != "package":
            continue
        notes = unreleased_notes(root, member)
        if notes is None:
            problems.append(
                f"{name} changed since its last release but its CHANGELOG.md has no entry "
                "under '## Unreleased'"
            )
            continue
        level = levels.get(name) or level_from_notes(notes, member.version)
        result.versions[name] = (member.version, bump(member.version, level))
        result.reasons[name] = "changed"
    if problems:
        raise ReleaseError("\n".join(problems))


def _widened_libraries(
    root: Path, members: dict[str, Member], levels: dict[str, str], result: Plan
) -> None:
    """Libraries whose range on a released sibling no longer admits it are released too."""
    pending = list(result.versions)
    while pending:
        released = pending.pop()
        new_version = result.versions[released][1]
        for name, member in members.items():
            if member.kind != "package" or released not in member.deps:
                continue
            text = (root / member.folder / "pyproject.toml").read_text(encoding="utf-8")
            if all(admits(spec, new_version) for spec in _specifiers(text, released)):
                continue
            result.widened.setdefault(name, []).append(released)
            if name not in result.versions:
                level = levels.get(name, "patch")
                result.versions[name] = (member.version, bump(member.version, level))
                result.reasons[name] = f"its range on {released} is widened"
                pending.append(name)


def plan(root: Path, levels: dict[str, str] | None = None) -> Plan:
    """Decide which members to release and at which versions; refuse on missing notes."""
    levels = levels or {}
    members = load_members(root)
    changed = changed_members(root)
    unknown = set(levels) - set(members)
    if unknown:
        raise ReleaseError(f"--bump names unknown members: {', '.join(sorted(unknown))}")
    result = Plan()
    _changed_libraries(root, changed, levels, result)
    _widened_libraries(root, members, levels, result)
    # Services: released when their own files or anything in their closure changed. A
    # service can pin another (the platform embeds them all), so this runs until nothing
    # more is released: in name order alone, mdp-platform came before mdp-wds and missed it.
    more = True
    while more:
        more = False
        for name, member in sorted(members.items()):
            if member.kind != "service" or name in result.versions:
                continue
            inside = [m for m in closure(members, name) if m != name and m in result.versions]
            if name in changed or inside:
                level = levels.get(name, "patch")
                result.versions[name] = (member.version, bump(member.version, level))
                result.reasons[name] = (
                    "changed" if name in changed else f"{', '.join(inside)} released"
                )
                more = True
    return result


def _write_version(path: Path, version: str) -> None:
    text = path.read_text(encoding="utf-8")
    text, count = _VERSION_LINE.subn(rf"\g<1>{version}\g<3>", text, count=1)
    if count != 1:
        raise ReleaseError(f"{path}: no version line")
    path.write_text(text, encoding="utf-8")


def _rewrite_requirements(path: Path, member: Member, versions: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for sibling in member.deps:
        if sibling not in versions:
            continue
        if member.kind == "service":
            new = f"=={versions[sibling]}"
        elif all(admits(spec, versions[sibling]) for spec in _specifiers(text, sibling)):
            continue
        else:
            new = compatible_range(versions[sibling])
        text = _requirement_pattern(sibling).sub(rf'"\g<1>{new}"', text)
    path.write_text(text, encoding="utf-8")


def _write_changelog(
    root: Path, member: Member, version: str, widened: list[tuple[str, str]]
) -> None:
    path = root / member.folder / "CHANGELOG.md"
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    note = "".join(f"- Accepts {sibling} {accepted}.\n" for sibling, accepted in widened)
    if _UNRELEASED.search(text) and unreleased_notes(root, member) is not None:
        if note:
            text = _UNRELEASED.sub(
                lambda m: f"## Unreleased\n{m['body'].rstrip()}\n\n### Changed\n\n{note}\n",
                text,
                count=1,
            )
        text = text.replace("## Unreleased", f"## {version}", 1)
    else:
        text = _UNRELEASED.sub("", text, count=1)
        entry = f"## {version}\n\n### Changed\n\n{note or _DEPENDENCIES_NOTE}\n"
        first = re.search(r"^## ", text, flags=re.M)
        at = first.start() if first else len(text)
        text = text[:at] + entry + text[at:]
    path.write_text(text, encoding="utf-8")


def _write_image_tags(root: Path, members: dict[str, Member], versions: dict[str, str]) -> None:
    path = root / KUSTOMIZATION
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    for name, version in versions.items():
        if members[name].kind != "service":
            continue
        text = re.sub(
            rf'(- name: {re.escape(name)}\n(?:\s+newName: [^\n]*\n)?\s+newTag: )"[^"]*"',
            rf'\g<1>"{version}"',
            text,
        )
    path.write_text(text, encoding="utf-8")


def release(root: Path, levels: dict[str, str] | None = None) -> Plan:
    """Apply the plan: versions, pins and ranges, changelogs, image tags, released state."""
    the_plan = plan(root, levels)
    members = load_members(root)
    versions = {name: new for name, (_, new) in the_plan.versions.items()}
    for name, member in members.items():
        path = root / member.folder / "pyproject.toml"
        if name in versions:
            _write_version(path, versions[name])
        _rewrite_requirements(path, member, versions)
    for name, version in versions.items():
        widened = [
            (sibling, compatible_range(versions[sibling]))
            for sibling in the_plan.widened.get(name, [])
        ]
        _write_changelog(root, members[name], version, widened)
    _write_image_tags(root, members, versions)
    state = load_state(root)
    for name, member in load_members(root).items():
        if name in versions:
            state[name] = {
                "version": versions[name],
                "tag": tag_name(name, versions[name]),
                "digest": member_digest(root, member),
            }
    save_state(root, state, _STATE_NOTE)
    return the_plan


def check(root: Path) -> list[str]:
    """What CI refuses: a library changed since its release with no bump and no notes."""
    try:
        state = load_state(root)
    except ReleaseError as error:
        return [str(error)]
    members = load_members(root)
    problems = [
        f"{name} is not recorded in {STATE_FILE}" for name in sorted(set(members) - set(state))
    ]
    for name, member in sorted(changed_members(root).items()):
        if member.kind != "package" or name not in state:
            continue
        if member.version != state[name]["version"]:
            continue
        if unreleased_notes(root, member) is None:
            problems.append(
                f"{name}: files changed since {state[name]['tag']} but neither the version "
                "was bumped nor CHANGELOG.md has an entry under '## Unreleased'"
            )
    return problems


def record_baseline(root: Path, commit: str) -> None:
    """Record every member as released at ``commit`` (its files there, its version there)."""
    import tarfile  # noqa: PLC0415 - only this one-off needs it
    import tempfile  # noqa: PLC0415 - same

    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "tree.tar"
        subprocess.run(  # noqa: S603 - fixed git command
            ["git", "archive", "--format=tar", "-o", str(archive), commit, "packages", "services"],  # noqa: S607
            cwd=root,
            check=True,
        )
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        old = Path(scratch)
        state = {
            name: {
                "version": member.version,
                "tag": tag_name(name, member.version),
                "commit": commit,
                "digest": member_digest(old, member),
            }
            for name, member in load_members(old).items()
        }
    save_state(root, state, _STATE_NOTE)


def _tag(root: Path, names: Sequence[str], state: dict[str, dict[str, str]]) -> None:
    for name in names:
        subprocess.run(  # noqa: S603 - fixed git command
            ["git", "tag", state[name]["tag"]],  # noqa: S607
            cwd=root,
            check=True,
        )


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("release", help="bump what changed and record the release")
    run.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    run.add_argument(
        "--bump", action="append", default=[], metavar="NAME=LEVEL", help="force a level"
    )
    commands.add_parser("check", help="fail when a library changed without notes or bump")
    commands.add_parser("changed", help="list the members changed since their release")
    baseline = commands.add_parser("baseline", help="record every member as released at COMMIT")
    baseline.add_argument("commit")
    tag = commands.add_parser("tag", help="tag HEAD with the recorded tags of NAMES")
    tag.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            problems = check(ROOT)
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        if args.command == "changed":
            for name in sorted(changed_members(ROOT)):
                print(name)
            return 0
        if args.command == "baseline":
            record_baseline(ROOT, args.commit)
            return 0
        if args.command == "tag":
            _tag(ROOT, args.names, load_state(ROOT))
            return 0
        levels = {}
        for item in args.bump:
            name, _, level = item.partition("=")
            if level not in LEVELS:
                parser.error(f"--bump {item}: the level is one of {', '.join(LEVELS)}")
            levels[normalize(name)] = level
        the_plan = plan(ROOT, levels) if args.dry_run else release(ROOT, levels)
    except ReleaseError as error:
        print(f"release refused:\n{error}", file=sys.stderr)
        return 1
    if not the_plan.versions:
        print("nothing changed since the last release")
    for name, (old, new) in sorted(the_plan.versions.items()):
        print(f"{name}: {old} -> {new} ({the_plan.reasons[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
