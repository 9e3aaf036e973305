# The two commands of the README:
#   make demo   set up Vigil and run `vigil check` on the embedded demo inventory
#   make test   install the lab's packages, start the lab, run every test, stop the lab
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint lab-up lab-down molecule images wheelhouse clean bench-smoke

# Scenarios that run in podman containers, and those that drive the running lab.
SCENARIOS := vigil_server service_restart line_failover mq_sending backup_rotation queue_draining standby_activation sync_replication db_self_fence

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	@$(BIN)/vigil check; code=$$?; \
	echo "vigil check exited $$code (0 ok, 1 warning, 2 critical, 3 unknown or error)"; \
	test $$code -lt 3

# mypy cannot follow setuptools' package-dir mapping, so it checks the package as the
# wheel lays it out: a tree of links, vigil/ with checks/, alerting/ and remediations/ in it.
TYPECHECK := build/typecheck
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/vigil
	ln -s $(CURDIR)/vigil/* $(TYPECHECK)/vigil/
	for d in checks alerting remediations; do ln -s $(CURDIR)/$$d $(TYPECHECK)/vigil/$$d; done
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p vigil
	$(BIN)/mypy --strict roles/db_self_fence/files/vigil_self_fence.py  # deployed alone, stdlib only
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint -q --profile production roles/ playbooks/ molecule/

lab-up: $(BIN)/.installed
	lab/install-packages.sh
	$(BIN)/vigil lab up

lab-down: $(BIN)/.installed
	$(BIN)/vigil lab down

images:
	molecule/images/install-podman.sh
	molecule/images/build.sh

# Vigil's wheel and every wheel it needs, for a monitoring server without PyPI
# (roles/vigil_server installs from this folder).
wheelhouse: $(BIN)/.installed
	rm -rf build/wheelhouse
	$(BIN)/pip wheel -q --wheel-dir build/wheelhouse .

# Needs the lab up (some scenarios drive it) and the images built.
molecule: $(BIN)/.installed images
	# reset first: a scenario on the lab keeps no instance, so stale state (e.g.
	# "already prepared") would otherwise survive from an earlier run on this machine.
	for s in $(SCENARIOS); do \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule reset -s $$s >/dev/null 2>&1; \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$s || exit 1; done

test: lint images
	lab/install-packages.sh
	$(BIN)/vigil lab up || { $(BIN)/vigil lab down; exit 1; }
	# Logic and install tests on both cores (a test file stays on one worker: the wheel's
	# virtualenv is made once); the lab's tests one at a time, since they share the lab.
	$(BIN)/pytest -n 2 --dist loadfile tests/unit tests/install && \
	  VIGIL_REQUIRE_LAB=1 $(BIN)/pytest tests/lab && $(MAKE) --no-print-directory bench-smoke && \
	  $(MAKE) --no-print-directory molecule; \
	  code=$$?; $(BIN)/vigil lab down; exit $$code

# Every benchmark small, with its correctness checks, and shown to fail on a wrong result.
bench-smoke:
	$(BIN)/python -m bench.smoke

clean: lab-down
	rm -rf .lab $(VENV)
