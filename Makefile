# The two commands of the quick start: `make up` (install everything, start the stack) and
# `make test` (the whole test suite against real PostgreSQL, Redis and S3 servers).
.PHONY: install up down ps test lint bench

install:
	@scripts/install.sh

up: install
	.venv/bin/autograph up
	.venv/bin/autograph ps

down:
	.venv/bin/autograph down

ps:
	.venv/bin/autograph ps

test: install
	.venv/bin/python -m pytest -q -p no:cacheprovider

lint: install
	.venv/bin/ruff check src tests bench test_disaster_recovery.py
	.venv/bin/lint-imports
	.venv/bin/mypy
