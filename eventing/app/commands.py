"""The CLI's commands other than ``run``: each prints a table for people, or JSON with
``--json``, and returns the exit status (0 ok, 1 failure, 2 usage).

They are plain blocking functions: the CLI has no event loop of its own to protect,
and ``urllib`` needs no session management for one request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from eventing.app.output import output_format, render
from eventing.app.registry import kind_registry
from eventing.app.tables import print_dlq, print_status
from eventing.codec import http as binding
from eventing.codec.jsonformat import parse_structured
from eventing.errors import ConfigError, EventingError
from eventing.events import AttributeValue, Event, is_valid_name
from eventing.resources.loader import LoadError, load_resources, show_value
from eventing.resources.refs import Platform

USER_ERRORS = (LoadError, ConfigError, OSError)


def _print_doc(args: argparse.Namespace, payload: Any) -> None:
    """JSON, or YAML with ``--output yaml`` (the machine-readable forms of a read)."""
    if output_format(args) == "yaml":
        render(args, payload, print)
    else:
        print(json.dumps(payload, indent=2))


def structured(args: argparse.Namespace) -> bool:
    """``--json`` or ``--output json|yaml``: print the document, not the table."""
    return output_format(args) != "table"


def validate(args: argparse.Namespace) -> int:
    try:
        platform = Platform(kubernetes=getattr(args, "kubernetes", False))
        resources = load_resources(
            args.directory,
            kind_registry(),
            platform=platform,
            partial=getattr(args, "partial", False),
        )
    except LoadError as exc:
        if structured(args):
            _print_doc(
                args,
                {
                    "valid": False,
                    "errors": [
                        {
                            "file": e.file,
                            "line": e.line,
                            "resource": e.resource,
                            "path": e.path,
                            "value": show_value(e.value) if e.value is not None else None,
                            "message": e.message,
                        }
                        for e in exc.errors
                    ],
                },
            )
        else:
            for e in exc.errors:
                print(str(e), file=sys.stderr)
            print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    if structured(args):
        _print_doc(
            args,
            {
                "valid": True,
                "resources": resources.kinds(),
                "warnings": [
                    {
                        "file": w.file,
                        "line": w.line,
                        "resource": w.resource,
                        "path": w.path,
                        "value": show_value(w.value) if w.value is not None else None,
                        "message": w.message,
                    }
                    for w in resources.warnings
                ],
            },
        )
    else:
        for w in resources.warnings:
            print(f"warning: {w}", file=sys.stderr)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(resources.kinds().items()))
        print(f"valid: {counts or 'no resources'}")
    return 0


def _http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{url!r} is not an http:// or https:// URL")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


_TOKENS: dict[str, str | None] = {}


def admin_headers(admin: str) -> dict[str, str]:
    """``Authorization`` for the admin API at ``admin``: the token from
    ``$EVENTING_ADMIN_TOKEN``, else from the file the API names at ``GET /v1/auth``
    (readable only by the user who runs it), else none."""
    base = admin.rstrip("/")
    if base not in _TOKENS:
        token = os.environ.get("EVENTING_ADMIN_TOKEN") or _token_from_file(base)
        _TOKENS[base] = token
    token = _TOKENS[base]
    return {"Authorization": f"Bearer {token}"} if token else {}


def _token_from_file(base: str) -> str | None:
    try:
        status, _, body = _http("GET", base + "/v1/auth")
        where = json.loads(body or b"{}") if status == 200 else {}
    except (urllib.error.URLError, OSError, ValueError):
        return None
    path = where.get("tokenFile") if isinstance(where, dict) else None
    if not isinstance(path, str) or not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(1024).strip() or None
    except OSError:
        return None


def _admin_get(args: argparse.Namespace, path: str) -> Any:
    try:
        status, _, body = _http(
            "GET", args.admin.rstrip("/") + path, None, admin_headers(args.admin)
        )
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(
            f"cannot reach the admin API at {args.admin} ({exc}); "
            "is `eventing run` running? (--admin URL)"
        ) from None
    payload = json.loads(body or b"{}")
    if status >= 400:
        raise ConfigError(payload.get("error", f"HTTP {status}"))
    return payload


def _guarded(func: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            result: int = func(args)
        except (ConfigError, EventingError, ValueError) as exc:
            print(f"eventing: {exc}", file=sys.stderr)
            return 1
        return result

    wrapper.__doc__ = func.__doc__
    return wrapper


@_guarded
def status(args: argparse.Namespace) -> int:
    payload = _admin_get(args, "/v1/status")
    if structured(args):
        _print_doc(args, payload)
    else:
        print_status(payload)
    return 0


@_guarded
def dlq_list(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + (f"&trigger={args.trigger}" if args.trigger else "")
    payload = _admin_get(args, "/v1/dlq" + query)
    if structured(args):
        _print_doc(args, payload)
    else:
        print_dlq(payload["items"])
    return 0


@_guarded
def dlq_show(args: argparse.Namespace) -> int:
    payload = _admin_get(args, f"/v1/dlq/{args.id}")
    _print_doc(args, payload)
    return 0


def _admin_post(args: argparse.Namespace, path: str, payload: Any) -> tuple[int, Any]:
    try:
        code, _, raw = _http(
            "POST",
            args.admin.rstrip("/") + path,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **admin_headers(args.admin)},
        )
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the admin API at {args.admin} ({exc})") from None
    return code, json.loads(raw or b"{}")


@_guarded
def dlq_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        raise ConfigError("name dead-letter ids, or --all")
    if args.all:
        code, payload = _replay_all(args)
    else:
        code, payload = _admin_post(
            args, "/v1/dlq/replay", {"ids": args.ids, "all": False, "trigger": args.trigger}
        )
    if structured(args):
        _print_doc(args, payload)
    else:
        print(
            f"replayed {len(payload.get('replayed', []))}; "
            f"not found: {payload.get('missing') or 'none'}"
        )
        for failure in payload.get("failed", []):
            print(f"could not replay {failure['id']}: {failure['error']}", file=sys.stderr)
    return 0 if code == 200 else 1


def _replay_all(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """``--all``: the admin API replays at most 1000 dead letters per call, so call it
    until everything that was there at the start has been replayed (never more calls
    than that, so events that fail again meanwhile are not replayed twice), with
    progress on standard error when it is a terminal."""
    depths = [
        t.get("dlqDepth", 0)
        for t in _admin_get(args, "/v1/status").get("triggers", [])
        if args.trigger in (None, t.get("name"))
    ]
    total = sum(depths)
    code = 200
    merged: dict[str, list[Any]] = {"replayed": [], "missing": [], "failed": []}
    show = sys.stderr.isatty()
    calls = 0
    while calls == 0 or len(merged["replayed"]) + len(merged["failed"]) < total:
        calls += 1
        code, payload = _admin_post(
            args, "/v1/dlq/replay", {"ids": [], "all": True, "trigger": args.trigger}
        )
        done = payload.get("replayed", []) + payload.get("failed", [])
        merged["replayed"] += payload.get("replayed", [])
        merged["failed"] += payload.get("failed", [])
        if show:
            print(f"\rreplayed {len(merged['replayed'])} of {total}", end="", file=sys.stderr)
        if code >= 400 or not done:
            break
    if show and total:
        print(file=sys.stderr)
    return (200 if code < 400 and not merged["failed"] else max(code, 207)), merged


@_guarded
def dlq_delete(args: argparse.Namespace) -> int:
    code, payload = _admin_post(args, "/v1/dlq/delete", {"ids": args.ids})
    if structured(args):
        _print_doc(args, payload)
    else:
        print(f"deleted {payload.get('deleted', 0)} of {len(args.ids)}")
    return 0 if code == 200 and payload.get("deleted") == len(args.ids) else 1


def _parse_pairs(pairs: list[str], what: str) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not is_valid_name(name):
            raise ConfigError(f"{what} {pair!r}: use name=value with a lowercase a-z0-9 name")
        out[name] = value
    return out


@_guarded
def send(args: argparse.Namespace) -> int:
    data: bytes | None = None
    if args.data_file is not None:
        data = Path(args.data_file).read_bytes()
    elif args.data is not None:
        data = args.data.encode("utf-8")
    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": args.id or str(uuid.uuid4()),
        "source": args.source,
        "type": args.type,
    }
    if args.subject:
        attributes["subject"] = args.subject
    attributes.update(_parse_pairs(args.ext, "--ext"))
    if data is not None:
        attributes["datacontenttype"] = args.content_type or _guess_type(data)
    event = Event(attributes, data)
    headers, body = (
        binding.encode_structured(event)
        if args.mode == "structured"
        else binding.encode_binary(event)
    )
    try:
        code, _, raw = _http("POST", args.to, body, headers)
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach {args.to} ({exc})") from None
    ok = 200 <= code < 300
    if structured(args):
        _print_doc(
            args,
            {"status": code, "id": attributes["id"], "response": raw.decode("utf-8", "replace")},
        )
    else:
        detail = "" if ok else f": {raw.decode('utf-8', 'replace')}"
        print(f"{'sent' if ok else 'refused'} id={attributes['id']} -> HTTP {code}{detail}")
    return 0 if ok else 1


def _guess_type(data: bytes) -> str:
    try:
        json.loads(data)
    except ValueError:
        return "text/plain"
    return "application/json"


@_guarded
def cesql(args: argparse.Namespace) -> int:
    from triggers.cesql import explain

    attributes: dict[str, AttributeValue] = {
        "specversion": "1.0",
        "id": "1",
        "source": "/cli",
        "type": "cli.test",
    }
    data: bytes | None = None
    if args.event is not None:
        event = parse_structured(Path(args.event).read_bytes())
        attributes, data = dict(event.attributes), event.data
    attributes.update(_parse_pairs(args.attr, "--attr"))
    if getattr(args, "data", None) is not None:
        data = args.data.encode()
        attributes.setdefault("datacontenttype", "application/json")
    from triggers.cesql.payload import data_view  # data. paths (our extension) read it

    result = explain(args.expression, data_view(attributes, data, {}))
    if structured(args):
        _print_doc(args, result)
    else:
        error = result.get("error")
        print(f"value: {json.dumps(result.get('value'))}")
        if error:
            print(f"error: {error['kind']}: {error['message']}")
    return 0 if result.get("error") is None else 1
