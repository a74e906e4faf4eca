"""A thin layer over the official `kubernetes` client: plain dicts in and out, one error type (`KubeError`).

The package is imported here, lazily, so that aidc imports without it; a missing package is one clear error.
Objects go out as the dicts `manifests` builds and come back as the API server's JSON (`_preload_content=False`),
so the backend reads the same shapes the Kubernetes API reference documents."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Obj = dict[str, Any]

INSTALL_HINT = "the kubernetes backend needs the kubernetes package: pip install 'aidc[kubernetes]'"
REQUEST_TIMEOUT = 30.0  # seconds for one API call: a hung API server must not stall the control loop forever


class KubeError(Exception):
    """An API call failed: `status` is the HTTP status (0: the API server could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def connect(kubeconfig: str | None, context: str | None) -> ApiClient:
    """An ApiClient configured as kubectl would be: the kubeconfig file named (or $KUBECONFIG, ~/.kube/config),
    or the pod's service account when running in a cluster and no file is named. Raises RuntimeError with the
    install hint when the package is missing, ValueError naming the field when the config cannot be loaded."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
            )
    except (config.ConfigException, OSError) as exc:
        field = "context" if context is not None and "context" in str(exc).lower() else "kubeconfig"
        raise ValueError(f"{field}: cannot load the Kubernetes configuration: {exc}") from exc
    configuration.retries = 1  # the control loop polls again anyway
    return client.ApiClient(configuration)


class KubeApi:
    """The calls the backend makes, in one namespace."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        from kubernetes import client

        self._client = api_client
        self._namespace = namespace
        self._core = client.CoreV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)

    @property
    def namespace(self) -> str:
        return self._namespace

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    # -------------------------------------------------------------------------------------- create

    def create(self, obj: Obj) -> Obj:
        """Create a Secret, Service, Job or Deployment from its manifest."""
        kind = obj["kind"]
        create = {
            "Secret": self._core.create_namespaced_secret,
            "Service": self._core.create_namespaced_service,
            "Job": self._batch.create_namespaced_job,
            "Deployment": self._apps.create_namespaced_deployment,
        }[kind]
        return self._call(create, self._namespace, obj)

    def set_owner(self, kind: str, name: str, owner: Obj) -> None:
        """Make `owner` (a created Job or Deployment) the owner of the Secret or Service `name`, so that the
        garbage collector deletes them with it."""
        reference = {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
        }
        patch = {"metadata": {"ownerReferences": [reference]}}
        method = self._core.patch_namespaced_secret if kind == "Secret" else self._core.patch_namespaced_service
        self._call(method, name, self._namespace, patch, _content_type="application/merge-patch+json")

    # -------------------------------------------------------------------------------------- read

    def list_jobs(self, selector: str) -> list[Obj]:
        return self._items(self._call(self._batch.list_namespaced_job, self._namespace, label_selector=selector))

    def list_deployments(self, selector: str) -> list[Obj]:
        return self._items(self._call(self._apps.list_namespaced_deployment, self._namespace, label_selector=selector))

    def list_pods(self, selector: str) -> list[Obj]:
        return self._items(self._call(self._core.list_namespaced_pod, self._namespace, label_selector=selector))

    def list_nodes(self) -> list[Obj]:
        return self._items(self._call(self._core.list_node))

    def read_job(self, name: str) -> Obj | None:
        return self._read(self._batch.read_namespaced_job, name)

    def read_deployment(self, name: str) -> Obj | None:
        return self._read(self._apps.read_namespaced_deployment, name)

    def pod_log(self, pod: str, container: str, limit_bytes: int | None) -> bytes:
        response = self._raw(
            self._core.read_namespaced_pod_log, pod, self._namespace, container=container, limit_bytes=limit_bytes
        )
        return bytes(response)

    # -------------------------------------------------------------------------------------- delete

    def delete_job(self, name: str, grace_seconds: int) -> bool:
        """Delete a Job and, first, its pods (Foreground); False when it was gone already."""
        return self._delete(
            self._batch.delete_namespaced_job, name, grace_period_seconds=grace_seconds, propagation_policy="Foreground"
        )

    def delete_deployment(self, name: str, grace_seconds: int) -> bool:
        return self._delete(
            self._apps.delete_namespaced_deployment,
            name,
            grace_period_seconds=grace_seconds,
            propagation_policy="Foreground",
        )

    def delete_pods(self, selector: str, grace_seconds: int) -> None:
        """Delete the pods matching `selector` with this grace: the kubelet sends SIGTERM now and SIGKILL after it.
        (The garbage collector deletes a Job's pods with their own terminationGracePeriodSeconds.)"""
        self._call(
            self._core.delete_collection_namespaced_pod,
            self._namespace,
            label_selector=selector,
            grace_period_seconds=grace_seconds,
        )

    def delete_secret(self, name: str) -> bool:
        return self._delete(self._core.delete_namespaced_secret, name)

    def delete_service(self, name: str) -> bool:
        return self._delete(self._core.delete_namespaced_service, name)

    # -------------------------------------------------------------------------------------- plumbing

    def _read(self, method: Any, name: str) -> Obj | None:
        try:
            return self._call(method, name, self._namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def _delete(self, method: Any, name: str, **options: Any) -> bool:
        try:
            self._call(method, name, self._namespace, **options)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    @staticmethod
    def _items(listing: Obj) -> list[Obj]:
        items = listing.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Obj:
        data = self._raw(method, *args, **kwargs)
        try:
            decoded = json.loads(data) if data else {}
        except ValueError as exc:
            raise KubeError(0, f"the API server's answer is not JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            raise KubeError(0, "the API server's answer is not a JSON object")
        return decoded

    def _raw(self, method: Any, *args: Any, **kwargs: Any) -> bytes:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            data = response.data
        except ApiException as exc:
            raise KubeError(int(exc.status or 0), _api_message(exc.status, exc.reason, exc.body)) from exc
        except HTTPError as exc:
            raise KubeError(0, f"cannot reach the Kubernetes API server: {exc}") from exc
        return bytes(data or b"")


def _api_message(status: int | None, reason: str | None, body: Any) -> str:
    """The message of a v1 Status body, else the HTTP reason."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if isinstance(text, str):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("message"):
            return f"{status} {parsed.get('reason') or reason}: {parsed['message']}"
    return f"{status} {reason}"
