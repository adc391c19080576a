"""Parse and validate the body of an on_join token request: libraries and versions side by side.

Two measurements in one run, each the best of several rounds, in microseconds per body:

- the candidates for the request models, each doing the same checks on the same body (names
  as LiveKit limits them, metadata and attributes, the requested agents): the hand-written
  checks, a pydantic v2 model and a msgspec struct;
- the package's own parse (``json.loads`` and ``parse_token_request``) as of a git revision
  (``--before``, default ``HEAD``) and as in the working tree, each in a fresh interpreter.

    python -m benchmarks.validation [--before REF] [--rounds N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import timeit
from pathlib import Path
from typing import Annotated, Any

import msgspec
from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr

from .report import write_markdown
from .revision import ROOT, checkout, measure_in

#: What livekit-client's TokenSource sends for a signed-in user asking for the agent.
BODY = json.dumps(
    {
        "participant_name": "Ada Lovelace",
        "participant_attributes": {"plan": "pro"},
        "room_config": {"agents": [{"agent_name": "guide"}]},
    }
).encode()

PACKAGE_PARSE = """
import json, sys, timeit
from flask_livekit_onboarding.token_request import parse_token_request
raw = sys.argv[1].encode()
parse = lambda: parse_token_request(json.loads(raw))
parse()
rounds, number = int(sys.argv[2]), 2000
print(min(timeit.repeat(parse, number=number, repeat=rounds)) / number * 1e6)
"""


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        raise ValueError("must not contain control characters")
    if len(value.encode()) > 256:
        raise ValueError("is longer than LiveKit's 256 bytes")
    return value


def _attributes(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        key.encode(), text.encode()
    if len(json.dumps(value)) > 64 * 1024:
        raise ValueError("is larger than 64 KiB")
    return value


def hand_written() -> Any:
    def parse() -> Any:
        body = json.loads(BODY)
        if set(body) - {"participant_name", "participant_attributes", "room_config"}:
            raise ValueError("unknown field")
        _name(body["participant_name"])
        attributes = body["participant_attributes"]
        if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
        ):
            raise ValueError("attributes")
        _attributes(attributes)
        agents = body["room_config"]["agents"]
        return [_name(agent["agent_name"]) for agent in agents]

    return parse


Name = Annotated[StrictStr, AfterValidator(_name)]


class PydanticAgent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    agent_name: Name
    metadata: StrictStr = ""
    deployment: StrictStr = ""


class PydanticRoomConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    agents: tuple[PydanticAgent, ...] = ()


class PydanticBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    participant_name: Name | None = None
    participant_attributes: Annotated[dict[str, StrictStr], AfterValidator(_attributes)] = {}
    room_config: PydanticRoomConfig | None = None


class MsgspecAgent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    agent_name: str
    metadata: str = ""
    deployment: str = ""

    def __post_init__(self) -> None:
        _name(self.agent_name)


class MsgspecRoomConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    agents: tuple[MsgspecAgent, ...] = ()


class MsgspecBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    participant_name: str | None = None
    participant_attributes: dict[str, str] = {}
    room_config: MsgspecRoomConfig | None = None

    def __post_init__(self) -> None:
        if self.participant_name is not None:
            _name(self.participant_name)
        _attributes(self.participant_attributes)


def with_pydantic() -> Any:
    return lambda: PydanticBody.model_validate_json(BODY)


def with_msgspec() -> Any:
    decoder = msgspec.json.Decoder(MsgspecBody)
    return lambda: decoder.decode(BODY)


def best(parse: Any, rounds: int, number: int = 2000) -> float:
    parse()
    return min(timeit.repeat(parse, number=number, repeat=rounds)) / number * 1e6


def package_parse(source: Path, rounds: int) -> float:
    return measure_in(source, PACKAGE_PARSE, BODY.decode(), str(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git revision measured as 'before'")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    options = parser.parse_args()

    lines = ["| parse + validate (on_join token request body) | µs per body |", "|---|---|"]
    for label, make in (
        ("hand-written checks", hand_written),
        ("pydantic v2 model", with_pydantic),
        ("msgspec struct", with_msgspec),
    ):
        lines.append(f"| {label} | {best(make(), options.rounds):.1f} |")
    with tempfile.TemporaryDirectory() as tmp:
        before = package_parse(checkout(options.before, Path(tmp)), options.rounds)
    after = package_parse(ROOT, options.rounds)
    lines.append(f"| package at `{options.before}` (before) | {before:.1f} |")
    lines.append(f"| package in this tree (after) | {after:.1f} |")
    write_markdown(lines, options.out)


if __name__ == "__main__":
    main()
