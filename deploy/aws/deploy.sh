#!/bin/sh
# Creates or updates the CloudFormation stack of deploy/aws/banners.yaml with the AWS
# CLI (credentials and region as the CLI finds them), then prints its outputs.
#   VPC_ID=vpc-0abc VPC_CIDR=10.0.0.0/16 \
#   LB_SUBNETS=subnet-pub1,subnet-pub2 INSTANCE_SUBNETS=subnet-priv1,subnet-priv2 \
#   REPO=https://github.com/you/banner-server.git make deploy-aws
# Optional: STACK (banners), REF (main), INSTANCE_TYPE, KEY_NAME + SSH_CIDR,
# ALLOWED_CIDR, WEB_MIN, WEB_MAX, CACHE_NODE_TYPE, CERTIFICATE_ARN (an ACM certificate:
# HTTPS on 443, HTTP redirected; without it the load balancer serves HTTP only).
set -eu
template=$(cd "$(dirname "$0")" && pwd)/banners.yaml
stack=${STACK:-banners}
: "${VPC_ID:?set VPC_ID (the VPC to deploy into)}"
: "${LB_SUBNETS:?set LB_SUBNETS (public subnets for the load balancer, comma-separated)}"
: "${INSTANCE_SUBNETS:?set INSTANCE_SUBNETS (subnets with outbound HTTPS for the hosts and Redis)}"
: "${REPO:?set REPO (the git URL the hosts install the project from)}"

set -- \
    "VpcId=$VPC_ID" \
    "LoadBalancerSubnets=$LB_SUBNETS" \
    "InstanceSubnets=$INSTANCE_SUBNETS" \
    "ProjectRepository=$REPO" \
    "ProjectRef=${REF:-main}"
[ -n "${VPC_CIDR:-}" ] && set -- "$@" "VpcCidr=$VPC_CIDR"
[ -n "${INSTANCE_TYPE:-}" ] && set -- "$@" "InstanceType=$INSTANCE_TYPE"
[ -n "${KEY_NAME:-}" ] && set -- "$@" "KeyName=$KEY_NAME"
[ -n "${SSH_CIDR:-}" ] && set -- "$@" "SshCidr=$SSH_CIDR"
[ -n "${ALLOWED_CIDR:-}" ] && set -- "$@" "AllowedCidr=$ALLOWED_CIDR"
[ -n "${WEB_MIN:-}" ] && set -- "$@" "WebMinSize=$WEB_MIN"
[ -n "${WEB_MAX:-}" ] && set -- "$@" "WebMaxSize=$WEB_MAX"
[ -n "${CACHE_NODE_TYPE:-}" ] && set -- "$@" "CacheNodeType=$CACHE_NODE_TYPE"
[ -n "${CERTIFICATE_ARN:-}" ] && set -- "$@" "CertificateArn=$CERTIFICATE_ARN"

aws cloudformation deploy \
    --stack-name "$stack" \
    --template-file "$template" \
    --capabilities CAPABILITY_IAM \
    --no-fail-on-empty-changeset \
    --parameter-overrides "$@"
aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
