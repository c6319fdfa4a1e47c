"""Reading the synthesized templates: resources by type, roles, and what a role allows."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STACKS = ("lapse-dev", "lapse-prod", "lapse-dev-r2")
FUNCTIONS = {
    "api_handler": "APIHandler",
    "process_uploads": "ProcessUploads",
    "watchdog": "Watchdog",
    "dead_letters": "DeadLetters",
    "deliver_webhooks": "DeliverWebhooks",
    "webhook_dead_letters": "WebhookDeadLetters",
}


def render(value: Any) -> str:
    """An intrinsic function as a readable string: {"Fn::GetAtt": ["B", "Arn"]} → "arn::B"."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"{{{arg}}}"
        if fn == "Fn::GetAtt":
            return f"arn::{arg[0]}" if arg[1] == "Arn" else f"{{{arg[0]}.{arg[1]}}}"
        if fn == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
    return json.dumps(value, sort_keys=True)


@dataclass
class Stack:
    name: str
    template: dict[str, Any]
    path: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def one(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"{self.name}: expected one {resource_type}, got {list(found)}"
        return next(iter(found.items()))

    def function(self, name: str) -> dict[str, Any]:
        return self.resources[FUNCTIONS[name]]["Properties"]

    def role(self, name: str) -> tuple[str, dict[str, Any]]:
        role_ref = self.function(name)["Role"]
        assert set(role_ref) == {"Fn::GetAtt"}, f"{name}'s role is not made by the stack"
        logical_id = role_ref["Fn::GetAtt"][0]
        return logical_id, self.resources[logical_id]

    def allow_statements(self, name: str) -> list[dict[str, Any]]:
        _, role = self.role(name)
        return [
            statement
            for policy in role["Properties"].get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Allow"
        ]

    def allows(self, name: str, action: str, resource: str) -> bool:
        """Whether function `name`'s role allows `action` on `resource` (a rendered ARN)."""
        for statement in self.allow_statements(name):
            actions = _as_list(statement["Action"])
            resources = [render(r) for r in _as_list(statement["Resource"])]
            if action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources):
                return True
        return False

    def bucket_object(self, key: str) -> str:
        bucket_id, _ = self.one("AWS::S3::Bucket")
        return f"arn::{bucket_id}/{key}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Synthesis:
    out: Path
    stacks: dict[str, Stack]
    chalice_config: dict[str, Any]
