"""The runtime settings of a Dockerfile's final stage, read from the file itself.

The image is built two ways (a container engine from the Dockerfile, and `image/build.py` without
one); reading ENV, USER, ENTRYPOINT, CMD, WORKDIR and LABEL from the Dockerfile keeps the second
from drifting from the first. This reads the subset of the syntax that file uses: line
continuations, comments, `ARG` defaults and `${VAR}` substitution, `KEY=VALUE` pairs with quotes,
and the JSON (exec) form of ENTRYPOINT and CMD.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a container of the image starts with (the OCI config's `config` object)."""

    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    labels: tuple[tuple[str, str], ...]
    base: str

    def env_list(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.env]

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def instructions(text: str) -> list[Instruction]:
    """The file's instructions, continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    if pending.strip():
        keyword, _, arguments = pending.strip().partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage; each group starts with its FROM (ARGs before the first FROM
    form a group of their own only when present)."""
    groups: list[list[Instruction]] = [[]]
    for instruction in instructions(text):
        if instruction.keyword == "FROM" and groups[-1]:
            groups.append([])
        groups[-1].append(instruction)
    return [group for group in groups if group]


def substitute(value: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda match: variables.get(match.group(1) or match.group(2), ""), value)


def pairs(arguments: str, variables: dict[str, str]) -> list[tuple[str, str]]:
    """`KEY=VALUE` pairs as ENV, LABEL and ARG write them (values may be quoted)."""
    result = []
    for word in shlex.split(arguments):
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"expected KEY=VALUE, got {word!r}")
        result.append((key, substitute(value, variables)))
    return result


def _command(arguments: str) -> tuple[str, ...]:
    if arguments.startswith("["):
        words = json.loads(arguments)
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise ValueError(f"expected a JSON list of strings, got {arguments!r}")
        return tuple(words)
    return ("/bin/sh", "-c", arguments)


def runtime(text: str) -> Runtime:
    """The final stage's runtime settings; a later ENV or LABEL of the same key wins, as in Docker."""
    final = stages(text)[-1]
    base = final[0].arguments.split()[0] if final and final[0].keyword == "FROM" else ""
    variables: dict[str, str] = {}
    env: dict[str, str] = {}
    labels: dict[str, str] = {}
    user, working_dir = "", "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    for instruction in final:
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            variables[name] = substitute(default, variables)
        elif keyword == "ENV":
            for key, value in pairs(arguments, {**variables, **env}):
                env[key] = value
        elif keyword == "LABEL":
            labels.update(pairs(arguments, {**variables, **env}))
        elif keyword == "USER":
            user = substitute(arguments, {**variables, **env})
        elif keyword == "WORKDIR":
            working_dir = substitute(arguments, {**variables, **env})
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = _command(arguments), ()
        elif keyword == "CMD":
            cmd = _command(arguments)
    return Runtime(
        user=user,
        entrypoint=entrypoint,
        cmd=cmd,
        env=tuple(env.items()),
        working_dir=working_dir,
        labels=tuple(labels.items()),
        base=base,
    )
