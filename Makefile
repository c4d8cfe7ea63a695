# make demo | make test | make dev | make bench — each sets up .venv first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYBAMM_DISABLE_TELEMETRY := true

.PHONY: venv dev demo test bench aot schema clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

dev: venv  ## the stack in the foreground; Ctrl-C stops everything
	$(PY) -m local.stack

demo: venv  ## one cell job and one drive-cycle job end to end, summary + plot
	$(PY) -m local.demo

test: venv  ## unit and integration tests (starts its own emulator and functions)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: aot  ## benchmark: original per-request path vs this service
	$(PY) -m bench.run

aot: aot/manifest.json  ## precompile the standard configurations' solver functions (gcc, ~1 min)

# rebuilt when the simulation core, this build or the pinned packages change
aot/manifest.json: $(VENV)/.installed $(wildcard shared/engine/*.py shared/engine/protocols/*.py shared/contract/*.py) requirements.txt
	DRIVE_CYCLE_PATH="$(DRIVE_CYCLE_PATH):$(abspath ../shared/data/drive_cycles)" $(PY) -m shared.engine.build_precompiled

schema: venv  ## regenerate schema/job.schema.json from the pydantic models
	$(PY) -m shared.contract.job > schema/job.schema.json

clean:
	rm -rf $(VENV) .stack out .pytest_cache aot
