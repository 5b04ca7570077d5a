#!/bin/sh
# Generate the credentials the compose file mounts as secrets (once; existing files are kept).
# The folder is 0700 (only you); the files are readable inside the containers, whose users
# differ (postgres, minio, autograph) and read them through the bind mount.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 0700 secrets
for name in pg-password redis-password s3-secret-key admin-api-key admin-password; do
  [ -s "secrets/$name" ] || python3 -c 'import secrets; print(secrets.token_urlsafe(32))' \
    > "secrets/$name"
done
[ -s secrets/s3-access-key ] || python3 -c 'import secrets; print("ag" + secrets.token_hex(8))' \
  > secrets/s3-access-key
chmod 0444 secrets/*
echo "secrets in $(pwd)/secrets"
