"""CloudFormation fills for the local world (part of :mod:`stepdeploy_local.compat`).

moto 5.2.5 provisions little of the application stack (layers/common/stepdeploy/stacks/app.yaml),
and its change sets neither describe nor apply changes as CloudFormation does. These patches keep
moto's own template evaluation (parsing.clean_json, ResourceMap) and service backends, and add:
dotted Fn::GetAtt and list-parameter defaults, the resource types moto ignores, the properties it
drops, the deletions it skips, change sets computed from resolved properties, and execution with
resource events and rollback (HOOKS.stack_resource_failure injects resource failures).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import time as _time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import clock as _clock
from . import HOOKS

_NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."
_UNKNOWN = "{{unknown:"  # marks values CloudFormation only knows once a change set runs


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _ref_id(value: Any) -> Any:
    """The id of a value a Ref resolved to (moto returns model objects for some types)."""
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    for attribute in ("physical_resource_id", "name", "id", "arn"):
        found = getattr(value, attribute, None)
        if found is not None:
            return found
    return value


def _camel_keys(value: Any, keep: tuple[str, ...] = ("options", "dockerLabels")) -> Any:
    """CloudFormation's PascalCase property names as the camelCase ECS uses (values of ``keep`` as is)."""
    if isinstance(value, list):
        return [_camel_keys(v, keep) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        camel = key[:1].lower() + key[1:]
        out[camel] = item if camel in keep else _camel_keys(item, keep)
    return out


def _reason(exc: Exception) -> str:
    """An error as a CloudFormation status reason: moto's message without the error code."""
    return str(getattr(exc, "message", None) or exc or type(exc).__name__)


def _lower_tags(tags: Any) -> list[dict[str, str]] | None:
    """CloudFormation Tags ([{Key, Value}]) as ECS tags ([{key, value}])."""
    return [{"key": t["Key"], "value": str(t["Value"])} for t in tags] if tags else None


def _patch_cfn_getatt_paths() -> None:
    """Fn::GetAtt with a dotted attribute (!GetAtt Cluster.Endpoint.Address, or ${Cluster.Endpoint.Port}
    in Fn::Sub) reaches the resource as its first segment only ("Endpoint")."""
    from moto.cloudformation import parsing

    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and list(resource_json) == ["Fn::GetAtt"]:
            target = resource_json["Fn::GetAtt"]
            if isinstance(target, str):
                target = target.split(".", 1)
            if isinstance(target, list) and len(target) > 2:
                target = [target[0], ".".join(str(part) for part in target[1:])]
            resource_json = {"Fn::GetAtt": target}
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json


def _patch_cfn_list_parameters() -> None:
    """Defaults of CommaDelimitedList/List<...> parameters stay unsplit strings (only passed values are
    split), and DescribeStacks shows list values as Python lists instead of comma-joined strings."""
    from moto.cloudformation.models import Stack
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.load_parameters

    def load_parameters(self: Any) -> None:
        original(self)
        for name, slot in (self._template.get("Parameters") or {}).items():
            value = self.resolved_parameters.get(name)
            if isinstance(value, str) and str(slot.get("Type", "String")).startswith(("List", "CommaDelimitedList")):
                self.resolved_parameters[name] = self._parsed_resources[name] = value.split(",")

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        hidden = self.resource_map.no_echo_parameter_keys
        return [
            {
                "ParameterKey": key,
                "ParameterValue": "****" if key in hidden else ",".join(map(str, v)) if isinstance(v, list) else v,
            }
            for key, v in self.resource_map.resolved_parameters.items()
        ]

    ResourceMap.load_parameters = load_parameters  # type: ignore[method-assign]
    Stack.parameter_list = property(parameter_list)  # type: ignore[assignment, method-assign]


_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([^:}]+):((?:(?!\}\}).)+)\}\}")


class DynamicReferenceError(ValueError):
    """A dynamic reference CloudFormation cannot resolve (the resource operation fails with this reason)."""


def _secret_reference(reference: str, account_id: str, region_name: str) -> str:
    """``secret-id[:SecretString[:json-key[:version-stage[:version-id]]]]``, the secret id a name or an ARN
    (whose seven colon-separated parts are the id), as CloudFormation resolves it when it runs a resource."""
    from moto.secretsmanager.models import secretsmanager_backends

    parts = reference.split(":")
    size = 7 if reference.startswith("arn:") else 1
    secret_id, rest = ":".join(parts[:size]), parts[size:]
    if len(parts) < size or len(rest) > 4 or (rest and rest[0] not in ("", "SecretString")):
        raise DynamicReferenceError(f"Invalid dynamic reference {{{{resolve:secretsmanager:{reference}}}}}")
    json_key, stage, version = [*rest[1:], "", "", ""][:3]
    backend: Any = secretsmanager_backends[account_id][region_name]
    found = backend.get_secret_value(secret_id, version or None, stage or (None if version else "AWSCURRENT"))
    text = str(found.get("SecretString") or "")
    if not json_key:
        return text
    try:
        value = json.loads(text).get(json_key) if text.startswith("{") else None
    except json.JSONDecodeError:
        value = None
    if value is None:
        raise DynamicReferenceError(
            f"Secrets Manager secret {secret_id} has no JSON key {json_key!r} in its SecretString"
        )
    return value if isinstance(value, str) else json.dumps(value)


def resolve_dynamic_references(value: Any, account_id: str, region_name: str) -> Any:
    """Resource properties with their ``{{resolve:secretsmanager:...}}`` references replaced by the values."""
    if isinstance(value, dict):
        return {k: resolve_dynamic_references(v, account_id, region_name) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_dynamic_references(v, account_id, region_name) for v in value]
    if not isinstance(value, str) or "{{resolve:" not in value or _UNKNOWN in value:
        return value

    def resolve(match: re.Match[str]) -> str:
        service, reference = match.group(1), match.group(2)
        if service != "secretsmanager":
            raise DynamicReferenceError(f"the local world resolves no {service} dynamic references")
        return _secret_reference(reference, account_id, region_name)

    return _DYNAMIC_REFERENCE.sub(resolve, value)


def _patch_cfn_dynamic_references() -> None:
    """``{{resolve:secretsmanager:...}}`` dynamic references reach resources unresolved (a listener rule then
    refuses the 150-character reference as its header value). CloudFormation resolves them when it creates
    or updates the resource; the template (and so a change set's comparison) keeps the reference."""
    from moto.cloudformation import parsing

    original = parsing.parse_resource_and_generate_name

    def parse_resource_and_generate_name(logical_id: str, resource_json: Any, resources_map: Any) -> Any:
        parsed = original(logical_id, resource_json, resources_map)
        if not parsed:
            return parsed
        model, cleaned, name = parsed
        account, region = resources_map._account_id, resources_map._region_name
        cleaned["Properties"] = resolve_dynamic_references(cleaned.get("Properties") or {}, account, region)
        return model, cleaned, name

    parsing.parse_resource_and_generate_name = parse_resource_and_generate_name


@functools.cache
def _aws_managed_policy_data() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    parsed: dict[str, Any] = json.loads(aws_managed_policies_data)
    return parsed


def _managed_policy(backend: Any, arn: str) -> Any:
    """The policy an ARN names; an AWS managed one is loaded on first use (moto loads none by default)."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import AWSManagedPolicy

    found = backend.managed_policies.get(arn)
    path, _, name = arn.partition(":policy")[2].rpartition("/")
    data = _aws_managed_policy_data().get(name) if arn.split(":")[4:5] == ["aws"] else None
    if found is None and data is not None and data.get("Path", "/") == f"{path}/":
        found = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data)
        backend.managed_policies[found.arn] = found
    if found is None:
        raise NotFoundException(f"Policy {arn} does not exist or is not attachable.")
    return found


def _sync_managed_policies(backend: Any, role: Any, wanted: list[str]) -> None:
    """The role's attached managed policies as ManagedPolicyArns lists them."""
    for arn in set(role.managed_policies) - set(wanted):
        backend.detach_role_policy(arn, role.name)
    for arn in wanted:
        if arn not in role.managed_policies:
            _managed_policy(backend, arn).attach_to(role)


def _patch_cfn_iam_roles() -> None:
    """AWS::IAM::Role ignores ManagedPolicyArns (on creation and update) and its AssumeRolePolicyDocument on
    update, and a stack cannot delete a role with managed policies attached (CloudFormation detaches them)."""
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    create, update, delete = (
        Role.create_from_cloudformation_json,
        Role.update_from_cloudformation_json,
        Role.delete_from_cloudformation_json,
    )

    def backend(account_id: str, region_name: str) -> Any:
        return iam_backends[account_id][get_partition(region_name)]

    def created(cls: Any, name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any) -> Any:
        role = create(name, cloudformation_json, account_id, region_name, **kw)
        wanted = list((cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or [])
        _sync_managed_policies(backend(account_id, region_name), role, wanted)
        return role

    def updated(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        role = update(original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        props, iam = cloudformation_json.get("Properties") or {}, backend(account_id, region_name)
        trust = props.get("AssumeRolePolicyDocument")
        if trust is not None:
            iam.update_assume_role_policy(role.name, trust if isinstance(trust, str) else json.dumps(trust))
        _sync_managed_policies(iam, role, list(props.get("ManagedPolicyArns") or []))
        return role

    def deleted(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> None:
        iam = backend(account_id, region_name)
        role = next((r for r in iam.roles.values() if r.name == resource_name), None)
        if role is not None:
            _sync_managed_policies(iam, role, [])
        delete(resource_name, cloudformation_json, account_id, region_name)

    Role.create_from_cloudformation_json = classmethod(created)  # type: ignore[arg-type, assignment, method-assign]
    Role.update_from_cloudformation_json = classmethod(updated)  # type: ignore[assignment, method-assign]
    Role.delete_from_cloudformation_json = classmethod(deleted)  # type: ignore[arg-type, assignment, method-assign]


#: AWS's length limits (and lower case) for names CloudFormation generates, where moto exceeds them
_NAME_LIMITS: dict[str, tuple[int, bool]] = {
    "AWS::RDS::DBInstance": (63, True),
    "AWS::RDS::DBCluster": (63, True),
    "AWS::IAM::Role": (64, False),
    "AWS::Lambda::Function": (64, False),
    "AWS::SQS::Queue": (80, False),
}


def _patch_cfn_physical_names() -> None:
    """Generated physical names ("<stack>-<logical id>-<suffix>") exceed AWS's limits with longer stack
    names: an RDS identifier over 63 characters is rejected, an IAM role name over 64 would be."""
    from moto.cloudformation import parsing

    original = parsing.generate_resource_name

    def generate_resource_name(resource_type: str, stack_name: str, logical_id: str) -> str:
        name = original(resource_type, stack_name, logical_id)
        limit, lower = _NAME_LIMITS.get(resource_type, (0, False))
        if limit and len(name) > limit:
            prefix, suffix = name.rsplit("-", 1)
            name = f"{prefix[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"
        return name.lower() if lower else name

    parsing.generate_resource_name = generate_resource_name


# ------------------------------------------------------------------- resource types moto ignores


class _CfnResource:
    """A CloudFormation resource type moto's CloudFormation ignores, kept in moto's own backend."""

    TYPE = ""
    NAME_PROPERTY = ""  # the property that names the resource ("" = none)
    ATTRIBUTES: tuple[str, ...] = ()

    def __init__(self, physical_id: str, account_id: str, region_name: str) -> None:
        self.physical_resource_id = physical_id
        self.account_id, self.region_name = account_id, region_name

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return any(a == attr or a.startswith(attr + ".") for a in cls.ATTRIBUTES)

    def is_created(self) -> bool:
        return True

    def attributes(self) -> dict[str, Any]:
        return {}

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        values = self.attributes()
        if attribute_name not in values:
            raise UnformattedGetAttTemplateException()
        return values[attribute_name]

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        raise NotImplementedError

    def update(self, props: dict[str, Any]) -> _CfnResource:
        """In-place update (the change set engine replaces the resource when CloudFormation would)."""
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        raise NotImplementedError

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kw: Any
    ) -> _CfnResource:
        return cls.create(resource_name, cloudformation_json.get("Properties") or {}, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: _CfnResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _CfnResource:
        return original_resource.update(cloudformation_json.get("Properties") or {})

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        raise NotImplementedError(f"{cls.TYPE} is deleted through its instance (delete)")


class _DBCluster(_CfnResource):
    """AWS::RDS::DBCluster through moto's RDS backend (Ref: the cluster identifier)."""

    TYPE, NAME_PROPERTY = "AWS::RDS::DBCluster", "DBClusterIdentifier"
    ATTRIBUTES = (
        "Endpoint.Address",
        "Endpoint.Port",
        "ReadEndpoint.Address",
        "MasterUserSecret.SecretArn",
        "DBClusterArn",
        "DBClusterResourceId",
    )
    #: CloudFormation property -> moto DBCluster keyword (and attribute, for in-place updates)
    KEYWORDS = {
        "Engine": "engine",
        "EngineVersion": "engine_version",
        "EngineMode": "engine_mode",
        "Port": "port",
        "DatabaseName": "database_name",
        "MasterUsername": "master_username",
        "MasterUserPassword": "master_user_password",
        "StorageEncrypted": "storage_encrypted",
        "KmsKeyId": "kms_key_id",
        "BackupRetentionPeriod": "backup_retention_period",
        "PreferredBackupWindow": "preferred_backup_window",
        "PreferredMaintenanceWindow": "preferred_maintenance_window",
        "DeletionProtection": "deletion_protection",
        "CopyTagsToSnapshot": "copy_tags_to_snapshot",
        "DBSubnetGroupName": "db_subnet_group_name",
        "DBClusterParameterGroupName": "db_cluster_parameter_group_name",
        "VpcSecurityGroupIds": "vpc_security_group_ids",
        "EnableCloudwatchLogsExports": "enable_cloudwatch_logs_exports",
        "EnableIAMDatabaseAuthentication": "enable_iam_database_authentication",
        "AvailabilityZones": "availability_zones",
        "Tags": "tags",
    }
    BOOLEANS = ("StorageEncrypted", "DeletionProtection", "CopyTagsToSnapshot", "EnableIAMDatabaseAuthentication")
    INTEGERS = ("Port", "BackupRetentionPeriod")
    #: moto DBCluster attributes named differently from their keyword
    ATTRIBUTE_NAMES = {
        "enable_cloudwatch_logs_exports": "enabled_cloudwatch_logs_exports",
        "db_cluster_parameter_group_name": "parameter_group",
    }
    IN_PLACE = (
        "EngineVersion",
        "Port",
        "BackupRetentionPeriod",
        "PreferredBackupWindow",
        "PreferredMaintenanceWindow",
        "DeletionProtection",
        "CopyTagsToSnapshot",
        "VpcSecurityGroupIds",
        "EnableCloudwatchLogsExports",
        "Tags",
    )

    @classmethod
    def _keywords(cls, props: dict[str, Any], names: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for prop in names:
            if prop in props:
                value = _ref_id(props[prop])
                value = _as_bool(value) if prop in cls.BOOLEANS else _as_int(value) if prop in cls.INTEGERS else value
                out[cls.KEYWORDS[prop]] = value
        return out

    def cluster(self) -> Any:
        from moto.rds.models import rds_backends

        return rds_backends[self.account_id][self.region_name].clusters[self.physical_resource_id]

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        from moto.rds.models import rds_backends

        identifier = str(props.get("DBClusterIdentifier") or name).lower()
        kwargs = cls._keywords(props, cls.KEYWORDS)
        kwargs["db_cluster_identifier"] = identifier
        if _as_bool(props.get("ManageMasterUserPassword", False)):
            kwargs["manage_master_user_password"] = True
            kwargs["master_user_secret_kms_key_id"] = (props.get("MasterUserSecret") or {}).get("KmsKeyId")
        cluster = rds_backends[account_id][region_name].create_db_cluster(kwargs)
        _ = cluster.status  # CloudFormation waits until the cluster is available (moto: 'creating' once)
        secret = getattr(cluster, "master_user_secret", None)
        if secret is not None:  # moto's RDS-managed secret names the user "admin"
            _ = secret.secret_status
            for version in secret.secret.versions.values():
                value = json.loads(version["secret_string"])
                version["secret_string"] = json.dumps({**value, "username": cluster.master_username})
        return cls(identifier, account_id, region_name)

    def update(self, props: dict[str, Any]) -> _CfnResource:
        cluster = self.cluster()
        for keyword, value in self._keywords(props, self.IN_PLACE).items():
            setattr(cluster, self.ATTRIBUTE_NAMES.get(keyword, keyword), value)
        return self

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        from moto.rds.models import rds_backends

        name = f"{self.physical_resource_id}-snapshot-{uuid.uuid4().hex[:12]}" if snapshot else None
        rds_backends[account_id][region_name].delete_db_cluster(self.physical_resource_id, name)

    def attributes(self) -> dict[str, Any]:
        cluster = self.cluster()
        secret = getattr(cluster, "master_user_secret", None)
        return {
            "Endpoint.Address": cluster.endpoint,
            "Endpoint.Port": str(cluster.port),
            "ReadEndpoint.Address": cluster.reader_endpoint,
            "MasterUserSecret.SecretArn": secret.secret_arn if secret is not None else None,
            "DBClusterArn": cluster.db_cluster_arn,
            "DBClusterResourceId": cluster.db_cluster_resource_id,
        }


class _Secret(_CfnResource):
    """AWS::SecretsManager::Secret through moto's Secrets Manager backend (Ref: the secret ARN)."""

    TYPE, NAME_PROPERTY, ATTRIBUTES = "AWS::SecretsManager::Secret", "Name", ("Id",)

    @staticmethod
    def _secret_string(props: dict[str, Any], backend: Any) -> str | None:
        spec = props.get("GenerateSecretString")
        if not spec:
            return props.get("SecretString")
        password = backend.get_random_password(
            password_length=int(spec.get("PasswordLength", 32)),
            exclude_characters=spec.get("ExcludeCharacters", ""),
            exclude_numbers=_as_bool(spec.get("ExcludeNumbers", False)),
            exclude_punctuation=_as_bool(spec.get("ExcludePunctuation", False)),
            exclude_uppercase=_as_bool(spec.get("ExcludeUppercase", False)),
            exclude_lowercase=_as_bool(spec.get("ExcludeLowercase", False)),
            include_space=_as_bool(spec.get("IncludeSpace", False)),
            require_each_included_type=_as_bool(spec.get("RequireEachIncludedType", True)),
        )
        password = json.loads(password)["RandomPassword"] if password.startswith("{") else password
        if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
            template = json.loads(spec["SecretStringTemplate"])
            template[spec["GenerateStringKey"]] = password
            return json.dumps(template)
        return str(password)

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[account_id][region_name]
        created = backend.create_secret(
            name=props.get("Name") or name,
            secret_string=cls._secret_string(props, backend),
            secret_binary=None,
            description=props.get("Description"),
            tags=props.get("Tags"),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(json.loads(created)["ARN"], account_id, region_name)

    def update(self, props: dict[str, Any]) -> _CfnResource:
        from moto.secretsmanager.models import secretsmanager_backends

        backend: Any = secretsmanager_backends[self.account_id][self.region_name]
        secret = backend.describe_secret(self.physical_resource_id)
        secret.update(props.get("Description"), props.get("Tags"), props.get("KmsKeyId"), int(_time.time()))
        if props.get("SecretString") is not None:  # a generated secret is not generated again
            backend.put_secret_value(self.physical_resource_id, props["SecretString"], None, None, ["AWSCURRENT"])
        return self

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        from moto.secretsmanager.models import secretsmanager_backends

        secretsmanager_backends[account_id][region_name].delete_secret(
            self.physical_resource_id, recovery_window_in_days=None, force_delete_without_recovery=True
        )

    def attributes(self) -> dict[str, Any]:
        return {"Id": self.physical_resource_id}


def _bring_into_range(resource_id: str, low: int | None, high: int | None, account_id: str, region_name: str) -> None:
    """RegisterScalableTarget moves an active resource's current capacity into [MinCapacity,
    MaxCapacity] (as Application Auto Scaling does): here an ECS service's desired count."""
    from moto.ecs.models import ecs_backends

    _, cluster, name = resource_id.split("/", 2)
    backend = ecs_backends[account_id][region_name]
    service = backend.services.get(f"{cluster}:{name}")
    if service is None:
        return
    count = service.desired_count
    wanted = max(count, low) if low is not None else count
    wanted = min(wanted, high) if high is not None else wanted
    if wanted != count:
        backend.update_service({"cluster": cluster, "service": name, "desired_count": wanted})


class _ScalableTarget(_CfnResource):
    """AWS::ApplicationAutoScaling::ScalableTarget (Ref: "resource-id|dimension|namespace", as on AWS)."""

    TYPE = "AWS::ApplicationAutoScaling::ScalableTarget"

    @staticmethod
    def _register(props: dict[str, Any], account_id: str, region_name: str) -> str:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        namespace, resource_id, dimension = props["ServiceNamespace"], props["ResourceId"], props["ScalableDimension"]
        role = props.get("RoleARN") or (
            f"arn:aws:iam::{account_id}:role/aws-service-role/{namespace}.application-autoscaling.amazonaws.com/"
            f"AWSServiceRoleForApplicationAutoScaling_{'ECSService' if namespace == 'ecs' else namespace}"
        )
        backend: Any = applicationautoscaling_backends[account_id][region_name]
        backend.register_scalable_target(
            namespace,
            resource_id,
            dimension,
            _as_int(props.get("MinCapacity")),
            _as_int(props.get("MaxCapacity")),
            role,
            props.get("SuspendedState"),
        )
        if namespace == "ecs" and dimension == "ecs:service:DesiredCount":
            low, high = _as_int(props.get("MinCapacity")), _as_int(props.get("MaxCapacity"))
            _bring_into_range(resource_id, low, high, account_id, region_name)
        return f"{resource_id}|{dimension}|{namespace}"

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        return cls(cls._register(props, account_id, region_name), account_id, region_name)

    def update(self, props: dict[str, Any]) -> _CfnResource:
        self._register(props, self.account_id, self.region_name)
        return self

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        resource_id, dimension, namespace = self.physical_resource_id.split("|")
        applicationautoscaling_backends[account_id][region_name].deregister_scalable_target(
            namespace, resource_id, dimension
        )


class _ScalingPolicy(_CfnResource):
    """AWS::ApplicationAutoScaling::ScalingPolicy (Ref: the policy ARN)."""

    TYPE, ATTRIBUTES = "AWS::ApplicationAutoScaling::ScalingPolicy", ("Arn",)

    def __init__(self, physical_id: str, account_id: str, region_name: str, key: tuple[str, ...] = ()) -> None:
        super().__init__(physical_id, account_id, region_name)
        self.key = key  # (policy name, namespace, resource id, dimension)

    @classmethod
    def _put(cls, props: dict[str, Any], account_id: str, region_name: str) -> _ScalingPolicy:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        if props.get("ScalingTargetId"):
            resource_id, dimension, namespace = str(props["ScalingTargetId"]).split("|")
        else:
            resource_id, dimension = props["ResourceId"], props["ScalableDimension"]
            namespace = props["ServiceNamespace"]
        body = props.get("TargetTrackingScalingPolicyConfiguration") or props.get("StepScalingPolicyConfiguration")
        backend: Any = applicationautoscaling_backends[account_id][region_name]
        policy = backend.put_scaling_policy(
            props["PolicyName"], namespace, resource_id, dimension, body, props.get("PolicyType")
        )
        return cls(policy.policy_arn, account_id, region_name, (props["PolicyName"], namespace, resource_id, dimension))

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        return cls._put(props, account_id, region_name)

    def update(self, props: dict[str, Any]) -> _CfnResource:
        return self._put(props, self.account_id, self.region_name)

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        from moto.applicationautoscaling.models import applicationautoscaling_backends

        applicationautoscaling_backends[account_id][region_name].delete_scaling_policy(*self.key)

    def attributes(self) -> dict[str, Any]:
        return {"Arn": self.physical_resource_id}


class _Alarm(_CfnResource):
    """AWS::CloudWatch::Alarm (metric alarms; Ref: the alarm name)."""

    TYPE, NAME_PROPERTY, ATTRIBUTES = "AWS::CloudWatch::Alarm", "AlarmName", ("Arn",)

    @classmethod
    def _put(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _Alarm:
        from moto.cloudwatch.models import cloudwatch_backends

        threshold = props.get("Threshold")
        backend: Any = cloudwatch_backends[account_id][region_name]
        backend.put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=_as_int(props.get("Period")),
            threshold=None if threshold is None else float(threshold),
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=[{"Name": d["Name"], "Value": str(d["Value"])} for d in props.get("Dimensions") or []],
            alarm_actions=props.get("AlarmActions") or [],
            datapoints_to_alarm=_as_int(props.get("DatapointsToAlarm")),
            extended_statistic=props.get("ExtendedStatistic"),
            ok_actions=props.get("OKActions") or [],
            insufficient_data_actions=props.get("InsufficientDataActions") or [],
            unit=props.get("Unit"),
            actions_enabled=_as_bool(props.get("ActionsEnabled", True)),
            treat_missing_data=props.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=props.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=props.get("ThresholdMetricId"),
            tags=props.get("Tags"),
        )
        return cls(name, account_id, region_name)

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region_name: str) -> _CfnResource:
        return cls._put(props.get("AlarmName") or name, props, account_id, region_name)

    def update(self, props: dict[str, Any]) -> _CfnResource:
        return self._put(self.physical_resource_id, props, self.account_id, self.region_name)

    def delete(self, account_id: str, region_name: str, snapshot: bool = False) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_resource_id])

    def attributes(self) -> dict[str, Any]:
        from moto.cloudwatch.models import cloudwatch_backends

        return {
            "Arn": cloudwatch_backends[self.account_id][self.region_name].alarms[self.physical_resource_id].alarm_arn
        }


_CFN_TYPES: dict[str, type[_CfnResource]] = {
    cls.TYPE: cls for cls in (_DBCluster, _Secret, _ScalableTarget, _ScalingPolicy, _Alarm)
}


def _patch_cfn_resource_types() -> None:
    """AWS::RDS::DBCluster, AWS::SecretsManager::Secret, AWS::ApplicationAutoScaling::ScalableTarget and
    ::ScalingPolicy and AWS::CloudWatch::Alarm are ignored (with a warning) by moto's CloudFormation."""
    from moto.cloudformation import parsing

    original_class, original_name = parsing.resource_class_from_type, parsing.resource_name_property_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        return _CFN_TYPES.get(resource_type) or original_class(resource_type)

    def resource_name_property_from_type(resource_type: str) -> str | None:
        ours = _CFN_TYPES.get(resource_type)
        return ours.NAME_PROPERTY if ours is not None else original_name(resource_type)

    parsing.resource_class_from_type = resource_class_from_type
    parsing.resource_name_property_from_type = resource_name_property_from_type


def _update_monitoring(instance: Any, props: dict[str, Any]) -> None:
    """An update sets Enhanced Monitoring as a whole (a property left out means off), with RDS's rule."""
    from moto.rds.exceptions import InvalidParameterCombination

    interval, role = int(props.get("MonitoringInterval", 0)), props.get("MonitoringRoleArn")
    if bool(interval) != bool(role):
        raise InvalidParameterCombination(
            "A MonitoringRoleARN value is required if you specify a MonitoringInterval value other than 0."
            if interval
            else "You must specify a MonitoringInterval value other than 0 when you specify a MonitoringRoleARN value."
        )
    instance.monitoring_interval, instance.monitoring_role_arn = interval, role


def _patch_cfn_aurora_instances() -> None:
    """AWS::RDS::DBInstance ignores DBClusterIdentifier (so an Aurora instance without EngineVersion fails
    with KeyError 'aurora-postgresql') and cannot be updated. Enhanced Monitoring is kept, with RDS's rule (an
    interval needs a role, a role needs an interval)."""
    from moto.rds.models import DBInstance, rds_backends

    original_create = DBInstance.create_from_cloudformation_json

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        if not props.get("DBClusterIdentifier"):
            return original_create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = rds_backends[account_id][region_name]
        cluster = backend.clusters[str(_ref_id(props["DBClusterIdentifier"])).lower()]
        return backend.create_db_instance(
            {
                "db_instance_identifier": str(props.get("DBInstanceIdentifier") or resource_name)
                .lower()
                .replace("_", "-"),
                "db_cluster_identifier": cluster.db_cluster_identifier,
                "db_instance_class": props.get("DBInstanceClass"),
                "engine": props.get("Engine") or cluster.engine,
                "availability_zone": props.get("AvailabilityZone"),
                "publicly_accessible": _as_bool(props.get("PubliclyAccessible", False)),
                "promotion_tier": int(props.get("PromotionTier", 1)),
                "auto_minor_version_upgrade": _as_bool(props.get("AutoMinorVersionUpgrade", True)),
                "db_parameter_group_name": props.get("DBParameterGroupName"),
                "monitoring_interval": int(props.get("MonitoringInterval", 0)),
                "monitoring_role_arn": props.get("MonitoringRoleArn"),
                "port": cluster.port,
                "tags": props.get("Tags"),
            }
        )

    def update_from_cloudformation_json(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        changes = {
            "db_instance_class": props.get("DBInstanceClass"),
            "publicly_accessible": None if "PubliclyAccessible" not in props else _as_bool(props["PubliclyAccessible"]),
            "auto_minor_version_upgrade": None
            if "AutoMinorVersionUpgrade" not in props
            else _as_bool(props["AutoMinorVersionUpgrade"]),
            "promotion_tier": _as_int(props.get("PromotionTier")),
        }
        for attribute, value in changes.items():
            if value is not None:
                setattr(original_resource, attribute, value)
        _update_monitoring(original_resource, props)
        return original_resource

    DBInstance.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[arg-type, assignment, method-assign]
    DBInstance.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[assignment, method-assign]


def _task_definition_kwargs(props: dict[str, Any], family: str) -> dict[str, Any]:
    """register_task_definition keywords for the properties of an AWS::ECS::TaskDefinition."""
    containers = _camel_keys(props.get("ContainerDefinitions") or [])
    for container in containers:
        for variable in container.get("environment") or []:
            variable["value"] = str(variable.get("value", ""))  # CloudFormation passes numbers as strings
    optional = {
        "volumes": _camel_keys(props.get("Volumes")),
        "network_mode": props.get("NetworkMode"),
        "tags": _lower_tags(props.get("Tags")),
        "placement_constraints": _camel_keys(props.get("PlacementConstraints")),
        "requires_compatibilities": props.get("RequiresCompatibilities"),
        "cpu": None if props.get("Cpu") is None else str(props["Cpu"]),
        "memory": None if props.get("Memory") is None else str(props["Memory"]),
        "task_role_arn": props.get("TaskRoleArn"),
        "execution_role_arn": props.get("ExecutionRoleArn"),
        "proxy_configuration": _camel_keys(props.get("ProxyConfiguration")),
        "inference_accelerators": _camel_keys(props.get("InferenceAccelerators")),
        "runtime_platform": _camel_keys(props.get("RuntimePlatform")),
        "ipc_mode": props.get("IpcMode"),
        "pid_mode": props.get("PidMode"),
        "ephemeral_storage": _camel_keys(props.get("EphemeralStorage")),
    }
    kwargs = {k: v for k, v in optional.items() if v is not None}
    return {"family": family, "container_definitions": containers, **kwargs}


#: AWS::ECS::Service properties moto's create_service does not take, as the Service attributes
#: (which DescribeServices returns and UpdateService sets)
_SERVICE_EXTRAS = {
    "DeploymentConfiguration": "deployment_configuration",
    "HealthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "EnableECSManagedTags": "enable_ecs_managed_tags",
    "EnableExecuteCommand": "enable_execute_command",
    "CapacityProviderStrategy": "capacity_provider_strategy",
    "PlacementConstraints": "placement_constraints",
    "PlacementStrategies": "placement_strategy",
}
#: properties UpdateService changes in place
_SERVICE_UPDATABLE = {
    "NetworkConfiguration": "network_configuration",
    "LoadBalancers": "load_balancers",
    "PlatformVersion": "platform_version",
    "PropagateTags": "propagate_tags",
    "ServiceRegistries": "service_registries",
    **_SERVICE_EXTRAS,
}


def _service_extras(props: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop, attribute in names.items():
        if prop in props:
            value = props[prop]
            if prop == "HealthCheckGracePeriodSeconds":
                value = int(value)
            elif prop in ("EnableECSManagedTags", "EnableExecuteCommand"):
                value = _as_bool(value)
            out[attribute] = _camel_keys(value)
    return out


def _steady(backend: Any, service: Any) -> None:
    """CloudFormation completes a service once it is stable: its tasks running, its deployment COMPLETED."""
    cluster = backend._get_cluster(service.cluster_name)
    backend.update_cluster_resources(cluster, -service.pending_count, task_state="PENDING")
    backend.update_cluster_resources(cluster, service.desired_count - service.running_count, task_state="RUNNING")
    service.running_count, service.pending_count = service.desired_count, 0
    for deployment in service.deployments[:1]:
        deployment.update(runningCount=service.desired_count, pendingCount=0, rolloutState="COMPLETED")
        deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."


def _patch_cfn_ecs_properties() -> None:
    """ECS Cluster, TaskDefinition and Service from CloudFormation lose their settings, networking, load
    balancers and Fargate properties, and a stack cannot delete them."""
    from moto.ecs.models import Cluster, Service, TaskDefinition, ecs_backends

    def create_cluster(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        return ecs_backends[account_id][region_name].create_cluster(
            cluster_name=props.get("ClusterName") or resource_name,
            tags=_lower_tags(props.get("Tags")),
            cluster_settings=_camel_keys(props.get("ClusterSettings")),
            configuration=_camel_keys(props.get("Configuration")),
            capacity_providers=props.get("CapacityProviders"),
            default_capacity_provider_strategy=_camel_keys(props.get("DefaultCapacityProviderStrategy")),
        )

    def create_task_definition(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        kwargs = _task_definition_kwargs(props, props.get("Family") or resource_name)
        return ecs_backends[account_id][region_name].register_task_definition(**kwargs)

    def update_task_definition(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Task definitions are immutable: a new revision, the old one deregistered."""
        new = create_task_definition(cls, new_resource_name, cloudformation_json, account_id, region_name)
        ecs_backends[account_id][region_name].deregister_task_definition(original_resource.arn)
        return new

    def create_service(
        cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        backend = ecs_backends[account_id][region_name]
        service = backend.create_service(
            str(_ref_id(props.get("Cluster") or "default")),
            props.get("ServiceName") or resource_name,
            int(props.get("DesiredCount", 1)),
            task_definition_str=_ref_id(props.get("TaskDefinition")),
            load_balancers=_camel_keys(props.get("LoadBalancers")),
            scheduling_strategy=props.get("SchedulingStrategy"),
            tags=_lower_tags(props.get("Tags")),
            deployment_controller=_camel_keys(props.get("DeploymentController")),
            launch_type=props.get("LaunchType"),
            service_registries=_camel_keys(props.get("ServiceRegistries")),
            platform_version=props.get("PlatformVersion"),
            propagate_tags=props.get("PropagateTags") or "NONE",
            network_configuration=_camel_keys(props.get("NetworkConfiguration")),
            role_arn=props.get("Role"),
        )
        for attribute, value in _service_extras(props, _SERVICE_EXTRAS).items():
            setattr(service, attribute, value)
        _steady(backend, service)
        return service

    def update_service(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """In place, through UpdateService (so the world's rollout model sees it as on AWS)."""
        props = cloudformation_json.get("Properties") or {}
        return ecs_backends[account_id][region_name].update_service(
            {
                "cluster": original_resource.cluster_name,
                "service": original_resource.name,
                "task_definition": _ref_id(props.get("TaskDefinition")),
                "desired_count": _as_int(props.get("DesiredCount")),
                **_service_extras(props, _SERVICE_UPDATABLE),
            }
        )

    def delete_service(self: Any, account_id: str, region_name: str) -> None:
        ecs_backends[account_id][region_name].delete_service(self.cluster_name, self.name, force=True)

    def delete_cluster(self: Any, account_id: str, region_name: str) -> None:
        ecs_backends[account_id][region_name].delete_cluster(self.arn)

    def delete_task_definition(self: Any, account_id: str, region_name: str) -> None:
        ecs_backends[account_id][region_name].deregister_task_definition(self.arn)

    Cluster.create_from_cloudformation_json = classmethod(create_cluster)  # type: ignore[arg-type, assignment, method-assign]
    TaskDefinition.create_from_cloudformation_json = classmethod(create_task_definition)  # type: ignore[arg-type, assignment, method-assign]
    TaskDefinition.update_from_cloudformation_json = classmethod(update_task_definition)  # type: ignore[assignment, method-assign]
    Service.create_from_cloudformation_json = classmethod(create_service)  # type: ignore[arg-type, assignment, method-assign]
    Service.update_from_cloudformation_json = classmethod(update_service)  # type: ignore[assignment, method-assign]
    Service.delete = delete_service  # type: ignore[attr-defined]
    Cluster.delete = delete_cluster  # type: ignore[attr-defined]
    TaskDefinition.delete = delete_task_definition  # type: ignore[attr-defined]


def _patch_cfn_deletions() -> None:
    """A stack cannot delete EC2 gateways, NAT gateways, addresses, routes, route tables and their
    associations, nor ELBv2 listeners, listener rules and target groups (moto leaves them, so the VPC
    cannot go either); routes, log groups, load balancers and target groups cannot be updated in place,
    and a listener rule's update ignores its Priority."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_ip_addresses import ElasticAddress
    from moto.ec2.models.internet_gateways import InternetGateway
    from moto.ec2.models.nat_gateways import NatGateway
    from moto.ec2.models.route_tables import Route, RouteTable
    from moto.ec2.models.subnets import SubnetRouteTableAssociation
    from moto.ec2.models.vpn_gateway import VPCGatewayAttachment
    from moto.elbv2.models import FakeListener, FakeListenerRule, FakeLoadBalancer, FakeTargetGroup, elbv2_backends
    from moto.logs.models import LogGroup, logs_backends

    def ec2(account_id: str, region_name: str) -> Any:
        return ec2_backends[account_id][region_name]

    def delete_association(self: Any, account_id: str, region_name: str) -> None:
        table = ec2(account_id, region_name).get_route_table(self.route_table_id)
        for association_id, subnet_id in list(table._associations.items()):
            if subnet_id == self.subnet_id:
                ec2(account_id, region_name).disassociate_route_table(association_id)

    def delete_attachment(self: Any, account_id: str, region_name: str) -> None:
        if str(self.gateway_id).startswith("igw-"):
            ec2(account_id, region_name).detach_internet_gateway(self.gateway_id, self.vpc_id)

    deleters: dict[Any, Callable[[Any, str, str], Any]] = {
        ElasticAddress: lambda self, a, r: ec2(a, r).release_address(allocation_id=self.allocation_id),
        InternetGateway: lambda self, a, r: ec2(a, r).delete_internet_gateway(self.id),
        NatGateway: lambda self, a, r: ec2(a, r).delete_nat_gateway(self.id),
        Route: lambda self, a, r: ec2(a, r).delete_route(
            self.route_table.id, self.destination_cidr_block, self.destination_ipv6_cidr_block
        ),
        RouteTable: lambda self, a, r: ec2(a, r).delete_route_table(self.id),
        SubnetRouteTableAssociation: delete_association,
        VPCGatewayAttachment: delete_attachment,
        FakeListener: lambda self, a, r: elbv2_backends[a][r].delete_listener(self.arn),
        FakeListenerRule: lambda self, a, r: elbv2_backends[a][r].delete_rule(self.arn),
        FakeTargetGroup: lambda self, a, r: elbv2_backends[a][r].delete_target_group(self.arn),
    }
    for model, deleter in deleters.items():
        model.delete = deleter

    def update_log_group(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        days = (cloudformation_json.get("Properties") or {}).get("RetentionInDays")
        backend: Any = logs_backends[account_id][region_name]
        if days is None:
            backend.delete_retention_policy(original_resource.name)
        else:
            backend.put_retention_policy(original_resource.name, int(days))
        return original_resource

    def update_route(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """ReplaceRoute: the same destination through another gateway."""
        props = cloudformation_json.get("Properties") or {}
        return ec2(account_id, region_name).replace_route(
            original_resource.route_table.id,
            props.get("DestinationCidrBlock"),
            destination_ipv6_cidr_block=props.get("DestinationIpv6CidrBlock"),
            nat_gateway_id=props.get("NatGatewayId"),
            egress_only_igw_id=props.get("EgressOnlyInternetGatewayId"),
            transit_gateway_id=props.get("TransitGatewayId"),
            gateway_id=props.get("GatewayId"),
            instance_id=props.get("InstanceId"),
            interface_id=props.get("NetworkInterfaceId"),
            vpc_peering_connection_id=props.get("VpcPeeringConnectionId"),
        )

    def update_load_balancer(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        backend: Any = elbv2_backends[account_id][region_name]
        if props.get("SecurityGroups"):
            backend.set_security_groups(original_resource.arn, list(props["SecurityGroups"]))
        if props.get("Subnets"):
            backend.set_subnets(original_resource.arn, list(props["Subnets"]), [])
        return original_resource

    def update_target_group(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        backend: Any = elbv2_backends[account_id][region_name]
        backend.modify_target_group(
            original_resource.arn,
            health_check_proto=props.get("HealthCheckProtocol"),
            health_check_port=None if props.get("HealthCheckPort") is None else str(props["HealthCheckPort"]),
            health_check_path=props.get("HealthCheckPath"),
            health_check_interval=_as_int(props.get("HealthCheckIntervalSeconds")),
            health_check_timeout=_as_int(props.get("HealthCheckTimeoutSeconds")),
            healthy_threshold_count=_as_int(props.get("HealthyThresholdCount")),
            unhealthy_threshold_count=_as_int(props.get("UnhealthyThresholdCount")),
            http_codes=(props.get("Matcher") or {}).get("HttpCode"),
            health_check_enabled=None if "HealthCheckEnabled" not in props else _as_bool(props["HealthCheckEnabled"]),
        )
        return original_resource

    update_rule = FakeListenerRule.update_from_cloudformation_json

    def update_listener_rule(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Conditions and actions (moto), then the priority (SetRulePriorities), in place."""
        rule = update_rule(original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        priority = (cloudformation_json.get("Properties") or {}).get("Priority")
        if priority is not None and int(priority) != int(original_resource.priority):
            elbv2_backends[account_id][region_name].set_rule_priorities(
                [{"RuleArn": original_resource.arn, "Priority": int(priority)}]
            )
            original_resource.priority = int(priority)
        return rule

    LogGroup.update_from_cloudformation_json = classmethod(update_log_group)  # type: ignore[assignment, method-assign]
    FakeListenerRule.update_from_cloudformation_json = classmethod(update_listener_rule)  # type: ignore[assignment, method-assign]
    Route.update_from_cloudformation_json = classmethod(update_route)  # type: ignore[assignment, method-assign]
    FakeLoadBalancer.update_from_cloudformation_json = classmethod(update_load_balancer)  # type: ignore[assignment, method-assign]
    FakeTargetGroup.update_from_cloudformation_json = classmethod(update_target_group)  # type: ignore[assignment, method-assign]


def _sync_ec2_tags(ec2: Any, resource_id: str, tags: list[dict[str, Any]] | None) -> None:
    """A resource's tags as the template lists them (CloudFormation's own aws:* tags stay)."""
    current = {k: v for k, v in ec2.tags.get(resource_id, {}).items() if not k.startswith("aws:")}
    if current:
        ec2.delete_tags([resource_id], current)
    if tags:
        ec2.create_tags([resource_id], {t["Key"]: str(t["Value"]) for t in tags})


def _security_group_rules(ec2: Any, group: Any, props: dict[str, Any], creating: bool) -> None:
    """A security group's inline rules as the template lists them (moto ignores SecurityGroupEgress, which
    replaces the default allow-all egress); rules that AWS::EC2::SecurityGroupIngress resources added stay."""
    if creating:
        group.ingress_rules = []  # moto's own (descriptions dropped); the template's follow
        if props.get("SecurityGroupEgress"):
            group.egress_rules = []
    else:
        inline = {id(rule) for rule in getattr(group, "_cfn_inline_rules", [])}
        group.ingress_rules = [rule for rule in group.ingress_rules if id(rule) not in inline]
        group.egress_rules = [rule for rule in group.egress_rules if id(rule) not in inline]
    before = {id(rule) for rule in group.ingress_rules + group.egress_rules}
    for direction, rules in (
        ("ingress", props.get("SecurityGroupIngress")),
        ("egress", props.get("SecurityGroupEgress")),
    ):
        for rule in rules or []:
            peer = rule.get("SourceSecurityGroupId") or rule.get("DestinationSecurityGroupId")
            cidr = rule.get("CidrIp")
            getattr(ec2, f"authorize_security_group_{direction}")(
                group_name_or_id=group.id,
                ip_protocol=str(rule["IpProtocol"]),
                from_port=rule.get("FromPort"),
                to_port=rule.get("ToPort"),
                ip_ranges=[{"CidrIp": cidr, "Description": rule.get("Description")}] if cidr else [],
                source_groups=[{"GroupId": peer}] if peer else [],
                vpc_id=group.vpc_id,
            )
    group._cfn_inline_rules = [rule for rule in group.ingress_rules + group.egress_rules if id(rule) not in before]


def _patch_cfn_vpc_properties() -> None:
    """A VPC from CloudFormation ignores EnableDnsHostnames/EnableDnsSupport (awsvpc tasks then get no
    DNS name), a security group ignores SecurityGroupEgress (and is replaced on any update), a subnet
    ignores MapPublicIpOnLaunch, and route table associations do not show in DescribeRouteTables."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.security_groups import SecurityGroup
    from moto.ec2.models.subnets import Subnet, SubnetRouteTableAssociation
    from moto.ec2.models.vpcs import VPC

    def ec2(account_id: str, region_name: str) -> Any:
        return ec2_backends[account_id][region_name]

    create_vpc, create_security_group = (
        VPC.create_from_cloudformation_json,
        SecurityGroup.create_from_cloudformation_json,
    )
    create_subnet, create_association = (
        Subnet.create_from_cloudformation_json,
        (SubnetRouteTableAssociation.create_from_cloudformation_json),
    )

    def vpc_attributes(vpc: Any, props: dict[str, Any], account_id: str, region_name: str) -> Any:
        backend = ec2(account_id, region_name)
        backend.modify_vpc_attribute(vpc.id, "enable_dns_support", _as_bool(props.get("EnableDnsSupport", True)))
        backend.modify_vpc_attribute(vpc.id, "enable_dns_hostnames", _as_bool(props.get("EnableDnsHostnames", False)))
        return vpc

    def vpc_created(cls: Any, name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any) -> Any:
        vpc = create_vpc(name, cloudformation_json, account_id, region_name, **kw)
        return vpc_attributes(vpc, cloudformation_json.get("Properties") or {}, account_id, region_name)

    def vpc_updated(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        props = cloudformation_json.get("Properties") or {}
        _sync_ec2_tags(ec2(account_id, region_name), original_resource.id, props.get("Tags"))
        return vpc_attributes(original_resource, props, account_id, region_name)

    def group_created(
        cls: Any, name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        group = create_security_group(name, cloudformation_json, account_id, region_name, **kw)
        _security_group_rules(ec2(account_id, region_name), group, cloudformation_json.get("Properties") or {}, True)
        return group

    def group_updated(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """Rules and tags change in place (GroupName, GroupDescription and VpcId replace the group)."""
        props = cloudformation_json.get("Properties") or {}
        _sync_ec2_tags(ec2(account_id, region_name), original_resource.id, props.get("Tags"))
        _security_group_rules(ec2(account_id, region_name), original_resource, props, False)
        return original_resource

    def subnet_created(
        cls: Any, name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        subnet = create_subnet(name, cloudformation_json, account_id, region_name, **kw)
        subnet.map_public_ip_on_launch = _as_bool(
            (cloudformation_json.get("Properties") or {}).get("MapPublicIpOnLaunch")
        )
        return subnet

    def association_created(
        cls: Any, name: str, cloudformation_json: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        association = create_association(name, cloudformation_json, account_id, region_name, **kw)
        association.association_id = ec2(account_id, region_name).associate_route_table(  # type: ignore[attr-defined]
            association.route_table_id, subnet_id=association.subnet_id
        )
        return association

    VPC.create_from_cloudformation_json = classmethod(vpc_created)  # type: ignore[arg-type, assignment, method-assign]
    VPC.update_from_cloudformation_json = classmethod(vpc_updated)  # type: ignore[assignment, method-assign]
    SecurityGroup.create_from_cloudformation_json = classmethod(group_created)  # type: ignore[arg-type, assignment, method-assign]
    SecurityGroup.update_from_cloudformation_json = classmethod(group_updated)  # type: ignore[assignment, method-assign]
    Subnet.create_from_cloudformation_json = classmethod(subnet_created)  # type: ignore[arg-type, assignment, method-assign]
    SubnetRouteTableAssociation.create_from_cloudformation_json = classmethod(association_created)  # type: ignore[arg-type, assignment, method-assign]
    # the association's id, as on AWS (moto: the route table's)
    SubnetRouteTableAssociation.physical_resource_id = property(  # type: ignore[assignment, method-assign]
        lambda self: getattr(self, "association_id", None) or self.route_table_id
    )


def _patch_cfn_elbv2_attributes() -> None:
    """Fn::GetAtt of an ALB's LoadBalancerFullName, CanonicalHostedZoneID or SecurityGroups raises
    NotImplementedError (the value is left unresolved), and a TargetGroup has no attributes at all."""
    from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup

    original = FakeLoadBalancer.get_cfn_attribute

    def load_balancer_attribute(self: Any, attribute_name: str) -> Any:
        values = {
            "LoadBalancerFullName": self.arn.split(":loadbalancer/", 1)[-1],
            "CanonicalHostedZoneID": self.canonical_hosted_zone_id,
            "SecurityGroups": list(self.security_groups or []),
        }
        return values[attribute_name] if attribute_name in values else original(self, attribute_name)

    def target_group_attribute(self: Any, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        values = {
            "TargetGroupFullName": self.arn.split(":", 5)[-1],
            "TargetGroupName": self.name,
            "TargetGroupArn": self.arn,
            "LoadBalancerArns": list(self.load_balancer_arns),
        }
        if attribute_name not in values:
            raise UnformattedGetAttTemplateException()
        return values[attribute_name]

    FakeLoadBalancer.get_cfn_attribute = load_balancer_attribute  # type: ignore[method-assign]
    FakeTargetGroup.get_cfn_attribute = target_group_attribute  # type: ignore[attr-defined]
    FakeTargetGroup.has_cfn_attr = classmethod(  # type: ignore[assignment, method-assign]
        lambda cls, attr: attr in ("TargetGroupFullName", "TargetGroupName", "TargetGroupArn", "LoadBalancerArns")
    )


# ----------------------------------------------------------------- change sets, execution, rollback

#: properties whose change replaces the resource, for the types stepdeploy's stacks use ("*": all but
#: Tags); other changes are made in place (as far as moto can: EC2 tags at least). A type not listed
#: here is replaced on any change when moto cannot update it
_REPLACING: dict[str, frozenset[str]] = {
    "AWS::EC2::VPC": frozenset({"CidrBlock", "Ipv4IpamPoolId", "Ipv4NetmaskLength"}),
    "AWS::EC2::InternetGateway": frozenset(),
    "AWS::EC2::VPCGatewayAttachment": frozenset({"VpcId"}),
    "AWS::EC2::Subnet": frozenset({"AvailabilityZone", "AvailabilityZoneId", "CidrBlock", "VpcId"}),
    "AWS::EC2::RouteTable": frozenset({"VpcId"}),
    "AWS::EC2::Route": frozenset({"RouteTableId", "DestinationCidrBlock", "DestinationIpv6CidrBlock"}),
    "AWS::EC2::SubnetRouteTableAssociation": frozenset({"SubnetId", "RouteTableId"}),
    "AWS::EC2::EIP": frozenset({"Domain", "NetworkBorderGroup"}),
    "AWS::EC2::NatGateway": frozenset({"AllocationId", "SubnetId", "ConnectivityType", "PrivateIpAddress"}),
    "AWS::EC2::SecurityGroup": frozenset({"GroupDescription", "GroupName", "VpcId"}),
    "AWS::EC2::SecurityGroupIngress": frozenset({"*"}),
    "AWS::RDS::DBSubnetGroup": frozenset({"DBSubnetGroupName"}),
    "AWS::RDS::DBCluster": frozenset(
        {"DBClusterIdentifier", "DatabaseName", "DBSubnetGroupName", "Engine", "EngineMode", "KmsKeyId"}
        | {"MasterUsername", "StorageEncrypted", "AvailabilityZones", "SnapshotIdentifier"}
    ),
    "AWS::RDS::DBInstance": frozenset(
        {"DBInstanceIdentifier", "DBClusterIdentifier", "DBName", "Engine", "MasterUsername", "StorageEncrypted"}
        | {"KmsKeyId", "DBSubnetGroupName", "SourceDBInstanceIdentifier", "CharacterSetName"}
    ),
    "AWS::ECS::Cluster": frozenset({"ClusterName"}),
    "AWS::ECS::TaskDefinition": frozenset({"*"}),
    "AWS::ECS::Service": frozenset(
        {"Cluster", "LaunchType", "ServiceName", "Role", "SchedulingStrategy", "DeploymentController"}
    ),
    "AWS::Logs::LogGroup": frozenset({"LogGroupName", "KmsKeyId"}),
    "AWS::IAM::Role": frozenset({"RoleName", "Path"}),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": frozenset({"Name", "Scheme", "Type"}),
    "AWS::ElasticLoadBalancingV2::TargetGroup": frozenset(
        {"Name", "Port", "Protocol", "ProtocolVersion", "TargetType", "VpcId", "IpAddressType"}
    ),
    "AWS::ElasticLoadBalancingV2::Listener": frozenset({"LoadBalancerArn"}),
    "AWS::ElasticLoadBalancingV2::ListenerRule": frozenset({"ListenerArn"}),
    "AWS::ApplicationAutoScaling::ScalableTarget": frozenset({"ResourceId", "ScalableDimension", "ServiceNamespace"}),
    "AWS::ApplicationAutoScaling::ScalingPolicy": frozenset(
        {"PolicyName", "ResourceId", "ScalableDimension", "ScalingTargetId", "ServiceNamespace"}
    ),
    "AWS::CloudWatch::Alarm": frozenset({"AlarmName"}),
    "AWS::SecretsManager::Secret": frozenset({"Name"}),
}
#: types CloudFormation updates with the changed properties only: what changed outside the stack stays
#: (a task definition revision a deployment registered, a desired count autoscaling set)
_CHANGED_PROPERTIES_ONLY = frozenset({"AWS::ECS::Service"})
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


class _ResourceFailed(Exception):
    """A resource operation failed; the stack operation fails (and rolls back) as on AWS."""

    def __init__(self, logical_id: str, resource_type: str, action: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id, self.resource_type, self.action, self.reason = logical_id, resource_type, action, reason


class _Unknown:
    """A resource a change set adds or replaces: its id and attributes are known only once it runs."""

    def __init__(self, logical_id: str) -> None:
        self.logical_id = logical_id
        self.physical_resource_id = f"{_UNKNOWN}{logical_id}}}}}"

    def get_cfn_attribute(self, attribute: str) -> str:
        return f"{_UNKNOWN}{self.logical_id}.{attribute}}}}}"


class _PreviewMap(Mapping[str, Any]):
    """What clean_json reads while planning a change set: the new template's parameters, mappings and
    conditions, the stack's live resources, and _Unknown for resources it adds or replaces."""

    def __init__(self, loaded: Any, live: dict[str, Any], resources: Iterable[str], unknown: set[str]) -> None:
        self._loaded, self._live, self._resources, self._unknown = loaded, live, set(resources), unknown
        self.lazy_condition_map = loaded.lazy_condition_map
        self.cross_stack_resources = loaded.cross_stack_resources

    def __getitem__(self, key: str) -> Any:
        if key in self._resources:
            return _Unknown(key) if key in self._unknown or key not in self._live else self._live[key]
        return self._loaded._parsed_resources[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resources)

    def __len__(self) -> int:
        return len(self._resources)


def _comparable(value: Any) -> Any:
    """A resolved property value as plain data (model objects a Ref returned become their ids)."""
    if isinstance(value, dict):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(_ref_id(value))


def _resolve(properties: Any, resources_map: Any) -> Any:
    from moto.cloudformation import parsing

    return _comparable(parsing.clean_json(copy.deepcopy(properties), resources_map))


def _physical_id(resource: Any) -> str:
    found = getattr(resource, "physical_resource_id", None)
    return "" if found is None else str(found)


def _references(node: Any) -> set[str]:
    """Logical ids a template node refers to (Ref, Fn::GetAtt, Fn::Sub variables)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value.split(".")[0] if isinstance(value, str) else value[0] if value else None
                found |= {target} if isinstance(target, str) else set()
            elif key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                names = {m.split(".")[0] for m in _SUB_VARIABLE.findall(text)} if isinstance(text, str) else set()
                found |= (names - set(variables)) | _references(variables)
            else:
                found |= _references(value)
    return found


def _dependencies(resources: dict[str, Any]) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for name, resource in resources.items():
        depends_on = resource.get("DependsOn") or []
        found = _references(resource) | ({depends_on} if isinstance(depends_on, str) else set(depends_on))
        deps[name] = {d for d in found if d in resources and d != name}
    return deps


def _creation_order(resources: dict[str, Any]) -> list[str]:
    """Dependencies first, otherwise template order."""
    deps, position = _dependencies(resources), {name: i for i, name in enumerate(resources)}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name not in seen:
            seen.add(name)
            for dependency in sorted(deps[name], key=position.__getitem__):
                visit(dependency)
            order.append(name)

    for name in resources:
        visit(name)
    return order


def _active(template: dict[str, Any], resources_map: Any) -> dict[str, Any]:
    """The template's resources whose Condition holds."""
    return {
        name: resource
        for name, resource in (template.get("Resources") or {}).items()
        if not resource.get("Condition") or resources_map.lazy_condition_map[resource["Condition"]]
    }


def _state(stack: Any) -> dict[str, dict[str, Any]]:
    """logical id -> {"Type", "Properties" (resolved)} for each resource the stack has."""
    state: dict[str, dict[str, Any]] | None = getattr(stack, "_compat_state", None)
    if state is None:  # a stack moto made (CreateStack): describe what it has
        from moto.cloudformation import parsing

        rmap, state = stack.resource_map, {}
        for name, resource in _active(stack.template_dict or {}, rmap).items():
            if name in rmap._parsed_resources or parsing.resource_class_from_type(resource["Type"]) is None:
                state[name] = {"Type": resource["Type"], "Properties": _resolve(resource.get("Properties") or {}, rmap)}
        stack._compat_state = state
    return state


def _updatable(resource_type: str) -> bool:
    """Whether moto can update this type in place (null models such as WaitConditionHandle: nothing to do)."""
    from moto.cloudformation import parsing

    model = parsing.resource_class_from_type(resource_type)
    return model is None or not hasattr(model.update_from_cloudformation_json, "__isabstractmethod__")


def _recreates(resource_type: str, key: str) -> bool:
    """Whether changing this property replaces the resource: as _REPLACING says, and for types it does
    not list, whenever moto cannot update them in place."""
    replacing = _REPLACING.get(resource_type)
    if replacing is None:
        return not _updatable(resource_type)
    return key in replacing or ("*" in replacing and key != "Tags")


def _replaces(resource_type: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(key) != after.get(key) and _recreates(resource_type, key) for key in set(before) | set(after))


def _change(action: str, logical_id: str, resource_type: str, **extra: Any) -> Any:
    """A moto Change with the ResourceChange fields CloudFormation reports."""
    from moto.cloudformation.models import Change

    change = Change(action, logical_id, resource_type)
    change.scope, change.details = [], []  # type: ignore[attr-defined]
    for key, value in extra.items():
        setattr(change, key, value)
    return change


def _modification(name: str, resource: dict[str, Any], current: dict[str, Any], after: Any, old: Any) -> Any:
    """The Modify change for a resource whose resolved properties differ (None when they do not)."""
    before, resource_type = current["Properties"], resource["Type"]
    if after == before and current["Type"] == resource_type:
        return None
    after_props = after if isinstance(after, dict) else {}
    keys = sorted(k for k in set(before) | set(after_props) if before.get(k) != after_props.get(k) or after is None)
    details, static, dynamic = [], False, False
    for key in keys:
        is_dynamic = after is None or _UNKNOWN in json.dumps(after_props.get(key), default=str)
        always = _recreates(resource_type, key)
        static, dynamic = static or (always and not is_dynamic), dynamic or (always and is_dynamic)
        edited = ((old or {}).get("Properties") or {}).get(key) != (resource.get("Properties") or {}).get(key)
        source = "DirectModification" if edited else "ResourceReference" if is_dynamic else "ParameterReference"
        target = {"Attribute": "Properties", "Name": key, "RequiresRecreation": "Always" if always else "Never"}
        details.append({"Target": target, "Evaluation": "Dynamic" if is_dynamic else "Static", "ChangeSource": source})
    replacement = "True" if static or current["Type"] != resource_type else "Conditional" if dynamic else "False"
    scope = (["Properties"] if any(k != "Tags" for k in keys) else []) + (["Tags"] if "Tags" in keys else [])
    return _change("Modify", name, resource_type, replacement=replacement, scope=scope, details=details)


def _load_map(stack: Any, template: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """A ResourceMap of the template with its parameters and conditions evaluated (nothing created)."""
    from moto.cloudformation.parsing import ResourceMap

    loaded = ResourceMap(
        stack.stack_id,
        stack.name,
        dict(parameters),
        stack.tags,
        region_name=stack.region_name,
        account_id=stack.account_id,
        template=template,
        cross_stack_resources=stack.cross_stack_resources,
    )
    loaded.load()
    return loaded


def _user_tags(tags: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(tags or {}).items() if not str(k).lower().startswith("aws:")}


def _plan(
    stack: Any, template: dict[str, Any], parameters: dict[str, Any], tags: dict[str, str] | None = None
) -> list[Any]:
    """The changes a change set reports: resolved properties of the new template against the stack's.
    Stack tags propagate to every resource that takes tags: a change set that changes them (an
    omitted Tags keeps the stack's) modifies each of those resources."""
    loaded, state = _load_map(stack, template, parameters), _state(stack)
    retag = bool(tags) and _user_tags(tags) != _user_tags(stack.tags)
    wanted, old = _active(template, loaded), (stack.template_dict or {}).get("Resources") or {}
    live = {name: stack.resource_map._parsed_resources.get(name) for name in state}  # None: WaitConditionHandle
    unknown: set[str] = set()
    preview = _PreviewMap(loaded, live, wanted, unknown)
    changes = []
    for name in _creation_order(wanted):
        resource, current = wanted[name], state.get(name)
        if current is None:
            changes.append(_change("Add", name, resource["Type"]))
            unknown.add(name)
            continue
        try:
            after = _resolve(resource.get("Properties") or {}, preview)
        except Exception:  # noqa: BLE001 - unresolvable until it runs (e.g. Fn::Cidr of an unknown block)
            after = None
        change = _modification(name, resource, current, after, old.get(name))
        if change is None and retag and "Tags" in (resource.get("Properties") or {}):
            details = [
                {"Target": {"Attribute": "Tags", "RequiresRecreation": "Never"}, "ChangeSource": "DirectModification"}
            ]
            change = _change("Modify", name, resource["Type"], replacement="False", scope=["Tags"], details=details)
        if change is not None:
            change.physical_resource_id = _physical_id(live.get(name))
            changes.append(change)
            unknown |= {name} if change.replacement != "False" else set()
    for name in _deletion_order(state, old):
        if name not in wanted:
            changes.append(
                _change("Remove", name, state[name]["Type"], physical_resource_id=_physical_id(live.get(name)))
            )
    return changes


def _deletion_order(state: dict[str, dict[str, Any]], resources: dict[str, Any]) -> list[str]:
    known = {name: resources.get(name) or {"Type": entry["Type"]} for name, entry in state.items()}
    return list(reversed(_creation_order(known)))


@dataclass
class _Step:
    """One resource change an operation made (what rollback undoes)."""

    action: str  # Add | Modify | Replace
    logical_id: str
    resource: dict[str, Any]  # its template entry
    old: Any = None
    old_state: dict[str, Any] | None = None
    new: Any = None
    new_state: dict[str, Any] | None = None


class _Operation:
    """A stack operation: resource changes in order, with CloudFormation's events and HOOKS."""

    def __init__(self, stack: Any) -> None:
        self.stack, self.rmap, self.state = stack, stack.resource_map, _state(stack)
        self.journal: list[_Step] = []

    # ------------------------------------------------------------------ events and hooks

    def event(
        self, logical_id: str, resource_type: str, status: str, physical: str = "", reason: str | None = None
    ) -> None:
        from moto.cloudformation.models import Event

        stack = self.stack
        event = Event(stack.stack_id, stack.name, logical_id, physical, resource_type, status, reason, None)
        event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
        stack.events.append(event)

    def status(self, status: str, reason: str | None = None) -> None:
        self.stack.status, self.stack.status_reason = status, reason
        self.stack._add_stack_event(status, resource_status_reason=reason)

    def check(self, logical_id: str, resource_type: str, action: str) -> None:
        """HOOKS.stack_resource_failure decides whether this resource operation fails."""
        hook = HOOKS.stack_resource_failure
        reason = hook(self.stack.name, logical_id, resource_type, action) if hook is not None else None
        if reason:
            raise _ResourceFailed(logical_id, resource_type, action, reason)

    # ------------------------------------------------------------------ moto resources

    def _keep(self, logical_id: str, resource: Any) -> None:
        from moto.ec2.models import ec2_backends
        from moto.ec2.models.core import TaggedEC2Resource

        if resource is None:
            self.rmap._parsed_resources.pop(logical_id, None)
            return
        self.rmap._parsed_resources[logical_id] = resource
        if isinstance(resource, TaggedEC2Resource):  # as moto's ResourceMap.create does
            tags = {**self.rmap.tags, "aws:cloudformation:logical-id": logical_id}
            ec2_backends[self.stack.account_id][self.stack.region_name].create_tags([_physical_id(resource)], tags)

    def _create(self, logical_id: str, resource: dict[str, Any]) -> Any:
        from moto.cloudformation import parsing

        if resource["Type"] in parsing.NULL_MODELS:  # WaitConditionHandle: nothing to create (and no warning)
            return None
        account, region = self.stack.account_id, self.stack.region_name
        return parsing.parse_and_create_resource(logical_id, copy.deepcopy(resource), self.rmap, account, region)

    def _update(self, logical_id: str, resource: dict[str, Any], old: Any) -> Any:
        """moto's in-place update, keeping the physical name unless the template names the resource."""
        from moto.cloudformation import parsing

        parsed = parsing.parse_resource_and_generate_name(logical_id, copy.deepcopy(resource), self.rmap)
        if parsed is None or old is None:
            return old
        model, cleaned, generated = parsed
        if not _updatable(resource["Type"]):  # moto cannot change it: it stays (its EC2 tags follow)
            from moto.ec2.models import ec2_backends
            from moto.ec2.models.core import TaggedEC2Resource

            if isinstance(old, TaggedEC2Resource):
                ec2 = ec2_backends[self.stack.account_id][self.stack.region_name]
                _sync_ec2_tags(ec2, _physical_id(old), cleaned["Properties"].get("Tags"))
            return old
        if resource["Type"] in _CHANGED_PROPERTIES_ONLY:
            before = (self.state.get(logical_id) or {}).get("Properties") or {}
            cleaned["Properties"] = {k: v for k, v in cleaned["Properties"].items() if _comparable(v) != before.get(k)}
        name_property = parsing.resource_name_property_from_type(resource["Type"])
        name = cleaned["Properties"].get(name_property) if name_property else None
        new = model.update_from_cloudformation_json(
            original_resource=old,
            new_resource_name=name or getattr(old, "name", None) or generated,
            cloudformation_json=cleaned,
            account_id=self.stack.account_id,
            region_name=self.stack.region_name,
        )
        return old if new is None else new

    def _delete(self, resource: Any, entry: dict[str, Any], policy: str) -> None:
        if resource is None or policy == "Retain":
            return
        if isinstance(resource, _CfnResource):
            resource.delete(self.stack.account_id, self.stack.region_name, snapshot=policy == "Snapshot")
        else:
            self.rmap._delete_resource(resource, {"Type": entry["Type"], "Properties": entry["Properties"]})

    # ------------------------------------------------------------------ resource changes

    def create(self, logical_id: str, resource: dict[str, Any]) -> None:
        resource_type = resource["Type"]
        self.event(logical_id, resource_type, "CREATE_IN_PROGRESS")
        self.check(logical_id, resource_type, "CREATE")
        try:
            props = _resolve(resource.get("Properties") or {}, self.rmap)
            created = self._create(logical_id, resource)
        except Exception as exc:
            raise _ResourceFailed(logical_id, resource_type, "CREATE", _reason(exc)) from exc
        self._keep(logical_id, created)
        self.state[logical_id] = {"Type": resource_type, "Properties": props}
        self.journal.append(_Step("Add", logical_id, resource, new=created, new_state=self.state[logical_id]))
        self.event(logical_id, resource_type, "CREATE_COMPLETE", _physical_id(created))

    def update(self, logical_id: str, resource: dict[str, Any], props: dict[str, Any]) -> None:
        resource_type, current = resource["Type"], self.state[logical_id]
        old = self.rmap._parsed_resources.get(logical_id)
        replace = current["Type"] != resource_type or _replaces(resource_type, current["Properties"], props)
        note = "Requested update requires the creation of a new physical resource; hence creating one."
        self.event(logical_id, resource_type, "UPDATE_IN_PROGRESS", _physical_id(old), note if replace else None)
        self.check(logical_id, resource_type, "UPDATE")
        try:
            new = self._create(logical_id, resource) if replace else self._update(logical_id, resource, old)
        except Exception as exc:
            raise _ResourceFailed(logical_id, resource_type, "UPDATE", _reason(exc)) from exc
        self._keep(logical_id, new)
        self.state[logical_id] = {"Type": resource_type, "Properties": props}
        step = _Step(
            "Replace" if replace else "Modify", logical_id, resource, old, current, new, self.state[logical_id]
        )
        self.journal.append(step)
        self.event(logical_id, resource_type, "UPDATE_COMPLETE", _physical_id(new))

    def remove(
        self, logical_id: str, resource: Any, entry: dict[str, Any], policy: str, undoing_creation: bool = False
    ) -> bool:
        """Delete one resource as its DeletionPolicy says (events, hook); False when it failed (DELETE_FAILED).
        ``undoing_creation``: this is the rollback of the operation that created the resource."""
        resource_type, physical = entry["Type"], _physical_id(resource)
        policy = _applied_policy(policy, undoing_creation)
        self.event(logical_id, resource_type, "DELETE_IN_PROGRESS", physical)
        try:
            self.check(logical_id, resource_type, "DELETE")
            self._delete(resource, entry, policy)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the resource
            reason = exc.reason if isinstance(exc, _ResourceFailed) else _reason(exc)
            self.event(logical_id, resource_type, "DELETE_FAILED", physical, reason)
            return False
        self.event(logical_id, resource_type, "DELETE_SKIPPED" if policy == "Retain" else "DELETE_COMPLETE", physical)
        return True

    # ------------------------------------------------------------------ whole templates

    def apply(self, names: list[str] | None = None) -> list[str]:
        """Create and update the resources of the template the stack points at (``names``: the ones left),
        dependencies first. An update that moves an ECS service to another task definition stops it when
        CloudFormation waits for services (HOOKS.service_stability): the rest, returned, is applied once the
        service is stable, as on AWS, where the service's dependents wait for it."""
        wanted = _active(self.rmap._template, self.rmap)
        order = _creation_order(wanted) if names is None else names
        for index, name in enumerate(order):
            resource, current = wanted[name], self.state.get(name)
            if current is None:
                self.create(name, resource)
                continue
            try:
                props = _resolve(resource.get("Properties") or {}, self.rmap)
            except Exception as exc:
                raise _ResourceFailed(name, resource["Type"], "UPDATE", _reason(exc)) from exc
            if props != current["Properties"] or resource["Type"] != current["Type"]:
                self.update(name, resource, props)
                if HOOKS.service_stability is not None and _moved_service(self.journal[-1]) is not None:
                    return order[index + 1 :]
        return []

    def clean_up(self, old_resources: dict[str, Any], removed: list[str]) -> None:
        """After a successful update: delete replaced resources, then resources no longer in the template."""
        for step in reversed(self.journal):
            if step.action == "Replace" and step.old_state is not None:
                policy = (old_resources.get(step.logical_id) or {}).get("UpdateReplacePolicy", "Delete")
                self.remove(step.logical_id, step.old, step.old_state, policy)
        for name in removed:
            policy = _deletion_policy(old_resources.get(name) or {"Type": self.state[name]["Type"]})
            if self.remove(name, self.rmap._parsed_resources.get(name), self.state[name], policy):
                del self.state[name]
                self.rmap._parsed_resources.pop(name, None)

    def undo(self, creating: bool) -> bool:
        """Roll back this operation's changes; False if some could not be undone. Replaced resources come
        back first, then in-place changes are reverted in order (so references see the restored
        resources), then what the operation created is deleted."""
        ok = self.undo_changes()
        return self.undo_additions(creating) and ok

    def undo_changes(self) -> bool:
        """Replaced resources back, in-place changes reverted (the first half of undo)."""
        ok = True
        for step in self.journal:
            if step.action == "Replace":
                self._keep(step.logical_id, step.old)
                self.state[step.logical_id] = step.old_state or {}
        for step in self.journal:
            if step.action == "Modify" and step.old_state is not None:
                ok = self._revert(step) and ok
        return ok

    def undo_additions(self, creating: bool) -> bool:
        """What the operation created (or replaced) deleted (the second half of undo)."""
        ok = True
        if not creating:
            self.status("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        created = [step for step in self.journal if step.action in ("Add", "Replace") and step.new_state is not None]
        deps, kept = _dependencies({step.logical_id: step.resource for step in created}), set[str]()
        for step in reversed(created):
            if step.logical_id in kept:  # something that depends on it could not be deleted
                continue
            # what this operation added goes as its DeletionPolicy says (a replacement it made: deleted)
            policy = _deletion_policy(step.resource) if step.action == "Add" else "Delete"
            if not self.remove(step.logical_id, step.new, step.new_state or {}, policy, undoing_creation=True):
                ok, kept = False, kept | _with_dependencies(step.logical_id, deps)
            elif step.action == "Add":
                self.state.pop(step.logical_id, None)
                self.rmap._parsed_resources.pop(step.logical_id, None)
        return ok

    def _revert(self, step: _Step) -> bool:
        entry = step.old_state or {}
        resource = self.rmap._resource_json_map.get(step.logical_id) or {"Type": entry.get("Type")}
        resource_type = str(resource["Type"])
        self.event(step.logical_id, resource_type, "UPDATE_IN_PROGRESS", _physical_id(step.new))
        try:
            self.check(step.logical_id, resource_type, "UPDATE")
            reverted = self._update(step.logical_id, resource, self.rmap._parsed_resources.get(step.logical_id))
        except Exception as exc:  # noqa: BLE001 - the rollback of this resource failed
            self.event(step.logical_id, resource_type, "UPDATE_FAILED", _physical_id(step.new), _reason(exc))
            return False
        self._keep(step.logical_id, reverted)
        self.state[step.logical_id] = entry
        self.event(step.logical_id, resource_type, "UPDATE_COMPLETE", _physical_id(reverted))
        return True


def _deletion_policy(resource: dict[str, Any]) -> str:
    default = "Snapshot" if resource.get("Type") == "AWS::RDS::DBCluster" else "Delete"
    return str(resource.get("DeletionPolicy", default))


def _applied_policy(policy: str, undoing_creation: bool) -> str:
    """What removing a resource does: Delete, Snapshot (then delete) or Retain. RetainExceptOnCreate
    retains it, except when the stack operation that created it is rolled back: then it is deleted."""
    if policy == "RetainExceptOnCreate":
        return "Delete" if undoing_creation else "Retain"
    return policy


def _point_at(
    stack: Any, exports: Any, template: str, template_dict: dict[str, Any], parameters: dict[str, Any]
) -> None:
    """Point the stack (and its ResourceMap) at a template and parameters, as moto's update does."""
    rmap = stack.resource_map
    rmap._template, rmap._resource_json_map = template_dict, template_dict.get("Resources") or {}
    rmap.input_parameters, rmap.resolved_parameters, rmap.cross_stack_resources = dict(parameters), {}, exports
    rmap.load_mapping()
    rmap.load_parameters()
    rmap.load_conditions()
    rmap.tags.update({"aws:cloudformation:stack-name": stack.name, "aws:cloudformation:stack-id": stack.stack_id})
    stack.template, stack.template_dict, stack.parameters = template, template_dict, dict(parameters)
    stack.description = template_dict.get("Description")
    stack.cross_stack_resources = exports


def _settle(backend: Any, stack: Any, outputs: bool) -> None:
    """After an operation: only the resources the stack has stay in its ResourceMap (moto creates any
    resource it is asked for lazily), outputs and exports follow the stack's template."""
    from moto.cloudformation.parsing import OutputMap

    rmap, state = stack.resource_map, _state(stack)
    if not outputs:
        rmap._resource_json_map = {
            name: rmap._resource_json_map.get(name, {"Type": e["Type"]}) for name, e in state.items()
        }
    stack.output_map = OutputMap(rmap, stack.template_dict if outputs else {}, stack.stack_id)
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        del backend.exports[name]
    for export in stack.exports if outputs else []:
        backend.exports[export.name] = export


def _execute(backend: Any, change_set: Any) -> None:
    """Execute a change set: :func:`_start` it, then :func:`_finish` it at once, or, when
    HOOKS.stack_operation_seconds says the operation takes time, when that much virtual time has
    passed (the stack is ``*_IN_PROGRESS`` until then; see :func:`settle_pending`)."""
    verb = _start(change_set)
    hook = HOOKS.stack_operation_seconds
    seconds = hook(change_set.stack.name, verb) if hook is not None else 0.0
    if seconds > 0:
        change_set.stack._compat_pending = (_clock.current().time() + seconds, change_set)
        return
    _finish(backend, change_set)


def _start(change_set: Any) -> str:
    from moto.cloudformation.exceptions import CloudFormationError

    if change_set.status != "CREATE_COMPLETE" or change_set.execution_status != "AVAILABLE":
        state = change_set.status if change_set.status != "CREATE_COMPLETE" else change_set.execution_status
        raise CloudFormationError(
            "InvalidChangeSetStatus",
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of [{state}]",
        )
    verb = "CREATE" if change_set.change_set_type == "CREATE" else "UPDATE"
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    _Operation(change_set.stack).status(f"{verb}_IN_PROGRESS", "User Initiated")
    return verb


def _finish(backend: Any, change_set: Any) -> None:
    """Apply a started change set synchronously: resource events, HOOKS.stack_resource_failure, and on
    any failure the rollback CloudFormation does (ROLLBACK_COMPLETE / UPDATE_ROLLBACK_COMPLETE)."""
    stack, creating = change_set.stack, change_set.change_set_type == "CREATE"
    previous = (stack.template, stack.template_dict or {}, dict(stack.resource_map.input_parameters or {}))
    old_resources = dict((stack.template_dict or {}).get("Resources") or {})
    operation = _Operation(stack)
    removal_order = _deletion_order(operation.state, old_resources)
    for other in [k for k, cs in backend.change_sets.items() if cs.stack_id == stack.stack_id and cs is not change_set]:
        del backend.change_sets[other]  # executing a change set deletes the stack's other change sets
    try:
        _point_at(stack, backend.exports, change_set.template, change_set.template_dict, change_set.parameters)
        rest = operation.apply()
    except _ResourceFailed as failure:
        _roll_back(backend, operation, failure, creating, previous)
        change_set.execution_status = "EXECUTE_FAILED"
        return
    waiting = _services_rolling(operation) if not creating else []
    if waiting and HOOKS.service_stability is not None:  # CloudFormation waits for the service to be stable
        stack._compat_stabilizing = _Stabilizing(
            change_set, operation, previous, old_resources, removal_order, waiting, rest
        )
        return
    _complete(backend, change_set, operation, old_resources, removal_order)


@dataclass
class _Stabilizing:
    """An update whose resources are applied, waiting (as CloudFormation does) for the ECS services it
    updated to reach a steady state: their new deployment COMPLETED, or FAILED (circuit breaker)."""

    change_set: Any
    operation: _Operation
    previous: Any
    old_resources: dict[str, Any]
    removal_order: list[str]
    services: list[tuple[str, str, str, str]]  # logical id, cluster, service, task definition
    rest: list[str] = field(default_factory=list)  # resources applied once the services are stable


def _moved_service(step: _Step) -> tuple[str, str, str, str] | None:
    """(logical id, cluster, service, task definition) when this step moved an ECS service to another task
    definition (an UpdateService rollout CloudFormation waits for)."""
    if step.resource.get("Type") != "AWS::ECS::Service" or step.action != "Modify" or step.new is None:
        return None
    before = (step.old_state or {}).get("Properties", {}).get("TaskDefinition")
    after = (step.new_state or {}).get("Properties", {}).get("TaskDefinition")
    return None if before == after else (step.logical_id, step.new.cluster_name, step.new.name, str(after))


def _services_rolling(operation: _Operation) -> list[tuple[str, str, str, str]]:
    """The ECS services this operation moved to another task definition (an UpdateService rollout)."""
    return [moved for step in operation.journal if (moved := _moved_service(step)) is not None]


def _services_reverted(operation: _Operation) -> list[tuple[str, str, str, str]]:
    """The ECS services a rollback of this operation moved back (after undo_changes), with the task definition
    each runs now (a reverted task definition is a new revision of the one before)."""
    live = operation.rmap._parsed_resources
    return [
        (logical_id, cluster, name, str(getattr(live.get(logical_id), "task_definition", moved_to)))
        for logical_id, cluster, name, moved_to in _services_rolling(operation)
    ]


def _unstable(services: list[tuple[str, str, str, str]]) -> tuple[bool, tuple[str, str] | None]:
    """Whether some service (as HOOKS.service_stability sees it) is not COMPLETED yet, and the first that failed
    (logical id, reason)."""
    hook = HOOKS.service_stability
    states = [(s, hook(s[1], s[2], s[3]) if hook is not None else "COMPLETED") for s in services]
    failed = next(((s[0], state) for s, state in states if state.startswith("FAILED")), None)
    return any(state != "COMPLETED" for _, state in states), failed


def _complete(
    backend: Any, change_set: Any, operation: _Operation, old_resources: dict[str, Any], removal_order: list[str]
) -> None:
    stack, creating = change_set.stack, change_set.change_set_type == "CREATE"
    if not creating:
        operation.status("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        wanted = _active(stack.template_dict, stack.resource_map)
        operation.clean_up(old_resources, [name for name in removal_order if name not in wanted])
    if change_set.tags:  # an omitted Tags keeps the stack's
        stack.tags = dict(change_set.tags)
    _settle(backend, stack, outputs=True)
    operation.status(f"{'CREATE' if creating else 'UPDATE'}_COMPLETE")
    change_set.execution_status = "EXECUTE_COMPLETE"


def _stabilize(backend: Any, stack: Any) -> None:
    """Go on with an update whose services are stable (the resources that wait for them, then complete it), or
    roll it back when a rollout failed."""
    waiting: _Stabilizing = stack._compat_stabilizing
    unstable, failed = _unstable(waiting.services)
    if failed is None and unstable:
        return
    if failed is None and waiting.rest:
        try:
            waiting.rest = waiting.operation.apply(waiting.rest)
        except _ResourceFailed as failure:
            stack._compat_stabilizing = None
            _roll_back(backend, waiting.operation, failure, False, waiting.previous)
            waiting.change_set.execution_status = "EXECUTE_FAILED"
            return
        moved = _services_rolling(waiting.operation)
        if len(moved) > len(waiting.services):  # another service to wait for
            waiting.services = moved
            return
    stack._compat_stabilizing = None
    if failed is None:
        _complete(backend, waiting.change_set, waiting.operation, waiting.old_resources, waiting.removal_order)
        return
    logical_id, state = failed
    reason = (
        "Resource handler returned message: \"Error occurred during operation 'ECS Deployment Circuit Breaker "
        f"was triggered'.\" ({state.removeprefix('FAILED').strip(': ')})"
    )
    _fail_stabilizing(backend, waiting, logical_id, reason)


def _fail_stabilizing(backend: Any, waiting: _Stabilizing, logical_id: str, reason: str) -> None:
    """The service ``logical_id`` failed while the update waited for it: CloudFormation rolls it back."""
    failure = _ResourceFailed(logical_id, "AWS::ECS::Service", "UPDATE", reason)
    _roll_back(backend, waiting.operation, failure, False, waiting.previous)
    waiting.change_set.execution_status = "EXECUTE_FAILED"


def settle_pending(backend: Any) -> None:
    """Finish the stack operations whose (virtual) time has come."""
    now = _clock.current().time()
    for stack in list(backend.stacks.values()):
        pending = getattr(stack, "_compat_pending", None)
        if pending is not None and pending[0] <= now:
            stack._compat_pending = None
            _finish(backend, pending[1])
        if getattr(stack, "_compat_stabilizing", None) is not None:
            _stabilize(backend, stack)
        if getattr(stack, "_compat_rolling_back", None) is not None:
            _finish_roll_back(backend, stack)


def _cancel_update(backend: Any, stack: Any) -> None:
    """CancelUpdateStack: only an update in progress can be cancelled; CloudFormation then rolls the
    stack back to its previous state, the resource being changed reporting "Resource update cancelled"."""
    from moto.cloudformation.exceptions import ValidationError

    waiting = getattr(stack, "_compat_stabilizing", None)
    if stack.status == "UPDATE_IN_PROGRESS" and waiting is not None:  # cancelled while services stabilise
        stack._compat_stabilizing = None
        _fail_stabilizing(backend, waiting, waiting.services[0][0], "Resource update cancelled")
        return
    pending = getattr(stack, "_compat_pending", None)
    if stack.status != "UPDATE_IN_PROGRESS" or pending is None:
        raise ValidationError(
            stack.stack_id, message=f"CancelUpdateStack cannot be called from current stack status {stack.status}"
        )
    stack._compat_pending = None
    change_set = pending[1]
    operation = _Operation(stack)
    first = next(iter(change_set.changes or []), None)
    if first is not None:
        logical_id, resource_type = first.logical_resource_id, first.resource_type
        physical = str(getattr(first, "physical_resource_id", "") or "")
        operation.event(logical_id, resource_type, "UPDATE_FAILED", physical, "Resource update cancelled")
    operation.status("UPDATE_ROLLBACK_IN_PROGRESS", "Stack update cancelled")
    operation.status("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    operation.status("UPDATE_ROLLBACK_COMPLETE")
    change_set.execution_status = "EXECUTE_FAILED"


def _roll_back(backend: Any, operation: _Operation, failure: _ResourceFailed, creating: bool, previous: Any) -> None:
    stack = operation.stack
    operation.event(failure.logical_id, failure.resource_type, f"{failure.action}_FAILED", reason=failure.reason)
    if creating:
        reason = f"The following resource(s) failed to create: [{failure.logical_id}]. Rollback requested by user."
        operation.status("ROLLBACK_IN_PROGRESS", reason)
        ok = operation.undo(creating=True)
        _settle(backend, stack, outputs=False)
        operation.status("ROLLBACK_COMPLETE" if ok else "ROLLBACK_FAILED")
        stack.status_reason = reason
        return
    reason = f"The following resource(s) failed to update: [{failure.logical_id}]. "
    operation.status("UPDATE_ROLLBACK_IN_PROGRESS", reason)
    _point_at(stack, backend.exports, *previous)
    stack._compat_rolling_back = _RollingBack(operation, operation.undo_changes(), _services_reverted(operation))
    _finish_roll_back(backend, stack)


@dataclass
class _RollingBack:
    """An update rollback whose changes are reverted, waiting (as CloudFormation does) for the ECS services it
    moved back to be stable before it cleans up; a service that cannot get back fails the rollback."""

    operation: _Operation
    ok: bool  # every change reverted
    services: list[tuple[str, str, str, str]]  # logical id, cluster, service, the task definition it goes back to


def _finish_roll_back(backend: Any, stack: Any) -> None:
    rolling: _RollingBack = stack._compat_rolling_back
    unstable, failed = _unstable(rolling.services)
    if unstable and failed is None:
        return
    stack._compat_rolling_back = None
    operation = rolling.operation
    if failed is not None:
        logical_id, state = failed
        why = state.removeprefix("FAILED").strip(": ")
        operation.event(
            logical_id, "AWS::ECS::Service", "UPDATE_FAILED", reason=f"the service did not stabilize ({why})"
        )
    ok = operation.undo_additions(creating=False) and rolling.ok and failed is None
    _settle(backend, stack, outputs=True)
    operation.status("UPDATE_ROLLBACK_COMPLETE" if ok else "UPDATE_ROLLBACK_FAILED")


def _delete_stack(backend: Any, stack: Any) -> None:
    """Delete a stack's resources (dependents first, DeletionPolicy, HOOKS); a failure leaves the stack
    DELETE_FAILED with what could not be deleted (and what that still depends on)."""
    operation = _Operation(stack)
    operation.status("DELETE_IN_PROGRESS", "User Initiated")
    resources = stack.resource_map._resource_json_map
    known = {name: resources.get(name) or {"Type": entry["Type"]} for name, entry in operation.state.items()}
    deps, kept, failed = _dependencies(known), set[str](), list[str]()
    for name in _deletion_order(operation.state, resources):
        if name in kept:
            continue
        resource = stack.resource_map._parsed_resources.get(name)
        if operation.remove(name, resource, operation.state[name], _deletion_policy(known[name])):
            del operation.state[name]
            stack.resource_map._parsed_resources.pop(name, None)
        else:
            failed.append(name)
            kept |= _with_dependencies(name, deps)
    _settle(backend, stack, outputs=False)
    if failed:
        operation.status(
            "DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(sorted(failed))}]. "
        )
        return
    operation.status("DELETE_COMPLETE")
    _forget(backend, stack)


def _with_dependencies(name: str, deps: dict[str, set[str]]) -> set[str]:
    found: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(deps.get(current, ()))
    return found


def _forget(backend: Any, stack: Any) -> None:
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack
    for key in [k for k, cs in backend.change_sets.items() if cs.stack_id == stack.stack_id]:
        del backend.change_sets[key]


@functools.cache
def _template_loader() -> Any:
    """moto's YAML loader for templates (short-form intrinsics), on libyaml when available."""
    import yaml
    from moto.cloudformation.utils import yaml_tag_constructor

    loader: Any = type("TemplateLoader", (getattr(yaml, "CLoader", yaml.Loader),), {})
    loader.add_multi_constructor("", yaml_tag_constructor)  # on this subclass only
    return loader


@functools.lru_cache(maxsize=32)
def _parsed_template(text: str) -> dict[str, Any]:
    """A template body parsed as moto parses it, once: moto's pure-Python YAML takes ~0.3 s for the
    application stack, twice per change set."""
    import yaml

    try:
        parsed = yaml.load(text, Loader=_template_loader())  # noqa: S506 - moto's loader, plus its tags
    except yaml.YAMLError:
        parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else json.loads(text)


def _parse_template(text: str | dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(text if isinstance(text, dict) else _parsed_template(text))


def _find_change_set(backend: Any, name_or_arn: str, stack_name: str | None) -> Any:
    """A change set by ARN, or by name within the stack named (moto ignores the stack)."""
    from moto.cloudformation.exceptions import CloudFormationError

    if name_or_arn in backend.change_sets:
        return backend.change_sets[name_or_arn]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name_or_arn and stack_name in (
            None,
            "",
            change_set.stack_name,
            change_set.stack_id,
        ):
            return change_set
    raise CloudFormationError("ChangeSetNotFound", f"ChangeSet [{name_or_arn}] does not exist")


def _parameter_values(stack: Any) -> dict[str, str]:
    """The stack's parameter values as a caller passes them (for UsePreviousValue)."""
    return {
        key: ",".join(map(str, value)) if isinstance(value, list) else str(value)
        for key, value in stack.resource_map.resolved_parameters.items()
    }


def _require_capabilities(template: dict[str, Any], capabilities: list[str]) -> None:
    """CloudFormation refuses IAM resources without CAPABILITY_IAM (named ones: CAPABILITY_NAMED_IAM)."""
    from moto.cloudformation.exceptions import CloudFormationError

    iam = [r for r in (template.get("Resources") or {}).values() if str(r.get("Type", "")).startswith("AWS::IAM::")]
    names = ("RoleName", "UserName", "GroupName", "ManagedPolicyName", "InstanceProfileName")
    named = any(name in (r.get("Properties") or {}) for r in iam for name in names)
    needed = "CAPABILITY_NAMED_IAM" if named else "CAPABILITY_IAM"
    if iam and needed not in capabilities and "CAPABILITY_NAMED_IAM" not in capabilities:
        raise CloudFormationError("InsufficientCapabilitiesException", f"Requires capabilities : [{needed}]")


def _patch_cfn_change_sets() -> None:
    """Change sets diff template text (a parameter change shows nothing; conditions are ignored), report
    no Replacement/Details, fail UsePreviousValue updates with "No updates are to be performed", and
    find change sets by name across stacks. (Templates are also parsed with libyaml, once.)"""
    from moto.cloudformation.exceptions import AlreadyExistsException, ValidationError
    from moto.cloudformation.models import ChangeSet, CloudFormationBackend, Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.cloudformation.utils import generate_changeset_id, generate_stack_id, validate_create_change_set
    from moto.core.responses import ActionResult, EmptyResult

    stack_model: Any = Stack

    def diff(self: Any) -> list[Any]:
        return _plan(self.stack, self.template_dict, self.parameters, self.tags)

    def _parse_change_set_template(self: Any) -> None:
        self.template_dict = _parse_template(self.template)

    def create_change_set(
        self: Any,
        stack_name: str,
        change_set_name: str,
        template: str,
        parameters: dict[str, str],
        description: str,
        change_set_type: str,
        notification_arns: list[str] | None = None,
        tags: dict[str, str] | None = None,
        role_arn: str | None = None,
    ) -> tuple[str, str]:
        validate_create_change_set(change_set_name)
        stack: Any = next((s for s in self.stacks.values() if s.name == stack_name), None)
        if change_set_type == "UPDATE":
            if stack is None or stack.status == "REVIEW_IN_PROGRESS":
                raise ValidationError(stack_name)
            if stack.status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"):
                message = f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                raise ValidationError(stack.stack_id, message=message)
        elif stack is not None and stack.status != "REVIEW_IN_PROGRESS":
            raise AlreadyExistsException(
                f"Stack [{stack_name}] already exists and cannot be created again "
                f"with the changeSet [{change_set_name}]."
            )
        new_stack = stack is None
        if stack is None:
            stack = stack_model(
                stack_id=generate_stack_id(stack_name, self.region_name, self.account_id),
                name=stack_name,
                template={},
                parameters=parameters,
                account_id=self.account_id,
                region_name=self.region_name,
                notification_arns=notification_arns,
                tags=tags,
                role_arn=role_arn,
                cross_stack_resources=self.exports,
            )
            stack._compat_state = {}
        change_set = ChangeSet(
            change_set_type=change_set_type,
            change_set_id=generate_changeset_id(change_set_name, self.region_name, self.account_id),
            change_set_name=change_set_name,
            stack=stack,
            template=template,
            parameters=parameters,
            description=description,
            notification_arns=notification_arns,
            tags=tags,
            role_arn=role_arn,
        )
        if change_set_type == "UPDATE" and not change_set.changes:
            change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
            change_set.status_reason = _NO_CHANGES
        else:
            change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
        if new_stack:
            self.stacks[stack.stack_id] = stack
            stack.status = "REVIEW_IN_PROGRESS"
            stack._add_stack_event("REVIEW_IN_PROGRESS", resource_status_reason="User Initiated")
        self.change_sets[change_set.change_set_id] = change_set
        return change_set.change_set_id, stack.stack_id

    def create_change_set_response(self: Any) -> ActionResult:
        backend = self.cloudformation_backend
        stack_name, kind = self._get_param("StackName"), self._get_param("ChangeSetType", "CREATE")
        body, url = self._get_param("TemplateBody"), self._get_param("TemplateURL")
        previous: dict[str, str] = {}
        if kind == "UPDATE":
            stack = backend.get_stack(stack_name)
            previous = _parameter_values(stack)
            if str(self._get_param("UsePreviousTemplate", "false")).lower() == "true":
                body = stack.template
        if not body and url:
            body = self._get_stack_from_s3_url(url)
        if not body:
            raise ValidationError(message="Either Template URL or Template Body must be specified.")
        parameters: dict[str, str] = {}
        for item in self._get_param("Parameters", []):
            key = item["ParameterKey"]
            if str(item.get("UsePreviousValue", "false")).lower() == "true":
                if key not in previous:
                    raise ValidationError(
                        message=f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true "
                        "for a parameter key not in the previous template"
                    )
                parameters[key] = previous[key]
            else:
                parameters[key] = item.get("ParameterValue", "")
        _require_capabilities(_parse_template(body), self._get_param("Capabilities", []))
        change_set_id, stack_id = backend.create_change_set(
            stack_name=stack_name,
            change_set_name=self._get_param("ChangeSetName"),
            template=body,
            parameters=parameters,
            description=self._get_param("Description"),
            notification_arns=self._get_param("NotificationARNs", []),
            tags={item["Key"]: item["Value"] for item in self._get_param("Tags", [])},
            role_arn=self._get_param("RoleARN"),
            change_set_type=kind,
        )
        return ActionResult({"Id": change_set_id, "StackId": stack_id})

    def describe_change_set(self: Any) -> ActionResult:
        return ActionResult(
            _find_change_set(
                self.cloudformation_backend, self._get_param("ChangeSetName"), self._get_param("StackName")
            )
        )

    def delete_change_set(self: Any) -> EmptyResult:
        backend = self.cloudformation_backend
        change_set = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
        del backend.change_sets[change_set.change_set_id]
        return EmptyResult()

    def list_change_sets(self: Any) -> ActionResult:
        backend = self.cloudformation_backend
        stack = backend.get_stack(self._get_param("StackName"))
        return ActionResult({"Summaries": [cs for cs in backend.change_sets.values() if cs.stack_id == stack.stack_id]})

    ChangeSet.diff = diff  # type: ignore[method-assign]
    ChangeSet._parse_template = _parse_change_set_template  # type: ignore[method-assign]
    Stack.parse_template = staticmethod(_parse_template)  # type: ignore[assignment, method-assign]
    CloudFormationBackend.create_change_set = create_change_set  # type: ignore[method-assign]
    CloudFormationResponse.create_change_set = create_change_set_response  # type: ignore[method-assign]
    CloudFormationResponse.describe_change_set = describe_change_set  # type: ignore[method-assign]
    CloudFormationResponse.delete_change_set = delete_change_set  # type: ignore[method-assign]
    CloudFormationResponse.list_change_sets = list_change_sets  # type: ignore[method-assign]


#: CreateChangeSet's ChangeSetName constraints (API model: min 1, max 128, pattern).
_CHANGE_SET_NAME_PATTERN = "[a-zA-Z][-a-zA-Z0-9]*"
_CHANGE_SET_NAME_MAX = 128


def change_set_name_errors(name: str) -> list[str]:
    """The constraint violations CloudFormation reports for a ChangeSetName (empty: a valid name)."""
    errors = []
    if re.fullmatch(_CHANGE_SET_NAME_PATTERN, name, re.ASCII) is None:
        errors.append(f"Member must satisfy regular expression pattern: {_CHANGE_SET_NAME_PATTERN}")
    if len(name) > _CHANGE_SET_NAME_MAX:
        errors.append(f"Member must have length less than or equal to {_CHANGE_SET_NAME_MAX}")
    if not name:
        errors.append("Member must have length greater than or equal to 1")
    return errors


def _patch_cfn_change_set_names() -> None:
    """moto checks a ChangeSetName with str.isalnum (it accepts non-ASCII letters and digits such as
    'ü' or '²') and its ValidationError reads "Stack with id Invalid change set name: ... does not
    exist". CloudFormation refuses the request before doing anything, with ValidationError
    "1 validation error detected: Value '...' at 'changeSetName' failed to satisfy constraint: ...".
    (Applied after _patch_cfn_change_sets, whose CreateChangeSet this wraps.)"""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.responses import CloudFormationResponse

    original = CloudFormationResponse.create_change_set

    def create_change_set(self: Any) -> Any:
        name = str(self._get_param("ChangeSetName") or "")
        errors = change_set_name_errors(name)
        if errors:
            count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
            detail = "; ".join(f"Value '{name}' at 'changeSetName' failed to satisfy constraint: {e}" for e in errors)
            raise ValidationError(message=count + detail)
        return original(self)

    CloudFormationResponse.create_change_set = create_change_set  # type: ignore[method-assign]


def _patch_cfn_execution() -> None:
    """ExecuteChangeSet raises the first moto error instead of rolling back (as CloudFormation does, with
    each resource's DeletionPolicy, RetainExceptOnCreate included) and records no resource events;
    DeleteStack raises instead of failing (DELETE_FAILED) and ignores DeletionPolicy."""
    from moto.cloudformation.models import CloudFormationBackend

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        _execute(self, _find_change_set(self, change_set_name, stack_name))

    def delete_stack(self: Any, name_or_stack_id: str) -> None:
        stack = next((s for s in self.stacks.values() if name_or_stack_id in (s.stack_id, s.name)), None)
        if stack is not None:
            stack._compat_pending = None  # deleting a stack stops its creation
            _delete_stack(self, stack)

    CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationBackend.delete_stack = delete_stack  # type: ignore[method-assign]


def _patch_cfn_operation_time() -> None:
    """Stack operations finish within the call that starts them (never *_IN_PROGRESS), and
    CancelUpdateStack is not implemented. With HOOKS.stack_operation_seconds an operation stays in
    progress for that much virtual time; any CloudFormation call first finishes what is due."""
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import EmptyResult

    original = CloudFormationResponse.call_action

    def call_action(self: Any) -> Any:
        settle_pending(self.cloudformation_backend)
        return original(self)

    def cancel_update_stack(self: Any) -> EmptyResult:
        backend = self.cloudformation_backend
        _cancel_update(backend, backend.get_stack(self._get_param("StackName")))
        return EmptyResult()

    CloudFormationResponse.call_action = call_action  # type: ignore[method-assign]
    CloudFormationResponse.cancel_update_stack = cancel_update_stack  # type: ignore[attr-defined]


@dataclass
class _StackResource:
    """A resource as DescribeStackResource(s) and ListStackResources report it."""

    logical_resource_id: str
    physical_resource_id: str
    cf_resource_type: str


def _stack_resources(stack: Any) -> list[_StackResource]:
    parsed = stack.resource_map._parsed_resources
    return [_StackResource(name, _physical_id(parsed.get(name)), e["Type"]) for name, e in _state(stack).items()]


def _patch_cfn_stack_resources() -> None:
    """DescribeStackResource(s) and ListStackResources walk the whole template: resources whose
    Condition is false (or that moto does not model) appear as empty entries, and DescribeStackResource
    fails on them."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import CloudFormationBackend

    def list_stack_resources(self: Any, stack_name_or_id: str) -> tuple[Any, list[_StackResource]]:
        stack = self.get_stack(stack_name_or_id)
        return stack, _stack_resources(stack)

    def describe_stack_resources(self: Any, stack_name: str, logical_resource_id: str) -> tuple[Any, list[Any]]:
        stack = self.get_stack(stack_name)
        found = _stack_resources(stack)
        return stack, [r for r in found if logical_resource_id in (None, r.logical_resource_id)]

    def describe_stack_resource(self: Any, stack_name: str, logical_resource_id: str) -> tuple[Any, Any]:
        stack, found = describe_stack_resources(self, stack_name, logical_resource_id)
        if not found or logical_resource_id is None:
            message = f"Resource {logical_resource_id} does not exist for stack {stack_name}"
            raise ValidationError(stack_name, message=message)
        return stack, found[0]

    CloudFormationBackend.list_stack_resources = list_stack_resources  # type: ignore[assignment, method-assign]
    CloudFormationBackend.describe_stack_resources = describe_stack_resources  # type: ignore[method-assign]
    CloudFormationBackend.describe_stack_resource = describe_stack_resource  # type: ignore[method-assign]
