#!/bin/sh
# Lets the WAL receiver and base backups of AutoGraph's containers stream over the network
# (the image only opens ordinary connections to other hosts). Runs once, at initdb.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
