#!/usr/bin/env bash
# `make deploy STAGE=dev|prod`: synthesizes, then deploys the stage's stack with the CDK CLI.
#
# Needs: AWS credentials for the target account in the environment (AWS_PROFILE or keys) and a
# region (AWS_REGION); the account/region bootstrapped once (`npx aws-cdk@2 bootstrap`); Node >= 20.
# Optional environment:
#   LAPSE_STORAGE=r2          deploy the Cloudflare R2 variant (stack lapse-<stage>-r2)
#   LAPSE_ALLOWED_ORIGINS     comma-separated browser origins for the bucket's CORS (required for prod)
#   LAPSE_OIDC_ISSUER / LAPSE_OIDC_AUDIENCE   your identity provider; unset: a Cognito user pool
#   LAPSE_R2_ENDPOINT / LAPSE_R2_BUCKET / LAPSE_R2_CREDENTIALS_ARN   (R2 only)
#   CDK_ARGS                  extra arguments for `cdk deploy` (e.g. --require-approval never)
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE="${1:-${STAGE:-}}"
case "$STAGE" in
  dev|prod) ;;
  *) echo "usage: make deploy STAGE=dev|prod" >&2; exit 2 ;;
esac
STORAGE="${LAPSE_STORAGE:-s3}"
if [ "$STORAGE" = r2 ]; then STACK="lapse-$STAGE-r2"; VARIANT="$STAGE:r2"; else STACK="lapse-$STAGE"; VARIANT="$STAGE"; fi

: "${AWS_REGION:?set AWS_REGION (and credentials) for the target account}"

bash infra/synth.sh --variant "$VARIANT"

params=()
[ -n "${LAPSE_OIDC_ISSUER:-}" ] && params+=(--parameters "$STACK:OidcIssuer=$LAPSE_OIDC_ISSUER")
[ -n "${LAPSE_OIDC_AUDIENCE:-}" ] && params+=(--parameters "$STACK:OidcAudience=$LAPSE_OIDC_AUDIENCE")
if [ "$STORAGE" = r2 ]; then
  params+=(--parameters "$STACK:R2Endpoint=${LAPSE_R2_ENDPOINT:?set LAPSE_R2_ENDPOINT}")
  params+=(--parameters "$STACK:R2Bucket=${LAPSE_R2_BUCKET:?set LAPSE_R2_BUCKET}")
  params+=(--parameters "$STACK:R2CredentialsArn=${LAPSE_R2_CREDENTIALS_ARN:?set LAPSE_R2_CREDENTIALS_ARN}")
else
  if [ -n "${LAPSE_ALLOWED_ORIGINS:-}" ]; then
    params+=(--parameters "$STACK:AllowedOrigins=$LAPSE_ALLOWED_ORIGINS")
  elif [ "$STAGE" = prod ]; then
    echo "set LAPSE_ALLOWED_ORIGINS (e.g. https://app.example.com) for prod" >&2; exit 2
  fi
fi

# The app is the cloud assembly synthesized above: the CLI only publishes assets and deploys.
# shellcheck disable=SC2086
npx --yes aws-cdk@2 deploy --app build/infra "$STACK" "${params[@]}" ${CDK_ARGS:-}
