"""Shared helpers for the protocol tests: drive a parser and normalise its events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from greenserve.errors import ProtocolError
from greenserve.protocol.events import END, Limits, Request
from greenserve.protocol.parser import BACKENDS, RequestParser, new_parser

__all__ = ["BACKENDS", "event_json", "feed_all", "limits_from", "normalise", "run"]


def limits_from(spec: dict[str, int] | None) -> Limits:
    return Limits(**spec) if spec else Limits()


def event_json(event: Any) -> Any:
    """One parser event in the corpus's JSON form."""
    if isinstance(event, Request):
        return {
            "request": {
                "method": event.method,
                "target": event.target.decode("latin-1"),
                "version": event.version,
                "headers": [
                    [name.decode("latin-1"), value.decode("latin-1")] for name, value in event.headers
                ],
                "keep_alive": event.keep_alive,
                "content_length": event.content_length,
                "chunked": event.chunked,
                "expect_continue": event.expect_continue,
                "upgrade": None if event.upgrade is None else event.upgrade.decode("latin-1"),
            }
        }
    if event is END:
        return "end"
    if isinstance(event, ProtocolError):
        return {"error": event.status}
    if isinstance(event, (bytes, bytearray, memoryview)):
        return {"body": bytes(event).decode("latin-1")}
    raise AssertionError(f"unexpected parser event {event!r}")


def normalise(events: Iterable[Any]) -> list[Any]:
    """Events as JSON values, adjacent body pieces merged, empty body pieces dropped."""
    out: list[Any] = []
    for event in events:
        item = event_json(event)
        if isinstance(item, dict) and "body" in item:
            if not item["body"]:
                continue
            if out and isinstance(out[-1], dict) and "body" in out[-1]:
                out[-1] = {"body": out[-1]["body"] + item["body"]}
                continue
        out.append(item)
    return out


def feed_all(parser: RequestParser, pieces: Iterable[bytes], eof: bool = False) -> None:
    for piece in pieces:
        parser.feed(piece)
    if eof:
        parser.feed_eof()


def run(backend: str, pieces: Iterable[bytes], limits: Limits | None = None, eof: bool = False) -> list[Any]:
    """Normalised events of a fresh parser fed ``pieces``."""
    parser = new_parser(backend, limits)
    feed_all(parser, pieces, eof)
    return normalise(parser.events)
