"""The deployment configurations under deploy/, checked with Dagster's own config validation.

No cluster and no Docker daemon here: each dagster.yaml goes through the
instance schema (`dagster_instance_config`, what every Dagster process does at
start) and each class it names through that class's `config_type()`. The Helm
values are rendered into the dagster.yaml the chart would produce (the chart's
templates map camelCase keys to the instance's snake_case ones) and validated
the same way, their Kubernetes fragments through the Kubernetes client's models,
and every key is checked against the keys Dagster's chart 1.13 accepts.
A misspelled key anywhere must fail (see the negative tests at the end).
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
TEAM = DEPLOY / "dagster.yaml"
DOCKER = DEPLOY / "docker"
HELM = DEPLOY / "helm"
CODE_LOCATION_MODULE = "salesloft_pipeline.definitions"
# Sections of dagster.yaml that name a class whose own schema checks `config`.
CLASS_SECTIONS = (
    "run_coordinator", "run_launcher", "run_storage", "event_log_storage", "schedule_storage",
    "compute_logs", "scheduler", "local_artifact_storage",
)  # fmt: skip


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# -- dagster.yaml ---------------------------------------------------------------------
def validate_instance(config: dict[str, Any], where: Path) -> dict[str, Any]:
    """`config` validated as Dagster validates $DAGSTER_HOME/dagster.yaml; raises DagsterInvalidConfigError."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(where))
    for section in CLASS_SECTIONS:
        if section not in config:
            continue
        # ConfigurableClassData maps the documented `dagster.core...` modules to where they live now.
        data = ConfigurableClassData(config[section]["module"], config[section]["class"], "")
        klass = class_from_code_pointer(data.module_name, data.class_name)
        result = validate_config(klass.config_type(), config[section].get("config") or {})
        if not result.success:
            raise DagsterInvalidConfigError(f"{section}: {klass.__name__} config", result.errors, config[section])
    return dict(validated)


def test_laptop_instance_config_is_still_valid(tmp_path: Path) -> None:
    validated = validate_instance(read_yaml(ROOT / "dagster.yaml"), tmp_path)
    assert "sqlite" in validated["storage"]


def test_team_instance_config_is_valid_dagster_config(tmp_path: Path) -> None:
    validated = validate_instance(read_yaml(TEAM), tmp_path)
    postgres = validated["storage"]["postgres"]["postgres_db"]
    # Connection settings come from the environment, never from the file.
    for field, variable in {
        "hostname": "DAGSTER_PG_HOST", "username": "DAGSTER_PG_USERNAME",
        "password": "DAGSTER_PG_PASSWORD", "db_name": "DAGSTER_PG_DB",
    }.items():  # fmt: skip
        assert postgres[field] == {"env": variable}
    assert validated["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert validated["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert validated["run_monitoring"]["enabled"] is True
    assert validated["telemetry"] == {"enabled": False}


def test_the_salesloft_pool_is_the_one_the_default_limit_governs() -> None:
    """The pools' default limit covers `salesloft_api` only because no other pool exists."""
    from salesloft_pipeline.defs.extract.assets import POOL
    from salesloft_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    pools = {assets_def.node_def.pool for assets_def in graph.assets_defs if assets_def.is_executable}
    assert pools - {None} == {POOL} == {"salesloft_api"}


# -- Docker -----------------------------------------------------------------------------
def env_example_names() -> list[str]:
    lines = (DOCKER / ".env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def test_docker_instance_config_is_valid_and_the_team_config_plus_the_docker_launcher(tmp_path: Path) -> None:
    docker = read_yaml(DOCKER / "dagster.yaml")
    validate_instance(docker, tmp_path)
    launcher = docker.pop("run_launcher")
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert docker == read_yaml(TEAM), "deploy/docker/dagster.yaml drifted from deploy/dagster.yaml"


def test_docker_runs_get_every_setting_by_name_and_no_value() -> None:
    env_vars = read_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]["env_vars"]
    assert all("=" not in name for name in env_vars), "values never go into dagster.yaml"
    # Runs need everything in .env but the endpoint's webhook secret.
    assert set(env_vars) == set(env_example_names()) - {"SALESLOFT_WEBHOOK_SECRET"}
    assert {"SALESLOFT_CLIENT_ID", "SALESLOFT_CLIENT_SECRET", "SALESLOFT_REFRESH_TOKEN",
            "SALESLOFT_OAUTH_STORE_URL", "SALESLOFT_API_KEY"} <= set(env_vars)  # fmt: skip


def test_docker_compose_wires_the_services_together() -> None:
    compose = read_yaml(DOCKER / "docker-compose.yaml")
    services = compose["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon", "webhooks"}
    launcher = read_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]
    assert compose["networks"]["salesloft_pipeline"]["name"] == launcher["network"]

    workspace = read_yaml(DOCKER / "workspace.yaml")
    assert process_workspace_config(workspace).success
    [server] = [entry["grpc_server"] for entry in workspace["load_from"]]
    code = services["user_code"]
    command = code["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == CODE_LOCATION_MODULE
    assert (server["host"], str(server["port"])) == ("user_code", command[command.index("-p") + 1])
    # Run containers use the code server's image: the one compose builds.
    assert code["environment"]["DAGSTER_CURRENT_IMAGE"] == code["image"]
    for name in ("webserver", "daemon", "webhooks"):
        assert services[name]["image"] == code["image"], name
        assert services[name]["env_file"] == ".env", name
    for name in ("webserver", "daemon"):
        assert "/opt/dagster/dagster_home/workspace.yaml" in services[name]["command"], name
        assert "/var/run/docker.sock:/var/run/docker.sock" in services[name]["volumes"], name
    assert services["webhooks"]["command"][:3] == ["salesloft-pipeline", "webhooks", "serve"]

    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "COPY deploy/docker/dagster.yaml deploy/docker/workspace.yaml ${DAGSTER_HOME}/" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile


def test_docker_secrets_stay_out_of_the_repository() -> None:
    assert ".env" in (DOCKER / ".gitignore").read_text().split()
    for line in (DOCKER / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|CLIENT_ID", name):
            assert value == "", f"{name} has a value in .env.example"
    compose = read_yaml(DOCKER / "docker-compose.yaml")
    for service in compose["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY", name):
                assert str(value).startswith("${"), f"{name} is inline in docker-compose.yaml"


# -- Helm -------------------------------------------------------------------------------
ANY = object()  # free-form (Kubernetes objects, maps of env/labels): not checked here
IMAGE = {"repository": str, "tag": str, "pullPolicy": str}
ENV_LIST = [ANY]
NAMED = [{"name": str, "optional": bool}]  # ConfigMapEnvSource / SecretEnvSource
PROBE = ANY
WORKERS = {"useThreads": bool, "numWorkers": int, "numSubmitWorkers": int}
TAG_LIMITS = [{"key": str, "value": ANY, "limit": int}]
POD = {
    "annotations": ANY, "nodeSelector": ANY, "affinity": ANY, "tolerations": ANY, "podSecurityContext": ANY,
    "securityContext": ANY, "resources": ANY, "livenessProbe": PROBE, "readinessProbe": PROBE,
    "startupProbe": PROBE, "labels": ANY, "volumes": ANY, "volumeMounts": ANY, "schedulerName": str,
}  # fmt: skip
# The keys of Dagster's chart 1.13 (its values.yaml and the Pydantic models its
# values.schema.json is generated from) for the sections deploy/helm/values.yaml sets.
CHART_KEYS: dict[str, Any] = {
    "global": {"postgresqlSecretName": str, "dagsterHome": str, "serviceAccountName": str,
               "celeryConfigSecretName": str},
    "nameOverride": str, "fullnameOverride": str, "rbacEnabled": bool, "imagePullSecrets": ANY,
    "generatePostgresqlPasswordSecret": bool, "generateCeleryConfigSecret": bool,
    "postgresql": {"enabled": bool, "image": IMAGE, "postgresqlHost": str, "postgresqlUsername": str,
                   "postgresqlPassword": str, "postgresqlDatabase": str, "postgresqlParams": ANY,
                   "postgresqlScheme": str, "service": {"port": int}},
    "dagsterWebserver": {**POD, "replicaCount": int, "image": IMAGE, "nameOverride": str, "pathPrefix": str,
                         "service": ANY, "workspace": ANY, "enableReadOnly": bool, "dbStatementTimeout": int,
                         "dbPoolRecycle": int, "logLevel": str, "env": ENV_LIST, "envConfigMaps": NAMED,
                         "envSecrets": NAMED, "deploymentLabels": ANY},
    "dagster-user-deployments": {
        "enabled": bool, "enableSubchart": bool, "imagePullSecrets": ANY,
        "deployments": [{**POD, "name": str, "image": IMAGE, "dagsterApiGrpcArgs": [str], "codeServerArgs": [str],
                         "includeConfigInLaunchedRuns": {"enabled": bool}, "deploymentNamespace": str,
                         "port": int, "replicaCount": int, "env": ENV_LIST, "envConfigMaps": NAMED,
                         "envSecrets": NAMED, "initContainers": ANY, "sidecarContainers": ANY,
                         "deploymentStrategy": ANY, "service": ANY}],
    },
    "runLauncher": {
        "type": str,
        "config": {
            "k8sRunLauncher": {"image": IMAGE, "imagePullPolicy": str, "jobNamespace": str,
                               "loadInclusterConfig": bool, "kubeconfigFile": str, "envConfigMaps": NAMED,
                               "envSecrets": NAMED, "envVars": [str], "volumeMounts": ANY, "volumes": ANY,
                               "labels": ANY, "failPodOnRunFailure": bool, "resources": ANY,
                               "schedulerName": str, "securityContext": ANY,
                               "runK8sConfig": {"containerConfig": ANY, "podSpecConfig": ANY,
                                                "podTemplateSpecMetadata": ANY, "jobSpecConfig": ANY,
                                                "jobMetadata": ANY}},
            "celeryK8sRunLauncher": ANY, "customRunLauncher": ANY,
        },
    },
    "dagsterDaemon": {
        **POD, "enabled": bool, "image": IMAGE, "heartbeatTolerance": int, "env": ENV_LIST,
        "envConfigMaps": NAMED, "envSecrets": NAMED, "deploymentLabels": ANY, "logFormat": str,
        "checkDbReadyInitContainer": bool, "initContainerResources": ANY, "extraContainers": ANY,
        "extraPrependedInitContainers": ANY,
        "runCoordinator": {
            "enabled": bool, "type": str,
            "config": {"queuedRunCoordinator": {"maxConcurrentRuns": int, "tagConcurrencyLimits": TAG_LIMITS,
                                                "dequeueIntervalSeconds": int, "dequeueNumWorkers": int,
                                                "dequeueUseThreads": bool,
                                                "blockOpConcurrencyLimitedRuns": {"enabled": bool,
                                                                                  "opConcurrencySlotBuffer": int}},
                       "customRunCoordinator": ANY},
        },
        # A free map in the chart: its keys are checked by rendering (chart_instance_config).
        "runMonitoring": ANY,
        "runRetries": {"enabled": bool, "maxRetries": int, "retryOnAssetOrOpFailure": bool},
        "sensors": WORKERS, "schedules": WORKERS, "backfills": WORKERS,
    },
    "concurrency": {"enabled": bool, "pools": {"defaultLimit": int, "granularity": str, "opGranularityRunBuffer": int},
                    "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": TAG_LIMITS}},
    "telemetry": {"enabled": bool},
    "computeLogManager": ANY, "pythonLogs": ANY, "scheduler": ANY, "rabbitmq": ANY, "redis": ANY, "flower": ANY,
    "ingress": ANY, "busybox": ANY, "migrate": ANY, "serviceAccount": ANY, "retention": ANY,
    "additionalInstanceConfig": ANY, "extraManifests": ANY,
}  # fmt: skip


def unknown_keys(values: Any, schema: Any, path: str = "") -> Iterator[str]:
    """Paths in `values` that `schema` does not know, or whose value has the wrong type."""
    if schema is ANY or values is None:
        return
    if isinstance(schema, dict):
        if not isinstance(values, dict):
            yield f"{path or '<root>'}: expected a map"
            return
        for key, value in values.items():
            if key not in schema:
                yield f"{path}.{key}".lstrip(".")
            else:
                yield from unknown_keys(value, schema[key], f"{path}.{key}")
    elif isinstance(schema, list):
        if not isinstance(values, list):
            yield f"{path}: expected a list"
            return
        for index, item in enumerate(values):
            yield from unknown_keys(item, schema[0], f"{path}[{index}]")
    elif not isinstance(values, schema) or (schema is int and isinstance(values, bool)):
        yield f"{path}: expected {schema.__name__}, not {type(values).__name__}"


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def snake_keys(values: dict[str, Any]) -> dict[str, Any]:
    """One level of camelCase keys as the chart renders them: snake_case, unset values left out."""
    return {snake(key): value for key, value in values.items() if value is not None}


def k8s_run_launcher_config(values: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The chart's `dagsterYaml.runLauncher.k8s` template, in Python: K8sRunLauncher's config."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "job_namespace": launcher.get("jobNamespace") or namespace,
        "service_account_name": "salesloft-dagster",
        "dagster_home": values.get("global", {}).get("dagsterHome", "/opt/dagster/dagster_home"),
        "instance_config_map": "salesloft-dagster-instance",
        "postgres_password_secret": values.get("global", {}).get("postgresqlSecretName", "dagster-postgresql-secret"),
    }
    for key, value in launcher.items():
        if key in ("loadInclusterConfig", "imagePullPolicy"):  # always rendered
            config[snake(key)] = value
        elif not value:  # the template skips empty settings
            continue
        elif key == "image":
            config["job_image"] = f"{value['repository']}:{value['tag']}"
        elif key in ("envConfigMaps", "envSecrets"):
            config[snake(key)] = [source["name"] for source in value]
        elif key == "runK8sConfig":
            config["run_k8s_config"] = snake_keys(value)
        else:
            config[snake(key)] = value
    return config


def chart_instance_config(values: dict[str, Any], namespace: str = "salesloft") -> dict[str, Any]:
    """The dagster.yaml the chart's configmap-instance template renders from `values`.

    Stricter than the chart where it matters here: every key of the sections it
    renders is passed on, so Dagster's schema rejects a misspelled one instead of
    the template silently dropping it."""
    pg = values["postgresql"]
    pg_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams") or {},
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }
    storage = {"postgres_db": pg_db}
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    queued = {k: v for k, v in snake_keys(coordinator["config"]["queuedRunCoordinator"]).items() if v != []}
    config: dict[str, Any] = {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_launcher": {"module": "dagster_k8s", "class": values["runLauncher"]["type"],
                         "config": k8s_run_launcher_config(values, namespace)},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": coordinator["type"],
                            **({"config": queued} if queued else {})},
        "run_monitoring": snake_keys(daemon["runMonitoring"]),
        "run_retries": snake_keys(daemon["runRetries"]),
        "sensors": snake_keys(daemon["sensors"]),
        "schedules": snake_keys(daemon["schedules"]),
        "telemetry": values["telemetry"],
    }  # fmt: skip
    concurrency = values.get("concurrency") or {}
    if concurrency.get("enabled"):
        config["concurrency"] = {
            part: snake_keys(concurrency[part]) for part in ("pools", "runs") if concurrency.get(part)
        }
    return config


def check_helm_values(values: dict[str, Any], where: Path) -> dict[str, Any]:
    """Raises if `values` has a key the chart does not know or renders an invalid Dagster instance."""
    problems = list(unknown_keys(values, CHART_KEYS))
    if problems:
        raise ValueError(f"keys Dagster's Helm chart does not accept: {problems}")
    try:
        check_kubernetes_fragments(values)
    except Exception as error:  # dagster_k8s raises a bare Exception for unexpected keys
        raise ValueError(f"invalid Kubernetes settings: {error}") from error
    return validate_instance(chart_instance_config(values), where)


def check_kubernetes_fragments(values: dict[str, Any]) -> None:
    """The Kubernetes objects inside the values, against the Kubernetes client's models (keys only)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for key, model in (("resources", kubernetes.client.V1ResourceRequirements),
                       ("securityContext", kubernetes.client.V1SecurityContext)):  # fmt: skip
        if launcher.get(key):
            k8s_snake_case_dict(model, launcher[key])
    run_k8s_models = {
        "containerConfig": kubernetes.client.V1Container, "podSpecConfig": kubernetes.client.V1PodSpec,
        "podTemplateSpecMetadata": kubernetes.client.V1ObjectMeta, "jobSpecConfig": kubernetes.client.V1JobSpec,
        "jobMetadata": kubernetes.client.V1ObjectMeta,
    }  # fmt: skip
    for key, value in (launcher.get("runK8sConfig") or {}).items():
        k8s_snake_case_dict(run_k8s_models[key], value)
    for deployment in values["dagster-user-deployments"]["deployments"]:
        if deployment.get("resources"):
            k8s_snake_case_dict(kubernetes.client.V1ResourceRequirements, deployment["resources"])


def helm_values() -> dict[str, Any]:
    return read_yaml(HELM / "values.yaml")


def test_helm_values_are_valid_for_the_chart_and_render_a_valid_instance(tmp_path: Path) -> None:
    validated = check_helm_values(helm_values(), tmp_path)
    assert validated["run_launcher"]["class"] == "K8sRunLauncher"
    assert validated["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_helm_k8s_run_launcher_config_is_valid_K8sRunLauncher_config() -> None:  # noqa: N802
    from dagster_k8s import K8sRunLauncher

    config = k8s_run_launcher_config(helm_values(), "salesloft")
    result = validate_config(K8sRunLauncher.config_type(), config)
    assert result.success, result.errors
    assert config["fail_pod_on_run_failure"] is True
    assert config["run_k8s_config"] == {"job_spec_config": {"ttlSecondsAfterFinished": 86400}}


def test_helm_limits_are_the_team_config_limits() -> None:
    rendered = chart_instance_config(helm_values())
    team = read_yaml(TEAM)
    assert rendered["concurrency"] == team["concurrency"]
    assert rendered["run_retries"] == team["run_retries"]
    assert rendered["telemetry"] == team["telemetry"] == {"enabled": False}
    assert (
        "config" not in rendered["run_coordinator"]
        or "max_concurrent_runs" not in rendered["run_coordinator"]["config"]
    )


def test_helm_code_location_and_its_secrets() -> None:
    values = helm_values()
    [deployment] = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args == ["-m", CODE_LOCATION_MODULE]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods get the same secrets
    assert [s["name"] for s in deployment["envSecrets"]] == ["salesloft-pipeline-secrets"]
    for env in deployment.get("env") or []:
        assert not re.search(r"PASSWORD|SECRET|TOKEN|KEY|_URL$", env["name"]), f"{env['name']} must be a Secret"
    # Dagster's own Postgres password: a Secret made outside Helm, never a value.
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlPassword"] == ""
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]


def webhook_manifests() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((HELM / "webhooks.yaml").read_text()))


def check_webhook_manifests(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    models = {("apps/v1", "Deployment"): kubernetes.client.V1Deployment, ("v1", "Service"): kubernetes.client.V1Service}
    built = {}
    for manifest in manifests:
        model = models[(manifest["apiVersion"], manifest["kind"])]
        built[manifest["kind"]] = k8s_model_from_dict(model, k8s_snake_case_dict(model, manifest))
    return built


def test_webhook_endpoint_manifests_are_valid_kubernetes_objects() -> None:
    built = check_webhook_manifests(webhook_manifests())
    deployment, service = built["Deployment"], built["Service"]
    [container] = deployment.spec.template.spec.containers
    assert container.command[:3] == ["salesloft-pipeline", "webhooks", "serve"]
    assert container.command[container.command.index("--port") + 1] == str(container.ports[0].container_port)
    assert container.readiness_probe.http_get.path == "/health"
    assert not container.env, "settings come from the Secret only"
    [source] = container.env_from
    [code_location] = helm_values()["dagster-user-deployments"]["deployments"]
    assert source.secret_ref.name == code_location["envSecrets"][0]["name"]
    labels = deployment.spec.template.metadata.labels
    assert deployment.spec.selector.match_labels.items() <= labels.items()
    assert service.spec.selector.items() <= labels.items()
    assert service.spec.ports[0].target_port == container.ports[0].name


# -- a misspelled key fails -------------------------------------------------------------
def rename_key(document: Any, path: list[Any], new_name: str) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    assert path[-1] in parent, f"{path} is not in the file any more: update the test"
    parent[new_name] = parent.pop(path[-1])
    return changed


MISSPELLINGS = [
    (TEAM, ["storage", "postgres", "postgres_db", "db_name"], "dbname"),
    (TEAM, ["concurrency", "runs", "max_concurrent_runs"], "max_concurent_runs"),
    (TEAM, ["concurrency", "pools", "default_limit"], "defaultlimit"),
    (TEAM, ["run_coordinator", "config", "dequeue_num_workers"], "dequeue_workers"),
    (TEAM, ["run_monitoring", "poll_interval_seconds"], "poll_interval"),
    (TEAM, ["run_retries", "retry_on_asset_or_op_failure"], "retry_on_failure"),
    (DOCKER / "dagster.yaml", ["run_launcher", "config", "env_vars"], "env_var"),
    (DOCKER / "dagster.yaml", ["run_launcher", "config", "container_kwargs"], "container_args"),
    (HELM / "values.yaml", ["dagsterDaemon"], "dagsterDeamon"),
    (HELM / "values.yaml", ["runLauncher", "config", "k8sRunLauncher", "envSecrets"], "envSecret"),
    (HELM / "values.yaml", ["runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "jobSpecConfig"],
     "jobSpec"),
    (HELM / "values.yaml", ["runLauncher", "config", "k8sRunLauncher", "runK8sConfig", "jobSpecConfig",
                            "ttlSecondsAfterFinished"], "ttlSecondsAfterFinish"),
    (HELM / "values.yaml", ["concurrency", "runs", "maxConcurrentRuns"], "maxConcurentRuns"),
    (HELM / "values.yaml", ["dagsterDaemon", "runMonitoring", "pollIntervalSeconds"], "pollInterval"),
    (HELM / "values.yaml", ["dagster-user-deployments", "deployments", 0, "dagsterApiGrpcArgs"], "grpcArgs"),
    (HELM / "values.yaml", ["postgresql", "postgresqlHost"], "postgresHost"),
    (HELM / "webhooks.yaml", [0, "spec", "template", "spec", "containers", 0, "envFrom"], "envFromm"),
    (HELM / "webhooks.yaml", [1, "spec", "ports", 0, "targetPort"], "target_Port"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "key", "misspelt"), MISSPELLINGS, ids=[f"{p.parent.name}/{p.name}:{m}" for p, _, m in MISSPELLINGS]
)
def test_a_misspelled_key_fails_validation(path: Path, key: list[Any], misspelt: str, tmp_path: Path) -> None:
    if path.name == "webhooks.yaml":
        broken = rename_key(webhook_manifests(), key, misspelt)
        with pytest.raises(Exception, match=misspelt):
            check_webhook_manifests(broken)
        return
    broken = rename_key(read_yaml(path), key, misspelt)
    check = check_helm_values if path.name == "values.yaml" else validate_instance
    with pytest.raises((DagsterInvalidConfigError, ValueError)) as raised:
        check(broken, tmp_path)
    # The message names the key (as written, or as the chart renders it: snake_case).
    assert misspelt in str(raised.value) or snake(misspelt) in str(raised.value), raised.value


def test_the_unchanged_files_pass_the_same_checks(tmp_path: Path) -> None:
    """The negative tests above fail for the misspelling, not for something else in the file."""
    validate_instance(read_yaml(TEAM), tmp_path / "team")
    validate_instance(read_yaml(DOCKER / "dagster.yaml"), tmp_path / "docker")
    check_helm_values(helm_values(), tmp_path / "helm")
    check_webhook_manifests(webhook_manifests())
    shutil.rmtree(tmp_path)
