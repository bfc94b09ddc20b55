#!/bin/bash
# Sets up one host of deploy/aws/banners.yaml; run as root by the launch template's
# user data, from the checkout in /opt/banners/src:
#   bootstrap.sh web      banners-serve, behind the load balancer
#   bootstrap.sh loader   banners-sync.timer mirrors the drop bucket into
#                         /srv/banners/data; banners-load.path loads each drop
# The user data exports AWS_REGION, REDIS_HOST, REDIS_PORT, REDIS_SECRET (the AUTH
# token's ARN), BANNERS_SECRET_ARN, POSTBACK_TOKEN_ARN, ADMIN_TOKEN_ARN (the
# deployment's credentials, in Secrets Manager), DATA_BUCKET, TRUSTED_PROXY (the
# VPC's range: the load balancer) and COOKIE_SECURE (true behind the HTTPS listener).
# DESTDIR writes under another root (what tests/test_deploy.py does).
set -euo pipefail
role=${1:?usage: bootstrap.sh web|loader}
src=$(cd "$(dirname "$0")/../.." && pwd)
root=${DESTDIR:-}

secret() {
    aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$1" \
        --query SecretString --output text
}

# Every host reads the same three credentials from Secrets Manager, so a click URL
# signed by one host is valid on all of them, before and after any replacement.
# Written before install-host.sh, which then keeps them (it only makes missing ones).
umask 077
mkdir -p "$root/etc/banners"
{
    echo "# From Secrets Manager by deploy/aws/bootstrap.sh: the same on every host of the stack."
    echo "BANNERS_SECRET=$(secret "$BANNERS_SECRET_ARN")"
    echo "BANNERS_POSTBACK_TOKEN=$(secret "$POSTBACK_TOKEN_ARN")"
    echo "BANNERS_ADMIN_TOKEN=$(secret "$ADMIN_TOKEN_ARN")"
} > "$root/etc/banners/secrets.env.new"
mv "$root/etc/banners/secrets.env.new" "$root/etc/banners/secrets.env"

umask 022
PYTHON=python3.11 "$src/deploy/install-host.sh"

token=$(secret "$REDIS_SECRET")
# ElastiCache speaks TLS only (rediss://), with the AUTH token as the password.
umask 077
cat > "$root/etc/banners/banners.env" <<ENV
BANNERS_REDIS_URL=rediss://:${token}@${REDIS_HOST}:${REDIS_PORT}/0
BANNERS_BIND=0.0.0.0:8000
BANNERS_TRUSTED_PROXIES=${TRUSTED_PROXY}
BANNERS_COOKIE_SECURE=${COOKIE_SECURE:-false}
BANNERS_S3_URI=s3://${DATA_BUCKET}/
ENV

case $role in
web)
    systemctl enable --now banners-serve.service
    # Signal CloudFormation only once the server answers.
    for _ in $(seq 60); do
        if BANNERS_BIND=127.0.0.1:8000 "$root/opt/banners/venv/bin/python" "$src/deploy/healthcheck.py"; then
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
