"""One deployable lapse stage: storage, queue, table, ffmpeg layer and the wired Chalice app."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import (
    CfnCondition,
    CfnOutput,
    CfnParameter,
    CfnResource,
    Duration,
    Fn,
    RemovalPolicy,
    SecretValue,
    Stack,
)
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib.domain import schema
from chalicelib.domain.keys import SEGMENTS_PREFIX, VIDEOS_PREFIX
from stacks.chalice_app import LAMBDA_RUNTIME, ChaliceApp
from stacks.permissions import POLICIES, Resources
from stacks.stage import (
    FUNCTIONS,
    MAX_RECEIVE_COUNT,
    PROCESSOR,
    PROCESSOR_EPHEMERAL_MB,
    Stage,
)

RETENTION = {14: logs.RetentionDays.TWO_WEEKS, 90: logs.RetentionDays.THREE_MONTHS}


class LapseStack(Stack):
    def __init__(
        self, scope: Construct, stage: Stage, *, source_dir: Path, layer_zip: Path
    ) -> None:
        super().__init__(
            scope,
            stage.stack_name,
            stack_name=stage.stack_name,
            description=f"lapse ({stage.name}, {stage.storage} storage): videos in, timelapses out",
        )
        self.stage = stage
        self.removal = RemovalPolicy.RETAIN if stage.name == "prod" else RemovalPolicy.DESTROY

        issuer, audience = self._auth()
        self.table = self._table()
        self.queue, self.dlq = self._queues()
        self.webhook_queue, self.webhook_dlq = self._webhook_queues()
        self.bucket = self._bucket() if stage.storage == "s3" else None
        self.layer = lambda_.LayerVersion(
            self,
            "FfmpegLayer",
            code=lambda_.Code.from_asset(str(layer_zip)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13],
            compatible_architectures=[lambda_.Architecture.X86_64],
            license="GPL-3.0-or-later",
            description="ffmpeg 9.0.2 from imageio-ffmpeg 0.8.1 at /opt/bin/ffmpeg",
            removal_policy=RemovalPolicy.RETAIN,
        )
        webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            description="HMAC key for lapse webhook signatures (Lapse-Signature)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
            removal_policy=self.removal,
        )

        environment = {
            "LAPSE_TABLE": self.table.table_name,
            "LAPSE_QUEUE_URL": self.queue.queue_url,
            "LAPSE_QUEUE_NAME": stage.queue_name,
            "LAPSE_DLQ_NAME": stage.dlq_name,
            "LAPSE_WEBHOOK_QUEUE_URL": self.webhook_queue.queue_url,
            "LAPSE_WEBHOOK_QUEUE_NAME": stage.webhook_queue_name,
            "LAPSE_WEBHOOK_DLQ_URL": self.webhook_dlq.queue_url,
            "LAPSE_WEBHOOK_DLQ_NAME": stage.webhook_dlq_name,
            "LAPSE_OIDC_ISSUER": issuer,
            "LAPSE_OIDC_AUDIENCE": audience,
            "LAPSE_WEBHOOK_SECRET": webhook_secret.secret_value.unsafe_unwrap(),
            **self._storage_environment(),
        }
        self.app = ChaliceApp(
            self,
            "App",
            source_dir=str(source_dir),
            chalice_stage=stage.name,
            # Chalice exports these before importing the app, which names its queues at import.
            stage_config={
                "environment_variables": {
                    "LAPSE_QUEUE_NAME": stage.queue_name,
                    "LAPSE_DLQ_NAME": stage.dlq_name,
                    "LAPSE_WEBHOOK_QUEUE_NAME": stage.webhook_queue_name,
                    "LAPSE_WEBHOOK_DLQ_NAME": stage.webhook_dlq_name,
                }
            },
            import_environment={"AWS_DEFAULT_REGION": "us-east-1", "LAPSE_STAGE": stage.name},
        )
        self._check_functions()
        self._name_dependency_layer()
        for function in FUNCTIONS:
            self._wire_function(function, environment)
        self._wire_api()
        self._alarms()
        self._webhook_alarm()
        self._outputs()

    # -- auth ------------------------------------------------------------------------------

    def _auth(self) -> tuple[str, str]:
        """JWT validation settings. Empty issuer: the stack makes a Cognito user pool and uses it.

        The app itself validates every bearer token (signature against the issuer's JWKS, `iss`,
        `aud`, expiry) with LAPSE_AUTH_MODE=oidc, so any OIDC provider works, behind API Gateway
        or not (the same code runs locally and with R2).
        """
        issuer = CfnParameter(
            self,
            "OidcIssuer",
            default="",
            description="OIDC issuer URL whose JWTs the API accepts; empty: a Cognito user pool "
            "made by this stack",
        )
        audience = CfnParameter(
            self,
            "OidcAudience",
            default="",
            description="Expected JWT audience (aud / client_id); with Cognito, its app client id",
        )
        use_cognito = CfnCondition(
            self, "UseCognito", expression=Fn.condition_equals(issuer.value_as_string, "")
        )
        pool = cognito.CfnUserPool(
            self,
            "Users",
            user_pool_name=f"{self.stage.stack_name}-users",
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            admin_create_user_config=cognito.CfnUserPool.AdminCreateUserConfigProperty(
                allow_admin_create_user_only=False
            ),
            policies=cognito.CfnUserPool.PoliciesProperty(
                password_policy=cognito.CfnUserPool.PasswordPolicyProperty(
                    minimum_length=12,
                    require_lowercase=True,
                    require_numbers=True,
                    require_symbols=False,
                    require_uppercase=True,
                )
            ),
        )
        pool.cfn_options.condition = use_cognito
        pool.apply_removal_policy(self.removal)
        client = cognito.CfnUserPoolClient(
            self,
            "WebClient",
            user_pool_id=pool.ref,
            client_name=f"{self.stage.stack_name}-web",
            generate_secret=False,
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
        )
        client.cfn_options.condition = use_cognito
        self._cognito = (use_cognito, pool, client)
        cognito_issuer = Fn.sub(
            "https://cognito-idp.${AWS::Region}.amazonaws.com/${Pool}", {"Pool": pool.ref}
        )
        issuer_value = Fn.condition_if(
            use_cognito.logical_id, cognito_issuer, issuer.value_as_string
        ).to_string()
        audience_value = Fn.condition_if(
            use_cognito.logical_id, client.ref, audience.value_as_string
        ).to_string()
        return issuer_value, audience_value

    # -- data ------------------------------------------------------------------------------

    def _table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "Timelapses",
            partition_key=_string(schema.TABLE_KEY),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=schema.TTL,
            deletion_protection=self.stage.name == "prod",
            removal_policy=self.removal,
        )
        table.add_global_secondary_index(
            index_name=schema.OWNER_PROJECT_INDEX,
            partition_key=_string(schema.OWNER_PROJECT),
            sort_key=_string(schema.CREATED_AT),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        # Sparse: only records in flight carry its key, so the watchdog's queries read the work
        # in flight, never the history.
        table.add_global_secondary_index(
            index_name=schema.IN_FLIGHT_INDEX,
            partition_key=_string(schema.IN_FLIGHT),
            sort_key=_string(schema.CREATED_AT),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        # The dead-letter queue has a consumer too (dead_letters), so the same visibility rule as
        # for the work queue holds there.
        return self._queue_with_dead_letters(
            "Process",
            self.stage.queue_name,
            self.stage.dlq_name,
            visibility_s=self.stage.visibility_timeout_s,
            dlq_visibility_s=self.stage.dlq_visibility_timeout_s,
        )

    def _webhook_queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        """Webhook deliveries: their own queue and dead-letter queue (drained by their own
        function, with its own reserved concurrency), so a slow receiver never holds a render.
        The dead-letter queue's consumer (webhook_dead_letters) keeps each failure on its record."""
        return self._queue_with_dead_letters(
            "Webhook",
            self.stage.webhook_queue_name,
            self.stage.webhook_dlq_name,
            visibility_s=self.stage.webhook_visibility_timeout_s,
            dlq_visibility_s=self.stage.webhook_dlq_visibility_timeout_s,
        )

    def _queue_with_dead_letters(
        self,
        prefix: str,
        queue_name: str,
        dlq_name: str,
        *,
        visibility_s: int,
        dlq_visibility_s: int | None = None,
    ) -> tuple[sqs.Queue, sqs.Queue]:
        """A work queue (4 days) and its dead-letter queue (14 days), both encrypted, TLS only."""
        dlq = sqs.Queue(
            self,
            f"{prefix}DeadLetters",
            queue_name=dlq_name,
            retention_period=Duration.days(14),
            visibility_timeout=(
                Duration.seconds(dlq_visibility_s) if dlq_visibility_s is not None else None
            ),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            f"{prefix}Queue",
            queue_name=queue_name,
            visibility_timeout=Duration.seconds(visibility_s),
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVE_COUNT, queue=dlq),
        )
        return queue, dlq

    def _bucket(self) -> s3.Bucket:
        origins = CfnParameter(
            self,
            "AllowedOrigins",
            type="CommaDelimitedList",
            description="Origins (scheme://host[:port]) allowed to upload and play from the "
            "bucket in a browser",
            default=None if self.stage.name == "prod" else "*",
        )
        # A name known before the bucket exists lets the queue policy name the bucket without
        # referencing it (S3 checks that policy when it creates the bucket: Ref would be a cycle).
        name = Fn.sub("${AWS::StackName}-media-${AWS::AccountId}-${AWS::Region}")
        bucket = s3.Bucket(
            self,
            "Media",
            bucket_name=name,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            cors=[
                s3.CorsRule(
                    # POST and DELETE: Uppy 6 creates, completes and aborts multipart uploads
                    # from the browser with presigned requests.
                    allowed_methods=[
                        s3.HttpMethods.PUT,
                        s3.HttpMethods.GET,
                        s3.HttpMethods.HEAD,
                        s3.HttpMethods.POST,
                        s3.HttpMethods.DELETE,
                    ],
                    allowed_origins=origins.value_as_list,
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3600,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                # A fanned-out render's segments: its parts remove them; this is the backstop.
                s3.LifecycleRule(
                    id="expire-segments", prefix=SEGMENTS_PREFIX, expiration=Duration.days(1)
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        bucket_events = self.queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="BucketEvents",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.queue.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": Fn.sub("arn:${AWS::Partition}:s3:::") + name},
                    "StringEquals": {"aws:SourceAccount": self.account},
                },
            )
        )
        cfn_bucket: s3.CfnBucket = bucket.node.default_child  # type: ignore[assignment]
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[
                s3.CfnBucket.QueueConfigurationProperty(
                    event="s3:ObjectCreated:*",
                    queue=self.queue.queue_arn,
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[
                                s3.CfnBucket.FilterRuleProperty(name="prefix", value=VIDEOS_PREFIX)
                            ]
                        )
                    ),
                )
            ]
        )
        assert bucket_events.policy_dependable is not None
        bucket.node.add_dependency(bucket_events.policy_dependable)
        return bucket

    def _storage_environment(self) -> dict[str, str]:
        if self.bucket is not None:
            return {"LAPSE_BUCKET": self.bucket.bucket_name, "LAPSE_STORAGE_EVENTS": "true"}
        endpoint = CfnParameter(
            self,
            "R2Endpoint",
            description="R2's S3 endpoint: https://<account id>.r2.cloudflarestorage.com",
            allowed_pattern="https://.+",
        )
        bucket = CfnParameter(self, "R2Bucket", description="The R2 bucket's name")
        credentials = CfnParameter(
            self,
            "R2CredentialsArn",
            description="Secrets Manager secret (name or ARN) holding the R2 API token as JSON: "
            '{"accessKeyId": ..., "secretAccessKey": ...}',
        )

        def secret_field(field: str) -> str:
            return SecretValue.secrets_manager(
                credentials.value_as_string, json_field=field
            ).unsafe_unwrap()

        return {
            "LAPSE_BUCKET": bucket.value_as_string,
            "LAPSE_S3_ENDPOINT_URL": endpoint.value_as_string,
            "LAPSE_S3_REGION": "auto",
            "LAPSE_S3_ACCESS_KEY_ID": secret_field("accessKeyId"),
            "LAPSE_S3_SECRET_ACCESS_KEY": secret_field("secretAccessKey"),
            # R2 sends no bucket events to AWS: the API enqueues when an upload completes.
            "LAPSE_STORAGE_EVENTS": "false",
        }

    # -- functions -------------------------------------------------------------------------

    def _check_functions(self) -> None:
        packaged = set(self.app.functions())
        known = set(FUNCTIONS.values())
        if packaged != known:
            raise RuntimeError(
                f"the app packages functions {sorted(packaged)}, infra knows {sorted(known)}: "
                "give each new handler a role in infra/stacks/permissions.py and a line in "
                "infra/stacks/stage.py FUNCTIONS"
            )

    def _name_dependency_layer(self) -> None:
        """Chalice's managed layer (automatic_layer): the requirements, cached apart from code."""
        resources = self.app.packaged_template["Resources"]
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::LayerVersion":
                self.app.get_resource(logical_id).add_property_override(
                    "LayerName", f"{self.stage.stack_name}-dependencies"
                )

    def function_name(self, function: str) -> str:
        return f"{self.stage.stack_name}-{function.replace('_', '-')}"

    def _wire_function(self, function: str, environment: dict[str, str]) -> None:
        logical_id = FUNCTIONS[function]
        name = self.function_name(function)
        cfn_function = self.app.get_resource(logical_id)
        log_group = logs.LogGroup(
            self,
            f"{logical_id}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=RETENTION[self.stage.log_retention_days],
            removal_policy=self.removal,
        )
        resources = Resources(
            table_arn=self.table.table_arn,
            queue_arn=self.queue.queue_arn,
            dlq_arn=self.dlq.queue_arn,
            webhook_queue_arn=self.webhook_queue.queue_arn,
            webhook_dlq_arn=self.webhook_dlq.queue_arn,
            log_group_arn=log_group.log_group_arn,
            bucket_arn=self.bucket.bucket_arn if self.bucket else None,
        )
        role = iam.Role(
            self,
            f"{logical_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"lapse {self.stage.name}: {function} only",
            inline_policies={
                "least-privilege": iam.PolicyDocument(statements=POLICIES[function](resources))
            },
        )
        cfn_function.add_property_override("FunctionName", name)
        cfn_function.add_property_override("Role", role.role_arn)
        # Chalice writes the local interpreter's version (3.11, Amazon Linux 2): override it.
        cfn_function.add_property_override("Runtime", LAMBDA_RUNTIME)
        for key, value in environment.items():
            cfn_function.add_property_override(f"Environment.Variables.{key}", value)
        cfn_function.node.add_dependency(log_group)
        self._bind_queues(logical_id)
        if function == PROCESSOR:
            # Chalice's own layers (its managed dependency layer) first, then ffmpeg's.
            packaged = self.app.functions()[logical_id].get("Layers", [])
            chalice_layers = [self.app.get_resource(layer["Ref"]).ref for layer in packaged]
            cfn_function.add_property_override(
                "Layers", [*chalice_layers, self.layer.layer_version_arn]
            )
            cfn_function.add_property_override("EphemeralStorage", {"Size": PROCESSOR_EPHEMERAL_MB})

    def _bind_queues(self, logical_id: str) -> None:
        """Point each SQS event source at the stack's queue itself (GetAtt, not a name).

        Chalice writes an ARN built from the queue's name: no dependency, so CloudFormation could
        create the event source mapping before the queue exists.
        """
        queues = {
            self.stage.queue_name: self.queue,
            self.stage.dlq_name: self.dlq,
            self.stage.webhook_queue_name: self.webhook_queue,
            self.stage.webhook_dlq_name: self.webhook_dlq,
        }
        cfn_function = self.app.get_resource(logical_id)
        events = self.app.functions()[logical_id].get("Events", {})
        for event_name, event in events.items():
            if event["Type"] != "SQS":
                continue
            arn = json.dumps(event["Properties"]["Queue"])
            matches = [q for name, q in queues.items() if arn.endswith(f':{name}"}}')]
            if len(matches) != 1:
                raise RuntimeError(f"{logical_id}: {event_name} reads a queue this stack lacks")
            cfn_function.add_property_override(
                f"Events.{event_name}.Properties.Queue", matches[0].queue_arn
            )
            if matches[0] is self.queue:
                self._scale_to_reserved(cfn_function, event_name)

    def _scale_to_reserved(self, cfn_function: CfnResource, event_name: str) -> None:
        """The processing queue's poller runs at most as many renders (or parts of a fanned-out
        render) as the processor may: beyond its reserved concurrency a message would be
        throttled back to the queue and stay hidden for the visibility timeout (90 minutes)."""
        reserved = self.stage.processor.reserved_concurrency
        if reserved is not None:
            cfn_function.add_property_override(
                f"Events.{event_name}.Properties.ScalingConfig.MaximumConcurrency",
                max(2, reserved),  # SQS event sources take 2 at least
            )

    def _wire_api(self) -> None:
        rest_api = self.app.get_resource("RestAPI")
        self._gateway_errors_in_lapse_shape(rest_api.ref)
        rest_api.add_property_override("TracingEnabled", True)
        rest_api.add_property_override(
            "MethodSettings",
            [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingBurstLimit": 100,
                    "ThrottlingRateLimit": 50,
                }
            ],
        )

    def _gateway_errors_in_lapse_shape(self, rest_api_id: str) -> None:
        """API Gateway's own refusals (unknown route, body or headers too large, throttled, …)
        in lapse's `{"error": {code, message}}` shape, with CORS so a browser can read them."""
        template = (
            '{"error": {"code": "$context.error.responseType.toLowerCase()", '
            '"message": $context.error.messageString}}'
        )
        for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
            apigateway.CfnGatewayResponse(
                self,
                f"GatewayResponse{response_type.replace('_', '')}",
                rest_api_id=rest_api_id,
                response_type=response_type,
                response_templates={"application/json": template},
                response_parameters={
                    "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
                    "gatewayresponse.header.Content-Type": "'application/json'",
                },
            )

    # -- observability and outputs ---------------------------------------------------------

    def _alarms(self) -> None:
        cloudwatch.Alarm(
            self,
            "DeadLettersAlarm",
            alarm_description="Work that failed processing repeatedly reached the dead-letter "
            "queue (dead_letters marks those records failed)",
            # Received, not visible: the dead_letters function drains the queue within seconds.
            metric=self.dlq.metric_number_of_messages_received(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _webhook_alarm(self) -> None:
        cloudwatch.Alarm(
            self,
            "WebhookDeadLettersAlarm",
            alarm_description="Webhook deliveries whose handler failed repeatedly reached their "
            "dead-letter queue (webhook_dead_letters records them on their timelapses)",
            # Received minus sent: SQS counts a message it moves after maxReceiveCount as received,
            # not sent, while deliveries given up on (a receiver's fault, not lapse's) are sent
            # there by deliver_webhooks. The consumer drains the queue, so "visible" stays 0.
            metric=cloudwatch.MathExpression(
                expression="received - sent",
                using_metrics={
                    "received": self.webhook_dlq.metric_number_of_messages_received(
                        period=Duration.minutes(5)
                    ),
                    "sent": self.webhook_dlq.metric_number_of_messages_sent(
                        period=Duration.minutes(5)
                    ),
                },
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _outputs(self) -> None:
        use_cognito, pool, client = self._cognito
        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(self, "QueueUrl", value=self.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url)
        if self.bucket is not None:
            CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
        user_pool_id = CfnOutput(self, "UserPoolId", value=pool.ref)
        user_pool_id.condition = use_cognito
        client_id = CfnOutput(self, "UserPoolClientId", value=client.ref)
        client_id.condition = use_cognito


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
