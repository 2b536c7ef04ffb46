# Chromaline: common tasks. `make test` is the test command CI runs.
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
SOURCES := src deploy libs/common/src libs/engine/src services/gateway/src services/auth/src services/detector/src services/corrector/src services/reporter/src

.PHONY: setup test test-unit lint format run demo up down bench contracts stand-ins images smoke test-containers

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, Python never caches it,
# and every process (each service the tests start) would compile colour-science, SciPy and
# matplotlib again, several CPU seconds each. The workspace's own packages are installed editable,
# so uv leaves them out: compileall writes theirs (a quarter of a CPU second per service start).
# Python checks each cached file against its source, so an edited module is never run stale.
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --all-groups --compile-bytecode
	$(UV) run --frozen python -m compileall -q $(SOURCES)

test: setup
	$(UV) run --frozen pytest --durations=25

test-unit: setup
	$(UV) run --frozen pytest -m "not integration and not system"

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy $(SOURCES)

format: setup
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

contracts: setup
	$(UV) run --frozen python -m chromaline.common.events.schema_export docs/events

run: setup
	$(UV) run --frozen chromaline standalone

demo: setup
	$(UV) run --frozen chromaline demo

up:
	docker compose up -d --build

# The third-party images (and the Python base): pulled, or built as stand-ins where no registry answers.
stand-ins:
	deploy/stand-ins/build.sh

# Every service image, a CycloneDX bill of materials beside each (build/images/), sizes and build times.
images: setup stand-ins
	$(UV) run --frozen python deploy/images.py

# The stack from the built images: one photo through the API, the detector scaled to three, torn down.
smoke: images
	$(UV) run --frozen python deploy/smoke.py

# The test fixtures' container path: PostgreSQL, RabbitMQ and S3 started through testcontainers.
test-containers: setup stand-ins
	TESTCONTAINERS_RYUK_DISABLED=true $(UV) run --frozen pytest -q \
		libs/common/tests/test_outbox.py libs/common/tests/test_bus_rabbitmq.py libs/common/tests/test_blobs.py

down:
	docker compose down

bench: setup
	$(UV) run --frozen python bench/engine.py
