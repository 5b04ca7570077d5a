# One image for every AutoGraph service; the service is chosen by argument:
#   docker run IMAGE serve gateway        (default)   docker run IMAGE serve walstream
#   docker run IMAGE dr drill --scenario database     docker run IMAGE backup db list
# Rendered and checked by tests/unit/test_deploy.py; not built on the development machine
# (no container engine there): see README "Containers".
FROM python:3.11-slim-bookworm

# Client and server binaries of PostgreSQL 15 (pg_dump, pg_basebackup, pg_receivewal, and the
# server itself for point-in-time recovery and drills), redis-server (drills), git (git service).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-client-15 redis-server git pigz ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/autograph
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /var/lib/autograph --create-home autograph \
 && mkdir -p /var/lib/autograph/data/git /var/lib/autograph-backups \
 && chown -R autograph:autograph /var/lib/autograph /var/lib/autograph-backups

# State (run files, logs, local backup copies) under one folder: a volume in compose, a
# PersistentVolumeClaim or emptyDir in Kubernetes. Secrets come mounted at /run/secrets.
ENV AUTOGRAPH_HOME=/var/lib/autograph \
    AUTOGRAPH_HOST=0.0.0.0 \
    AUTOGRAPH_PG_BIN_DIR=/usr/lib/postgresql/15/bin \
    PYTHONUNBUFFERED=1
USER autograph
VOLUME ["/var/lib/autograph"]
EXPOSE 8080 8085 8082 8084 8083 8097 8087 8099 8096 3000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["autograph", "probe"]
ENTRYPOINT ["autograph"]
CMD ["serve", "gateway"]
