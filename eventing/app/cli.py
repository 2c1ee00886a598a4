"""The ``eventing`` command line.

``run`` starts the system; ``validate`` checks manifests; ``send`` posts an event like
``kn event send``; ``status`` and ``dlq`` read a running system through its admin API
(every read command has ``--output json|yaml|table``, ``--json`` for short);
``cesql`` evaluates an expression against an event; ``explain`` and ``tail`` show
which triggers an event matches and why not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from eventing.app import cmd_explain, cmd_jobs, cmd_tail, commands
from eventing.app.output import add_output
from eventing.app.process import process_id
from eventing.app.runtime import Running, RuntimeSettings, serve_forever
from eventing.app.system import StoreSettings
from eventing.ingress.server import IngressSettings
from eventing.resources.refs import Platform
from eventing.tls import ClientTls, ServerTls
from eventing.workloads.decisionlog import DEFAULT_MAX_BYTES

DEFAULT_ADMIN = "http://127.0.0.1:8090"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventing",
        description="A Knative-style event mesh with queue-depth autoscaling, on one machine.",
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    _add_run(sub)
    _add_reads(sub)
    _add_dlq(sub)
    cmd_explain.add_parser(sub, DEFAULT_ADMIN)
    cmd_tail.add_parser(sub, DEFAULT_ADMIN)
    cmd_jobs.add_parser(sub)
    _add_simulate(sub)
    return parser


Sub = Any  # argparse's _SubParsersAction is private


def _add_run(sub: Sub) -> None:
    run = sub.add_parser("run", help="run the system described by a directory of YAML")
    run.add_argument(
        "directory",
        type=Path,
        nargs="?",
        help="the manifests; omit it with --kubernetes to read them from the API server",
    )
    run.add_argument("--host", default="127.0.0.1", help="ingress bind address (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8080, help="ingress port (default 8080)")
    run.add_argument(
        "--admin-host", default="127.0.0.1", help="admin API bind address (default 127.0.0.1)"
    )
    run.add_argument("--admin-port", type=int, default=8090, help="admin API port (default 8090)")
    run.add_argument(
        "--tls-cert", type=Path, help="certificate (PEM) for https on ingress and admin"
    )
    run.add_argument("--tls-key", type=Path, help="its private key (PEM); both reloaded on change")
    run.add_argument(
        "--tls-ca-bundle", type=Path, help="CAs (PEM) trusted for https:// subscribers"
    )
    run.add_argument("--tls-client-cert", type=Path, help="client certificate for https delivery")
    run.add_argument("--tls-client-key", type=Path, help="its private key")
    run.add_argument(
        "--admin-allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name or address the admin API answers to (repeatable; "
        "loopback names and the bind address always are)",
    )
    run.add_argument(
        "--no-admin-token",
        action="store_true",
        help="do not require the admin token (<data dir>/admin.token) for admin writes, "
        "dead letters and the tail",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".eventing"),
        help="where the embedded broker keeps its store (default .eventing)",
    )
    run.add_argument(
        "--process-id",
        default=None,
        help="this process's stable id in logs and /metrics (default: EVENTING_PROCESS_ID, "
        "else host name + a digest of the data dir)",
    )
    run.add_argument(
        "--fsync",
        choices=["full", "normal"],
        default="full",
        help="full: a 202 survives power loss (default); normal: survives "
        "a crash of the process only",
    )
    run.add_argument(
        "--max-body",
        type=int,
        default=1024 * 1024,
        help="largest accepted request body in bytes (default 1 MiB)",
    )
    run.add_argument(
        "--max-store-mb",
        type=int,
        default=1024,
        help="store bound in MiB before ingress answers 503 (default 1024)",
    )
    run.add_argument(
        "--decisions-max-mb",
        type=_positive_int,
        default=DEFAULT_MAX_BYTES // (1024 * 1024),
        help="size in MiB of decisions.jsonl before it is rotated to decisions.jsonl.1 "
        f"(default {DEFAULT_MAX_BYTES // (1024 * 1024)})",
    )
    run.add_argument(
        "--max-store-events",
        type=int,
        default=1_000_000,
        help="store bound in events before ingress answers 503 (default 1000000)",
    )
    run.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds in-flight deliveries may take at shutdown (default 10)",
    )
    run.add_argument(
        "--ingress-workers",
        default="auto",
        help="processes that parse ingress HTTP requests, so the broker can use more than "
        "one core; 0 serves the ingress from the main process (default auto: one fewer "
        "than the CPUs, at most 2)",
    )
    run.add_argument("--log-level", default="INFO")
    run.add_argument(
        "--otel-endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
        help="OTLP/HTTP collector for spans of events with a traceparent "
        "(default $OTEL_EXPORTER_OTLP_ENDPOINT; none: no spans)",
    )
    run.add_argument(
        "--kubernetes",
        action="store_true",
        help="running against Kubernetes: refs to Services resolve to their cluster URL "
        "(http://NAME.NAMESPACE.svc.cluster.local)",
    )
    run.add_argument(
        "--kubeconfig",
        help="credentials for the API server Kubernetes workloads scale through "
        "(default $KUBECONFIG, ~/.kube/config, or the pod's service account)",
    )
    run.add_argument(
        "--namespace",
        help="with --kubernetes and no directory: read only this namespace's resources",
    )
    run.add_argument(
        "--no-watch",
        action="store_true",
        help="read the manifests (or the API server) once at start; by default changes "
        "are applied live (docs/operating.md, Live reload)",
    )
    run.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        help="seconds between looks at the manifest directory (default 1)",
    )
    run.set_defaults(func=_run)


def _add_reads(sub: Sub) -> None:
    validate = sub.add_parser("validate", help="check a directory of manifests")
    validate.add_argument("directory", type=Path)
    add_output(validate)
    validate.add_argument(
        "--kubernetes",
        action="store_true",
        help="running against Kubernetes: refs to Services resolve to their cluster URL "
        "(http://NAME.NAMESPACE.svc.cluster.local)",
    )
    validate.add_argument(
        "--partial",
        action="store_true",
        help="the manifests are part of a larger set: a reference to a resource that is "
        "not here (a Trigger's Broker, applied later) is a warning, not an error",
    )
    validate.set_defaults(func=commands.validate)

    send = sub.add_parser("send", help="send one event to a broker (like kn event send)")
    send.add_argument(
        "--to",
        default="http://127.0.0.1:8080/default/default",
        help="broker URL (default http://127.0.0.1:8080/default/default)",
    )
    send.add_argument("--type", required=True)
    send.add_argument("--source", default="eventing-cli")
    send.add_argument("--id", help="event id (default: a new UUID)")
    send.add_argument("--subject")
    send.add_argument("--data", help="the payload (JSON or text)")
    send.add_argument("--data-file", type=Path, help="read the payload from a file")
    send.add_argument(
        "--content-type",
        help="datacontenttype (default application/json "
        "when the data parses as JSON, else text/plain)",
    )
    send.add_argument(
        "--ext",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extension attribute (repeatable)",
    )
    send.add_argument("--mode", choices=["binary", "structured"], default="binary")
    send.add_argument("--json", action="store_true", help="print the result as JSON")
    send.set_defaults(func=commands.send)

    status = sub.add_parser("status", help="brokers, triggers and sources of a running system")
    status.add_argument("--admin", default=DEFAULT_ADMIN, help=f"default {DEFAULT_ADMIN}")
    add_output(status)
    status.set_defaults(func=commands.status)

    cesql = sub.add_parser("cesql", help="evaluate a CESQL expression against an event")
    cesql.add_argument("expression")
    cesql.add_argument("--event", type=Path, help="a structured JSON event file")
    cesql.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an attribute of the event (repeatable)",
    )
    cesql.add_argument(
        "--data",
        help="the event's data (JSON unless --attr datacontenttype=... says otherwise), "
        "for data. paths, our extension",
    )
    add_output(cesql)
    cesql.set_defaults(func=commands.cesql)


def _add_dlq(sub: Sub) -> None:
    dlq = sub.add_parser("dlq", help="the built-in dead-letter store")
    dlq_sub = dlq.add_subparsers(metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="list dead letters")
    dlq_list.add_argument("--trigger", help="only this trigger (namespace/name)")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_show = dlq_sub.add_parser("show", help="one dead letter, with its data")
    dlq_show.add_argument("id", type=int)
    dlq_replay = dlq_sub.add_parser("replay", help="deliver dead letters again")
    dlq_replay.add_argument("ids", type=int, nargs="*")
    dlq_replay.add_argument(
        "--all", action="store_true", help="every dead letter (of --trigger if given)"
    )
    dlq_replay.add_argument("--trigger")
    dlq_delete = dlq_sub.add_parser("delete", help="forget dead letters for good")
    dlq_delete.add_argument("ids", type=int, nargs="+")
    for p, func in (
        (dlq_list, commands.dlq_list),
        (dlq_show, commands.dlq_show),
        (dlq_replay, commands.dlq_replay),
        (dlq_delete, commands.dlq_delete),
    ):
        p.add_argument("--admin", default=DEFAULT_ADMIN)
        add_output(p)
        p.set_defaults(func=func)


def _add_simulate(sub: Sub) -> None:
    from eventing.autoscaler.simulate import cli as simulate

    parser = sub.add_parser(
        "simulate",
        help="compare our autoscaler with KEDA and Knative on traces (or your own)",
        description="Trace-driven simulation of the default scaling policy against "
        "re-implementations of KEDA + HPA and Knative KPA (see docs/autoscaling.md).",
    )
    simulate.add_arguments(parser)
    parser.set_defaults(func=simulate.run)


def _run(args: argparse.Namespace) -> int:
    ident = process_id(args.data_dir, args.process_id)
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s {ident} %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:  # client libraries' chatter (rebalances, ...)
        for name in ("aiokafka", "aiormq", "aio_pika"):
            logging.getLogger(name).setLevel(logging.WARNING)
    settings = RuntimeSettings(
        process_id=ident,
        host=args.host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        admin_token=not args.no_admin_token,
        admin_allowed_hosts=tuple(args.admin_allow_host),
        drain_timeout=args.drain_timeout,
        ingress_workers=_workers(args.ingress_workers),
        log_level=args.log_level.upper(),
        hard_timeout=max(30.0, args.drain_timeout + 20.0),
        store=StoreSettings(
            data_dir=args.data_dir,
            synchronous=args.fsync.upper(),
            max_bytes=args.max_store_mb * 1024 * 1024,
            max_events=args.max_store_events,
            decisions_max_bytes=args.decisions_max_mb * 1024 * 1024,
            platform=Platform(
                kubernetes=args.kubernetes, kubeconfig=args.kubeconfig, namespace=args.namespace
            ),
            delivery_tls=_client_tls(args),
        ),
        tls=_server_tls(args),
        ingress=IngressSettings(max_body_bytes=args.max_body),
        otel_endpoint=args.otel_endpoint,
        watch=not args.no_watch,
        watch_interval=min(60.0, max(0.1, args.watch_interval)),
    )
    if args.directory is None and not args.kubernetes:
        print("eventing: give a directory of manifests, or --kubernetes", file=sys.stderr)
        return 2
    try:
        _install_uvloop()
        asyncio.run(serve_forever(args.directory, settings, _announce))
    except commands.USER_ERRORS as exc:
        print(f"eventing: {exc}", file=sys.stderr)
        return 1
    return 0


def _workers(value: str) -> int:
    if value == "auto":
        return max(0, min(2, (os.cpu_count() or 1) - 1))
    try:
        count = int(value)
    except ValueError:
        raise SystemExit(
            f"eventing: --ingress-workers must be a number or auto, not {value!r}"
        ) from None
    if not 0 <= count <= 64:
        raise SystemExit("eventing: --ingress-workers must be between 0 and 64")
    return count


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _announce(running: Running) -> None:
    lines = [
        f"eventing is running as process {running.process} (admin API {running.admin_url}, "
        f"status: eventing status --admin {running.admin_url})"
    ]
    for key, broker in running.system.brokers.items():
        kind = "durable" if broker.durable else "IN-MEMORY, lost on exit"
        ready = "" if broker.status().ready else ", NOT READY: server unreachable, retrying"
        lines.append(
            f"  broker {key} ({broker.broker_class}, {kind}{ready}): "
            f"POST {running.ingress_url}/{key}"
        )
    for key, trig in running.system.triggers.items():
        lines.append(f"  trigger {key} -> {trig.sink.target}")
    for source in running.sources:
        lines.append(f"  source {source.name} ({source.health.kind})")
    print("\n".join(lines), flush=True)


def dump(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False))


def _server_tls(args: argparse.Namespace) -> ServerTls | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("eventing: give --tls-cert and --tls-key together")
    return ServerTls(args.tls_cert, args.tls_key) if args.tls_cert is not None else None


def _client_tls(args: argparse.Namespace) -> ClientTls | None:
    if (args.tls_client_cert is None) != (args.tls_client_key is None):
        raise SystemExit("eventing: give --tls-client-cert and --tls-client-key together")
    if args.tls_ca_bundle is None and args.tls_client_cert is None:
        return None
    return ClientTls(args.tls_ca_bundle, args.tls_client_cert, args.tls_client_key)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (at most 1 TiB in bytes, in MiB)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1024 * 1024:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {1024 * 1024}")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
