#!/bin/bash
# Sets up one host of deploy/aws/banners.yaml; run as root by the launch template's
# user data, from the checkout in /opt/banners/src:
#   bootstrap.sh web      banners-serve, behind the load balancer
#   bootstrap.sh loader   banners-sync.timer mirrors the drop bucket into
#                         /srv/banners/data; banners-load.path loads each drop
# The user data exports AWS_REGION, REDIS_HOST, REDIS_PORT, REDIS_SECRET (the AUTH
# token's ARN), DATA_BUCKET and TRUSTED_PROXY (the VPC's range: the load balancer).
set -euo pipefail
role=${1:?usage: bootstrap.sh web|loader}
src=$(cd "$(dirname "$0")/../.." && pwd)

PYTHON=python3.11 "$src/deploy/install-host.sh"

token=$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$REDIS_SECRET" \
        --query SecretString --output text)
# ElastiCache speaks TLS only (rediss://), with the AUTH token as the password.
umask 077
cat > /etc/banners/banners.env <<ENV
BANNERS_REDIS_URL=rediss://:${token}@${REDIS_HOST}:${REDIS_PORT}/0
BANNERS_BIND=0.0.0.0:8000
BANNERS_TRUSTED_PROXIES=${TRUSTED_PROXY}
BANNERS_S3_URI=s3://${DATA_BUCKET}/
ENV

case $role in
web)
    systemctl enable --now banners-serve.service
    # Signal CloudFormation only once the server answers.
    for _ in $(seq 60); do
        if BANNERS_BIND=127.0.0.1:8000 /opt/banners/venv/bin/python "$src/deploy/healthcheck.py"; then
            exit 0
        fi
        sleep 2
    done
    echo "banners-serve did not answer /healthz" >&2
    exit 1
    ;;
loader)
    systemctl enable --now banners-load.path banners-sync.timer
    ;;
*)
    echo "unknown role $role (web or loader)" >&2
    exit 2
    ;;
esac
