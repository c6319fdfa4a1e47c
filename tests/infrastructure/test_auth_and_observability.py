"""Who may call the API, and what the stack records about what happens."""

from __future__ import annotations

import pytest
from infra_template import FUNCTIONS

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]


def test_jwt_issuer_and_audience_are_parameters_with_cognito_as_default(stack):
    params = stack.template["Parameters"]
    assert params["OidcIssuer"]["Default"] == ""
    assert params["OidcAudience"]["Default"] == ""
    assert stack.template["Conditions"]["UseCognito"] == {"Fn::Equals": [{"Ref": "OidcIssuer"}, ""]}
    pool_id, pool = stack.one("AWS::Cognito::UserPool")
    client_id, client = stack.one("AWS::Cognito::UserPoolClient")
    assert pool["Condition"] == client["Condition"] == "UseCognito"
    for name in FUNCTIONS:
        env = stack.function(name)["Environment"]["Variables"]
        issuer = env["LAPSE_OIDC_ISSUER"]["Fn::If"]
        assert issuer[0] == "UseCognito"
        assert issuer[2] == {"Ref": "OidcIssuer"}
        assert "cognito-idp" in str(issuer[1])
        assert pool_id in str(issuer[1])
        assert env["LAPSE_OIDC_AUDIENCE"]["Fn::If"] == [
            "UseCognito",
            {"Ref": client_id},
            {"Ref": "OidcAudience"},
        ]


def test_functions_and_api_are_traced(stack):
    for name in FUNCTIONS:
        assert stack.function(name)["Tracing"] == "Active"
        assert stack.allows(name, "xray:PutTraceSegments", "*")
    assert stack.resources["RestAPI"]["Properties"]["TracingEnabled"] is True


def test_api_is_throttled(stack):
    (settings,) = stack.resources["RestAPI"]["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] > 0
    assert settings["ThrottlingBurstLimit"] > 0


def test_logs_and_metrics_are_named_for_the_service(stack):
    for name in FUNCTIONS:
        env = stack.function(name)["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "lapse"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "lapse"
        # Functions write into log groups the stack made first (with a retention), not their own.
        group = stack.resources[FUNCTIONS[name]]["DependsOn"]
        assert any(stack.resources[g]["Type"] == "AWS::Logs::LogGroup" for g in group)


def test_stack_outputs_what_a_front_end_needs(stack):
    outputs = stack.template["Outputs"]
    assert {"EndpointURL", "TableName", "QueueUrl"} <= set(outputs)
    assert outputs["UserPoolId"]["Condition"] == "UseCognito"


def test_gateway_refusals_answer_in_lapses_error_shape(stack):
    # An unknown route, an oversized request or a throttled caller is refused by API Gateway
    # before the app runs; its answer still reads {"error": {code, message}}
    responses = stack.of_type("AWS::ApiGateway::GatewayResponse").values()
    by_type = {r["Properties"]["ResponseType"]: r["Properties"] for r in responses}
    assert set(by_type) == {"DEFAULT_4XX", "DEFAULT_5XX"}
    for props in by_type.values():
        assert props["RestApiId"] == {"Ref": "RestAPI"}
        template = props["ResponseTemplates"]["application/json"]
        assert template.startswith('{"error": {"code": ')
        assert "$context.error.messageString" in template
        assert props["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
