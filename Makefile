# The two commands of the README do all the set-up on a machine that has only Python and pip.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy

.PHONY: demo test bench soak check-uv

check-uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

.venv/.synced: uv.lock pyproject.toml | check-uv
	$(UV) sync --frozen
	@touch $@

demo: .venv/.synced
	$(UV) run --frozen wardwatch demo $(ARGS)

test: .venv/.synced
	$(UV) run --frozen pytest $(ARGS)

bench: .venv/.synced
	$(UV) run --frozen python -m benchmarks $(ARGS)

# 30 minutes of a real probe against the testbed at a fast cadence, failing if its memory grows
# beyond the stated bound after warm-up (docs/reliability.md). Not part of `make test`.
soak: .venv/.synced
	$(UV) run --frozen python -m tests.campaign.soak $(ARGS)
