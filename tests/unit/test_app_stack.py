"""Static checks of the application stack template (layers/common/stepdeploy/stacks/app.yaml).

The template is parsed with a YAML loader that understands the CloudFormation
short-form intrinsic tags, then the properties that matter for security,
availability and the orchestrator's contract are asserted; cfn-lint is run on
the file as well.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "layers" / "common" / "stepdeploy" / "stacks" / "app.yaml"

PRIVATE_SUBNETS = [{"Ref": "PrivateSubnet1"}, {"Ref": "PrivateSubnet2"}]
PUBLIC_SUBNETS = [{"Ref": "PublicSubnet1"}, {"Ref": "PublicSubnet2"}]


class CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """SafeLoader that turns CloudFormation short-form tags into long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)

    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=CfnLoader)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == resource_type}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    resource = template["Resources"][logical_id]
    properties = resource["Properties"]
    assert isinstance(properties, dict)
    return properties


def ingress_rules(template: dict[str, Any], group_id: str) -> Iterator[dict[str, Any]]:
    """Inline rules of the group plus standalone SecurityGroupIngress resources on it."""
    yield from props(template, group_id).get("SecurityGroupIngress", [])
    for resource in resources_of_type(template, "AWS::EC2::SecurityGroupIngress").values():
        if resource["Properties"]["GroupId"] == {"Ref": group_id}:
            yield resource["Properties"]


def default_of(template: dict[str, Any], value: Any) -> Any:
    """Resolve a literal or a {"Ref": Parameter} to the parameter's default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    assert isinstance(value, str) and value.lower() in {"true", "false"}, value
    return value.lower() == "true"


def as_int(value: Any) -> int:
    return int(value)


# ------------------------------------------------------------------ the loader


def test_loader_converts_short_form_tags() -> None:
    text = "a: !Ref X\nb: !GetAtt A.B.C\nc: !Select [0, !GetAZs '']\nd: !Sub '${X}'\n"
    data = yaml.load(text, Loader=CfnLoader)
    assert data == {
        "a": {"Ref": "X"},
        "b": {"Fn::GetAtt": ["A", "B.C"]},
        "c": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        "d": {"Fn::Sub": "${X}"},
    }


def test_plain_cloudformation_without_sam_transform(template: dict[str, Any]) -> None:
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert "Transform" not in template
    assert template["Description"].strip()


# ------------------------------------------------------------------- database


def test_no_db_instance_is_publicly_accessible(template: dict[str, Any]) -> None:
    instances = resources_of_type(template, "AWS::RDS::DBInstance")
    assert len(instances) == 2
    for name, instance in instances.items():
        assert instance["Properties"]["PubliclyAccessible"] is False, name
        assert instance["Properties"]["DBClusterIdentifier"] == {"Ref": "DatabaseCluster"}


def test_db_writer_and_reader_are_in_different_azs(template: dict[str, Any]) -> None:
    writer = props(template, "DatabaseWriterInstance")["AvailabilityZone"]
    reader = props(template, "DatabaseReaderInstance")["AvailabilityZone"]
    assert writer == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert reader == {"Fn::Select": [1, {"Fn::GetAZs": ""}]}
    assert template["Resources"]["DatabaseReaderInstance"]["DependsOn"] == "DatabaseWriterInstance"


def test_db_subnet_group_uses_only_private_subnets(template: dict[str, Any]) -> None:
    assert props(template, "DatabaseSubnetGroup")["SubnetIds"] == PRIVATE_SUBNETS
    assert props(template, "DatabaseCluster")["DBSubnetGroupName"] == {"Ref": "DatabaseSubnetGroup"}


def test_no_password_parameter_and_managed_master_password(
    template: dict[str, Any],
) -> None:
    offending = [name for name in template["Parameters"] if "password" in name.lower() or "secret" in name.lower()]
    assert offending == []
    cluster = props(template, "DatabaseCluster")
    assert cluster["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in cluster


def test_cluster_is_aurora_postgresql_encrypted_and_backed_up(
    template: dict[str, Any],
) -> None:
    cluster = props(template, "DatabaseCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert str(default_of(template, cluster["EngineVersion"])).startswith("15.")
    assert cluster["StorageEncrypted"] is True
    assert as_int(default_of(template, cluster["BackupRetentionPeriod"])) == 7
    assert cluster["VpcSecurityGroupIds"] == [{"Ref": "DatabaseSecurityGroup"}]


def test_cluster_deletion_protection_and_snapshot_policies(
    template: dict[str, Any],
) -> None:
    cluster_resource = template["Resources"]["DatabaseCluster"]
    assert cluster_resource["DeletionPolicy"] == "Snapshot"
    assert cluster_resource["UpdateReplacePolicy"] == "Snapshot"
    # protected unless DatabaseDeletionProtection=false, or while stepdeploy creates the stack
    # (DeferDatabaseDeletionProtection=true: a failed creation can then roll back and be retried)
    assert cluster_resource["Properties"]["DeletionProtection"] == {"Fn::If": ["ProtectDatabase", True, False]}
    assert template["Conditions"]["ProtectDatabase"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "DatabaseDeletionProtection"}, "true"]},
            {"Fn::Equals": [{"Ref": "DeferDatabaseDeletionProtection"}, "false"]},
        ]
    }
    # by default (a stack created without stepdeploy too) the cluster is protected from the start
    assert as_bool(default_of(template, {"Ref": "DatabaseDeletionProtection"})) is True
    assert as_bool(default_of(template, {"Ref": "DeferDatabaseDeletionProtection"})) is False


# -------------------------------------------------------------------- network


def test_two_azs_are_used(template: dict[str, Any]) -> None:
    expected = {
        "PublicSubnet1": 0,
        "PrivateSubnet1": 0,
        "PublicSubnet2": 1,
        "PrivateSubnet2": 1,
    }
    subnets = resources_of_type(template, "AWS::EC2::Subnet")
    assert set(subnets) == set(expected)
    for name, index in expected.items():
        assert subnets[name]["Properties"]["AvailabilityZone"] == {"Fn::Select": [index, {"Fn::GetAZs": ""}]}


def test_private_subnets_route_through_nat_and_public_through_igw(
    template: dict[str, Any],
) -> None:
    assert props(template, "PublicDefaultRoute")["GatewayId"] == {"Ref": "InternetGateway"}
    assert props(template, "PrivateDefaultRoute1")["NatGatewayId"] == {"Ref": "NatGateway1"}
    assert props(template, "PrivateDefaultRoute2")["NatGatewayId"] == {
        "Fn::If": ["NatPerAz", {"Ref": "NatGateway2"}, {"Ref": "NatGateway1"}]
    }
    assert template["Parameters"]["NatGatewayMode"]["AllowedValues"] == [
        "single",
        "per-az",
    ]
    assert template["Resources"]["NatGateway2"]["Condition"] == "NatPerAz"


def test_ecs_service_runs_in_private_subnets_without_public_ip(
    template: dict[str, Any],
) -> None:
    awsvpc = props(template, "Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert awsvpc["Subnets"] == PRIVATE_SUBNETS
    assert awsvpc["AssignPublicIp"] == "DISABLED"
    assert awsvpc["SecurityGroups"] == [{"Ref": "TaskSecurityGroup"}]


def test_alb_is_in_public_subnets(template: dict[str, Any]) -> None:
    alb = props(template, "LoadBalancer")
    assert alb["Subnets"] == PUBLIC_SUBNETS
    assert alb["Scheme"] == "internet-facing"
    assert alb["SecurityGroups"] == [{"Ref": "LoadBalancerSecurityGroup"}]


def test_security_group_chain(template: dict[str, Any]) -> None:
    db_rules = list(ingress_rules(template, "DatabaseSecurityGroup"))
    assert db_rules, "database SG has no ingress"
    for rule in db_rules:
        assert rule["SourceSecurityGroupId"] == {"Ref": "TaskSecurityGroup"}
        assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
        assert "CidrIp" not in rule and "CidrIpv6" not in rule

    task_rules = list(ingress_rules(template, "TaskSecurityGroup"))
    assert task_rules, "task SG has no ingress"
    for rule in task_rules:
        assert rule["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"}
        assert rule["FromPort"] == rule["ToPort"] == {"Ref": "ContainerPort"}
        assert "CidrIp" not in rule and "CidrIpv6" not in rule

    alb_rules = list(ingress_rules(template, "LoadBalancerSecurityGroup"))
    assert sorted((str(r["FromPort"]), str(r["CidrIp"])) for r in alb_rules) == sorted(
        [
            ("80", "0.0.0.0/0"),
            ("443", "0.0.0.0/0"),
            (str({"Ref": "TestListenerPort"}), str({"Ref": "TestTrafficCidr"})),  # the token-gated test listener
        ]
    )


def test_security_group_egress_is_restricted(template: dict[str, Any]) -> None:
    alb_egress = props(template, "LoadBalancerSecurityGroup")["SecurityGroupEgress"]
    assert alb_egress == [
        {
            "Description": alb_egress[0]["Description"],
            "IpProtocol": "tcp",
            "FromPort": {"Ref": "ContainerPort"},
            "ToPort": {"Ref": "ContainerPort"},
            "DestinationSecurityGroupId": {"Ref": "TaskSecurityGroup"},
        }
    ]
    db_egress = props(template, "DatabaseSecurityGroup")["SecurityGroupEgress"]
    assert [rule["CidrIp"] for rule in db_egress] == ["127.0.0.1/32"]


# -------------------------------------------------------------- ECS and ALB


def test_task_definition_environment_and_secret(template: dict[str, Any]) -> None:
    task = props(template, "TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    (container,) = task["ContainerDefinitions"]
    assert container["Command"] == {"Ref": "ContainerCommand"}
    assert template["Parameters"]["ContainerCommand"]["Type"] == "CommaDelimitedList"
    assert template["Parameters"]["ContainerCommand"]["Default"] == "serve"
    assert template["Parameters"]["ContainerPort"]["Default"] == 3000
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env["VTT_DBTYPE"] == "postgres"
    assert env["VTT_LISTENHOST"] == "0.0.0.0"
    assert env["VTT_LISTENPORT"] == {"Ref": "ContainerPort"}
    assert env["VTT_DBHOST"] == {"Fn::GetAtt": ["DatabaseCluster", "Endpoint.Address"]}
    assert env["VTT_DBPORT"] == {"Fn::GetAtt": ["DatabaseCluster", "Endpoint.Port"]}
    assert env["VTT_DBUSER"] == {"Ref": "DatabaseUsername"}
    assert env["VTT_DBNAME"] == {"Ref": "DatabaseName"}
    assert "VTT_DBPASSWORD" not in env
    assert container["Secrets"] == [
        {
            "Name": "VTT_DBPASSWORD",
            "ValueFrom": {"Fn::Sub": "${DatabaseCluster.MasterUserSecret.SecretArn}:password::"},
        }
    ]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}


def test_execution_role_can_read_only_the_database_secret(
    template: dict[str, Any],
) -> None:
    role = props(template, "TaskExecutionRole")
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    secret_statements = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert secret_statements == [
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]},
        }
    ]


def test_service_circuit_breaker_with_rollback(template: dict[str, Any]) -> None:
    service = props(template, "Service")
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    assert service["LaunchType"] == "FARGATE"
    count = service["DesiredCount"]["Fn::If"]
    assert count[0] == "SetDesiredCount" and count[2] == {"Ref": "AWS::NoValue"}
    assert as_int(default_of(template, count[1])) == 2
    assert template["Conditions"]["SetDesiredCount"] == {"Fn::Equals": [{"Ref": "PreserveDesiredCount"}, "false"]}
    [balancer] = service["LoadBalancers"]
    assert {k: v for k, v in balancer.items() if k != "AdvancedConfiguration"} == {
        "ContainerName": {"Ref": "ContainerName"},
        "ContainerPort": {"Ref": "ContainerPort"},
        "TargetGroupArn": {"Ref": "TargetGroup"},
    }
    # blue/green: only when not ROLLING (tests/contract/test_template_contract.py checks its contents)
    assert balancer["AdvancedConfiguration"]["Fn::If"][:2] == ["Rolling", {"Ref": "AWS::NoValue"}]


def test_container_insights_enabled(template: dict[str, Any]) -> None:
    settings = props(template, "EcsCluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_autoscaling_min_capacity_and_cpu_memory_policies(
    template: dict[str, Any],
) -> None:
    target = props(template, "ScalableTarget")
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert as_int(default_of(template, target["MinCapacity"])) >= 2
    assert as_int(default_of(template, target["MaxCapacity"])) >= as_int(default_of(template, target["MinCapacity"]))

    metric_types = set()
    for policy in resources_of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        policy_props = policy["Properties"]
        assert policy_props["PolicyType"] == "TargetTrackingScaling"
        assert policy_props["ScalingTargetId"] == {"Ref": "ScalableTarget"}
        config = policy_props["TargetTrackingScalingPolicyConfiguration"]
        metric_types.add(config["PredefinedMetricSpecification"]["PredefinedMetricType"])
    assert metric_types == {
        "ECSServiceAverageCPUUtilization",
        "ECSServiceAverageMemoryUtilization",
    }


def test_target_group_health_check(template: dict[str, Any]) -> None:
    target_group = props(template, "TargetGroup")
    assert target_group["TargetType"] == "ip"
    assert target_group["HealthCheckPath"] == {"Ref": "HealthCheckPath"}
    assert template["Parameters"]["HealthCheckPath"]["Default"] == "/healthcheck/"
    assert target_group["Matcher"] == {"HttpCode": "200"}


def test_https_listener_and_redirect_are_conditional(template: dict[str, Any]) -> None:
    assert template["Conditions"]["HasCertificate"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}
    assert template["Parameters"]["CertificateArn"]["Default"] == ""
    https = template["Resources"]["HttpsListener"]
    assert https["Condition"] == "HasCertificate"
    assert https["Properties"]["Port"] == 443
    condition, with_cert, without_cert = props(template, "HttpListener")["DefaultActions"]["Fn::If"]
    assert condition == "HasCertificate"
    assert with_cert[0]["Type"] == "redirect"
    assert with_cert[0]["RedirectConfig"]["Protocol"] == "HTTPS"
    assert without_cert == [{"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}]


def test_alarms_for_health_gates(template: dict[str, Any]) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    metrics = {alarm["Properties"]["MetricName"]: alarm["Properties"] for alarm in alarms.values()}
    assert set(metrics) == {
        "HTTPCode_Target_5XX_Count",
        "UnHealthyHostCount",
        "TargetResponseTime",
    }
    for alarm in metrics.values():
        assert alarm["Namespace"] == "AWS/ApplicationELB"
        threshold = alarm["Threshold"]
        assert isinstance(threshold, dict) and threshold["Ref"] in template["Parameters"]
    alarm_names = template["Outputs"]["AlarmNames"]["Value"]["Fn::Join"]
    assert alarm_names[0] == ","
    assert sorted(ref["Ref"] for ref in alarm_names[1]) == sorted(alarms)


def test_the_unhealthy_hosts_alarms_watch_both_target_groups(template: dict[str, Any]) -> None:
    """A blue/green, canary or linear release moves the tasks to the alternate target group: an alarm watching
    only the first would go blind after the first release."""
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    unhealthy = [a["Properties"] for a in alarms if a["Properties"]["MetricName"] == "UnHealthyHostCount"]
    groups = sorted(
        d["Value"]["Fn::GetAtt"][0] for props in unhealthy for d in props["Dimensions"] if d["Name"] == "TargetGroup"
    )
    assert groups == sorted(resources_of_type(template, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    for props in unhealthy:
        balancer = [d["Value"] for d in props["Dimensions"] if d["Name"] == "LoadBalancer"]
        assert balancer == [{"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]}]
        assert props["Threshold"] == {"Ref": "UnhealthyHostThreshold"}


# -------------------------------------------------------------------- outputs

EXPECTED_OUTPUTS = {
    "ClusterName",
    "ServiceName",
    "LoadBalancerDNSName",
    "HealthCheckUrl",
    "TargetGroupArn",
    "AlarmNames",
    "DatabaseEndpoint",
    "DatabaseSecretArn",
    "TaskDefinitionArn",
    "ContainerName",
    "VpcId",
    "PublicSubnetIds",
    "PrivateSubnetIds",
    "TaskSecurityGroupId",
}


def test_expected_outputs_exist(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    missing = EXPECTED_OUTPUTS - set(outputs)
    assert missing == set()
    assert outputs["DatabaseSecretArn"]["Value"] == {"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]}
    assert outputs["HealthCheckUrl"]["Value"]["Fn::Sub"][0] == "${Scheme}://${Host}${HealthCheckPath}"


def test_no_hard_coded_account_or_region() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "us-east-1" not in text
    for token in text.replace('"', " ").split():
        assert not (token.isdigit() and len(token) == 12), f"account-like literal {token}"


# -------------------------------------------------------------------- cfn-lint


def test_cfn_lint_reports_nothing() -> None:
    cfnlint_api = pytest.importorskip("cfnlint.api")
    config = cfnlint_api.ManualArgs(include_checks=["I"])
    matches = cfnlint_api.lint_file(TEMPLATE_PATH, config=config)
    assert [str(match) for match in matches] == []


# ------------------------------------------------- network least privilege (issue 13, point 5)
# Each rule is a function returning its violations, asserted empty on the template and non-empty on a
# copy with one widened rule (so each check is shown to catch what it is for).

INTERNET = ("0.0.0.0/0", "::/0")


def security_groups(template: dict[str, Any]) -> list[str]:
    return sorted(resources_of_type(template, "AWS::EC2::SecurityGroup"))


def listener_ports(template: dict[str, Any]) -> list[Any]:
    return [
        r["Properties"]["Port"] for r in resources_of_type(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    ]


def from_the_internet(template: dict[str, Any], rule: dict[str, Any]) -> bool:
    """The rule's source, or its parameter's default, is every address."""
    return any(default_of(template, rule.get(key)) in INTERNET for key in ("CidrIp", "CidrIpv6"))


def only_from_group(template: dict[str, Any], group: str, source: str, port: Any) -> list[str]:
    rules = list(ingress_rules(template, group))
    found = [] if rules else [f"{group} has no ingress"]
    for rule in rules:
        if (rule.get("SourceSecurityGroupId"), rule.get("IpProtocol")) != ({"Ref": source}, "tcp"):
            found.append(f"{group} admits {rule} (not tcp from {source})")
        elif (rule.get("FromPort"), rule.get("ToPort")) != (port, port):
            found.append(f"{group} admits ports {rule.get('FromPort')}-{rule.get('ToPort')} from {source}")
    return found


def task_ingress_violations(template: dict[str, Any]) -> list[str]:
    return only_from_group(template, "TaskSecurityGroup", "LoadBalancerSecurityGroup", {"Ref": "ContainerPort"})


def database_ingress_violations(template: dict[str, Any]) -> list[str]:
    found = only_from_group(template, "DatabaseSecurityGroup", "TaskSecurityGroup", 5432)
    if props(template, "DatabaseCluster")["VpcSecurityGroupIds"] != [{"Ref": "DatabaseSecurityGroup"}]:
        found.append("the cluster is not (only) in DatabaseSecurityGroup")
    # the database init task runs with the output's group (workflow.py): it must be the tasks' group
    if template["Outputs"]["TaskSecurityGroupId"]["Value"] != {"Ref": "TaskSecurityGroup"}:
        found.append("TaskSecurityGroupId (the init task's group) is not the group the database admits")
    return found


def listener_port_violations(template: dict[str, Any]) -> list[str]:
    port = {"Ref": "TestListenerPort"}
    found = [
        f"test listener port admits {rule}"
        for rule in ingress_rules(template, "LoadBalancerSecurityGroup")
        if port in (rule.get("FromPort"), rule.get("ToPort"))
        and (rule.get("FromPort"), rule.get("ToPort"), rule.get("CidrIp")) != (port, port, {"Ref": "TestTrafficCidr"})
    ]
    listener = props(template, "TestListener")
    if listener["Port"] != port or listener["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] != "403":
        found.append("the test listener does not refuse (403) requests by default")
    [condition] = props(template, "TestListenerRule")["Conditions"]
    if condition["Field"] != "http-header" or condition["HttpHeaderConfig"]["HttpHeaderName"] != "X-Stepdeploy-Test":
        found.append("the test listener forwards without the test token")
    return found


def internet_ingress_violations(template: dict[str, Any]) -> list[str]:
    """Only the load balancer is open to every address, and only on its listeners' ports."""
    ports = listener_ports(template)
    return [
        f"{group} admits the internet on {rule.get('FromPort')}-{rule.get('ToPort')}"
        for group in security_groups(template)
        for rule in ingress_rules(template, group)
        if from_the_internet(template, rule)
        and (
            group != "LoadBalancerSecurityGroup" or rule["FromPort"] != rule["ToPort"] or rule["FromPort"] not in ports
        )
    ]


# Egress the platform needs: tasks pull images (ECR), read the database secret (Secrets Manager) and ship
# logs (CloudWatch Logs) over HTTPS to public endpoints through the NAT gateway (no VPC endpoints: their
# hourly cost per AZ exceeds the NAT's for this traffic), so 443 to every address; AWS gives these services no
# fixed address ranges a security group could name.
ALLOWED_EGRESS = {
    "LoadBalancerSecurityGroup": [
        ("tcp", {"Ref": "ContainerPort"}, {"DestinationSecurityGroupId": {"Ref": "TaskSecurityGroup"}})
    ],
    "TaskSecurityGroup": [
        ("tcp", 443, {"CidrIp": "0.0.0.0/0"}),
        ("tcp", 5432, {"DestinationSecurityGroupId": {"Ref": "DatabaseSecurityGroup"}}),
    ],
    "DatabaseSecurityGroup": [("icmp", 252, {"CidrIp": "127.0.0.1/32"})],  # matches nothing: no egress at all
}


def egress_violations(template: dict[str, Any]) -> list[str]:
    found = (
        []
        if security_groups(template) == sorted(ALLOWED_EGRESS)
        else ["a security group the egress allow-list does not know"]
    )
    for group in security_groups(template):
        declared = props(template, group).get("SecurityGroupEgress")
        if not declared:  # no rule declared: AWS's default allows everything
            found.append(f"{group} keeps the default allow-all egress")
            continue
        seen = [
            (
                r["IpProtocol"],
                r["FromPort"],
                {k: r[k] for k in r if k in ("CidrIp", "CidrIpv6", "DestinationSecurityGroupId")},
            )
            for r in declared
        ]
        found += [f"{group} egress {rule} is not needed" for rule in seen if rule not in ALLOWED_EGRESS.get(group, [])]
    found += [f"standalone egress {name}" for name in resources_of_type(template, "AWS::EC2::SecurityGroupEgress")]
    return found


NETWORK_RULES = [
    task_ingress_violations,
    database_ingress_violations,
    listener_port_violations,
    internet_ingress_violations,
    egress_violations,
]


@pytest.mark.parametrize("rule", NETWORK_RULES, ids=lambda rule: rule.__name__)
def test_network_least_privilege(template: dict[str, Any], rule: Any) -> None:
    assert rule(template) == []


def _widened(
    template: dict[str, Any], group: str, rule: dict[str, Any], key: str = "SecurityGroupIngress"
) -> dict[str, Any]:
    widened = copy_template(template)
    props(widened, group).setdefault(key, []).append(rule)
    return widened


def copy_template(template: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(template)


WIDENINGS = {
    task_ingress_violations: (
        "TaskSecurityGroup",
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.0.0.0/16"},
    ),
    database_ingress_violations: (
        "DatabaseSecurityGroup",
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"},
        },
    ),
    listener_port_violations: (
        "LoadBalancerSecurityGroup",
        {
            "IpProtocol": "tcp",
            "FromPort": {"Ref": "TestListenerPort"},
            "ToPort": {"Ref": "TestListenerPort"},
            "CidrIp": "0.0.0.0/0",
        },
    ),
    internet_ingress_violations: (
        "LoadBalancerSecurityGroup",
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "CidrIpv6": "::/0"},
    ),
}


@pytest.mark.parametrize("rule", list(WIDENINGS), ids=lambda rule: rule.__name__)
def test_each_network_rule_catches_a_widened_ingress(template: dict[str, Any], rule: Any) -> None:
    group, widening = WIDENINGS[rule]
    assert rule(_widened(template, group, widening)) != []


def test_the_egress_rule_catches_a_widened_or_default_egress(template: dict[str, Any]) -> None:
    everything = {"IpProtocol": "-1", "FromPort": -1, "CidrIp": "0.0.0.0/0"}
    assert egress_violations(_widened(template, "DatabaseSecurityGroup", everything, "SecurityGroupEgress")) != []
    default = copy_template(template)
    del props(default, "LoadBalancerSecurityGroup")["SecurityGroupEgress"]
    assert egress_violations(default) == ["LoadBalancerSecurityGroup keeps the default allow-all egress"]
    # the test listener admitted from TestTrafficCidr is on a listener port; the internet on 5432 is not
    assert internet_ingress_violations(template) == []
    to_the_database = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIp": "0.0.0.0/0"}
    assert internet_ingress_violations(_widened(template, "DatabaseSecurityGroup", to_the_database)) != []
