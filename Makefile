# robot_twin: set-up, demo, tests and benchmarks in the project's own virtual environment.
# Every target that talks DDS keeps it on this machine (see dds/ and robot_twin/ros_env.py).

PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' \
	&& { echo $$p; break; }; done)
VENV := .venv
# Many small processes share 2 cores in the demo, the tests and the benchmarks: one BLAS thread
# each is faster than several fighting for the cores.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robot_twin-setup

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	@test -n "$(PYTHON)" || { echo 'make setup: needs Python 3.10, 3.11 or 3.12 on PATH' >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
# Issue 17: the OPC UA server loads the DI, IA and Robotics nodesets from this npm package
# (robot_twin/hub/opcua.py looks in $(VENV)/npm); the dashboard test drives Debian's chromium.
	command -v npm >/dev/null || { apt-get update && apt-get install -y npm; }
	npm install --no-audit --no-fund --prefix $(VENV)/npm node-opcua-nodesets@2.185.0
	command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }
	@touch $(STAMP)

demo: setup
	$(PY) -m robot_twin demo $(DEMO_ARGS)

# The tests in two parts. First those that only compute (plain pytest, nodes in the test's own
# process, servers fed by the test's clock): spread over up to 4 cores by pytest-xdist, a whole
# file per worker at a time so that a module's fixtures are built once. Then the integration
# tests (real processes streaming at 1 kHz over DDS, real time): one at a time, alone on the
# machine, as beside a robot. A part that PYTEST_ARGS leaves empty (pytest's status 5) is no
# failure unless both are.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

test: setup
	@$(PY) -m pytest -m 'not integration' -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); \
	unit=$$?; $(PY) -m pytest -m integration $(PYTEST_ARGS); integration=$$?; \
	for rc in $$unit $$integration; do case $$rc in 0|5) ;; *) exit $$rc ;; esac; done; \
	[ "$$unit$$integration" != 55 ] || { echo 'make test: no test selected' >&2; exit 5; }

lint: setup
	$(PY) -m pytest test/test_flake8.py test/test_pep257.py

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
