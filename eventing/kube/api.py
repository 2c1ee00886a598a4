"""The one module that imports the official ``kubernetes`` client (an import-linter
contract says so): a small, blocking facade over the few calls eventing makes.

Why a facade: the client is synchronous (urllib3), so every call here runs in a worker
thread (the callers use :func:`asyncio.to_thread`), with a connect and a read timeout on
each request so a hung API server cannot hold a thread for long. Responses are parsed
as plain JSON (``_preload_content=False``) instead of the client's generated models,
which is faster for pod lists and works for any kind, including custom resources,
through the same ``/apis/{group}/{version}/...`` paths.

Errors become :class:`KubeError` with the HTTP status (``None`` when the API server
could not be reached) and a short message taken from the ``Status`` body; response
headers and request bodies never go into it, so no token can leak into status or logs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

#: (connect, read) timeout of one request, seconds.
REQUEST_TIMEOUT = (3.0, 10.0)
MAX_MESSAGE = 300


class KubeError(Exception):
    """A failed API call: ``status`` is the HTTP status, ``None`` if unreachable."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(message[:MAX_MESSAGE])


@dataclass(frozen=True)
class ApiResource:
    """What discovery says about a kind: its plural and whether it can be scaled."""

    plural: str
    namespaced: bool
    scalable: bool


class KubeApi:
    """A connection to one API server (kubeconfig, or the pod's service account)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._core = kubernetes.client.CoreV1Api(client)
        self._batch = kubernetes.client.BatchV1Api(client)

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, *, pool: int = 0
    ) -> KubeApi:
        """Load credentials as kubectl does: ``kubeconfig`` or ``$KUBECONFIG`` or
        ``~/.kube/config``; inside a pod, its service account. Blocking (reads files).
        ``pool``: connections kept open (0: the client's default), one per concurrent
        watch for :meth:`watch_objects`."""
        path = kubeconfig or os.environ.get("KUBECONFIG")
        try:
            config = kubernetes.client.Configuration()
            if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                kubernetes.config.load_incluster_config(client_configuration=config)
            else:
                kubernetes.config.load_kube_config(
                    config_file=path,
                    context=context,
                    client_configuration=config,
                    persist_config=False,
                )
            config.retries = 0  # no hidden retries in urllib3: we back off ourselves
            if pool:
                config.connection_pool_maxsize = pool
            client = kubernetes.client.ApiClient(config)
        except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
            where = path or "~/.kube/config"
            raise KubeError(None, f"cannot load Kubernetes credentials ({where}): {exc}") from None
        return cls(client)

    def close(self) -> None:
        self._client.close()

    # -- calls (blocking: run them in a thread) ------------------------------------

    def api_resource(self, api_version: str, kind: str) -> ApiResource:
        """Discover ``kind`` in ``api_version`` (``group/version``)."""
        group, version = split_api_version(api_version)
        if not group:
            raw = self._call(self._core.get_api_resources)
        else:
            raw = self._call(self._custom.get_api_resources, group, version)
        names = {r.get("name", "") for r in raw.get("resources", [])}
        for r in raw.get("resources", []):
            if r.get("kind") == kind and "/" not in r.get("name", "/"):
                return ApiResource(
                    plural=r["name"],
                    namespaced=bool(r.get("namespaced")),
                    scalable=f"{r['name']}/scale" in names,
                )
        raise KubeError(404, f"the API server has no kind {kind} in {api_version}")

    def get_scale(self, api_version: str, plural: str, namespace: str, name: str) -> Any:
        group, version = split_api_version(api_version)
        return self._call(
            self._custom.get_namespaced_custom_object_scale, group, version, namespace, plural, name
        )

    def patch_scale(
        self, api_version: str, plural: str, namespace: str, name: str, replicas: int
    ) -> Any:
        group, version = split_api_version(api_version)
        return self._call(
            self._custom.patch_namespaced_custom_object_scale,
            group,
            version,
            namespace,
            plural,
            name,
            {"spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json",
        )

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, body: Any
    ) -> Any:
        group, version = split_api_version(api_version)
        return self._call(
            self._custom.patch_namespaced_custom_object_status,
            group,
            version,
            namespace,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def get_object(self, api_version: str, plural: str, namespace: str, name: str) -> Any:
        group, version = split_api_version(api_version)
        return self._call(
            self._custom.get_namespaced_custom_object, group, version, namespace, plural, name
        )

    def list_objects(self, api_version: str, plural: str, namespace: str | None) -> list[Any]:
        """Every object of a (non-core) kind, in ``namespace`` or in all namespaces."""
        group, version = split_api_version(api_version)
        if namespace is None:
            raw = self._call(self._custom.list_cluster_custom_object, group, version, plural)
        else:
            raw = self._call(
                self._custom.list_namespaced_custom_object, group, version, namespace, plural
            )
        items = raw.get("items", [])
        return items if isinstance(items, list) else []

    def list_with_version(
        self, api_version: str, plural: str, namespace: str | None
    ) -> tuple[list[Any], str]:
        """:meth:`list_objects` and the list's ``resourceVersion`` (where a watch starts)."""
        group, version = split_api_version(api_version)
        if namespace is None:
            raw = self._call(self._custom.list_cluster_custom_object, group, version, plural)
        else:
            raw = self._call(
                self._custom.list_namespaced_custom_object, group, version, namespace, plural
            )
        items = raw.get("items", [])
        version_seen = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        return (items if isinstance(items, list) else []), version_seen

    def watch_objects(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        resource_version: str,
        timeout: int,
        handle: WatchHandle,
    ) -> Iterator[dict[str, Any]]:
        """The changes of a kind from ``resource_version`` on, as ``{"type", "object"}``
        dicts (ADDED, MODIFIED, DELETED, BOOKMARK), for at most ``timeout`` seconds (the
        API server ends the watch then). Blocking: iterate it in a worker thread;
        ``handle.close()`` from another thread ends it at once. A watch too old to
        resume raises ``KubeError(410)``: list again."""
        group, version = split_api_version(api_version)
        options: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "timeout_seconds": timeout,
            "allow_watch_bookmarks": True,
            "_preload_content": False,
            "_request_timeout": (REQUEST_TIMEOUT[0], timeout + REQUEST_TIMEOUT[1]),
        }
        try:
            if namespace is None:
                response = self._custom.list_cluster_custom_object(
                    group, version, plural, **options
                )
            else:
                response = self._custom.list_namespaced_custom_object(
                    group, version, namespace, plural, **options
                )
        except ApiException as exc:
            raise KubeError(exc.status, _status_message(exc)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        handle.response = response
        try:
            for line in iter_resp_lines(response):
                if handle.closed:
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    code = status.get("code")
                    raise KubeError(code if isinstance(code, int) else 500,
                                    str(status.get("message") or "watch error"))  # fmt: skip
                yield event
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not handle.closed:
                raise self._unreachable(exc) from None
        except ValueError as exc:
            raise KubeError(502, f"unexpected answer from the API server: {exc}") from None
        finally:
            handle.close()

    def _unreachable(self, exc: BaseException) -> KubeError:
        host = self._client.configuration.host
        return KubeError(None, f"API server {host} unreachable: {type(exc).__name__}")

    def list_pods(self, namespace: str, selector: str) -> list[Any]:
        # resourceVersion=0: served from the API server's watch cache, not etcd (may lag
        # by a moment, which a poll tolerates), so a 1 s poll of many pods stays cheap.
        raw = self._call(
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            resource_version="0",
        )
        items = raw.get("items", [])
        return items if isinstance(items, list) else []

    # -- jobs per event (eventing.kube.jobs) -----------------------------------------

    def create_job(self, namespace: str, body: dict[str, Any]) -> Any:
        return self._call(self._batch.create_namespaced_job, namespace, body)

    def list_jobs(self, namespace: str | None, selector: str) -> list[Any]:
        """Jobs matching ``selector`` in ``namespace`` (all namespaces if ``None``);
        a consistent read, so a Job created just before is in it."""
        if namespace is None:
            raw = self._call(self._batch.list_job_for_all_namespaces, label_selector=selector)
        else:
            raw = self._call(self._batch.list_namespaced_job, namespace, label_selector=selector)
        items = raw.get("items", [])
        return items if isinstance(items, list) else []

    def delete_job(self, namespace: str, name: str) -> Any:
        """Delete a Job now; the garbage collector removes its pods and Secret after
        (propagation ``Background``, as ``kubectl delete job`` does)."""
        return self._call(
            self._batch.delete_namespaced_job,
            name,
            namespace,
            body={"propagationPolicy": "Background"},
        )

    def create_secret(self, namespace: str, body: dict[str, Any]) -> Any:
        return self._call(self._core.create_namespaced_secret, namespace, body)

    def list_pods_in(self, namespace: str | None, selector: str) -> list[Any]:
        """Pods matching ``selector``, consistent read, one or all namespaces."""
        if namespace is None:
            raw = self._call(self._core.list_pod_for_all_namespaces, label_selector=selector)
        else:
            raw = self._call(self._core.list_namespaced_pod, namespace, label_selector=selector)
        items = raw.get("items", [])
        return items if isinstance(items, list) else []

    def pod_log(self, namespace: str, pod: str, container: str, limit_bytes: int) -> bytes:
        """A container's log through the API server (which asks the node's kubelet)."""
        return self._call(  # type: ignore[no-any-return]
            self._core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            limit_bytes=limit_bytes,
            _raw=True,
        )

    def _call(self, method: Any, *args: Any, _raw: bool = False, **kwargs: Any) -> Any:
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
            if _raw:
                return response.read()
            return json.loads(response.read())
        except ApiException as exc:
            raise KubeError(exc.status, _status_message(exc)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            host = self._client.configuration.host
            raise KubeError(None, f"API server {host} unreachable: {type(exc).__name__}") from None
        except ValueError as exc:  # not JSON
            raise KubeError(502, f"unexpected answer from the API server: {exc}") from None


class WatchHandle:
    """Lets another thread end a watch at once (shutdown, a cancelled feed)."""

    def __init__(self) -> None:
        self.response: Any = None
        self.closed = False

    def close(self) -> None:
        self.closed = True
        response = self.response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
            try:
                if shutdown is not None:
                    shutdown()
                response.close()
            except Exception:  # noqa: S110 - closing a stream that is already broken
                pass


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> ``("apps", "v1")``; ``v1`` (the core group) -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        message = str(body.get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return f"{exc.status} {exc.reason}: {message}" if message else f"{exc.status} {exc.reason}"
