# apexops: top-level entry points. CMake does the building (see README,
# "Development"); this file wires the two commands and the rest together.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
SOURCES     = $(shell git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 2>/dev/null)

.PHONY: all deps build test demo bench install format format-check clean

all: build

deps:
	@scripts/install-deps.sh --build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target apexops

test:
	@scripts/install-deps.sh --test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAPEXOPS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS) >/dev/null
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAPEXOPS_FUZZ=ON -DAPEXOPS_SANITIZE=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) >/dev/null
	@$(MAKE) --no-print-directory format-check
	@BUILD=$(CURDIR)/$(ASAN_BUILD) FUZZ_BUILD=$(CURDIR)/$(FUZZ_BUILD) tests/run.sh

demo: build
	@scripts/install-deps.sh --demo
	@scripts/demo.sh $(BUILD)/apexops

bench: build
	@scripts/install-deps.sh --test
	@bench/run.sh $(BUILD)/apexops

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $(SOURCES)

format-check:
	@clang-format --dry-run --Werror $(SOURCES) || { echo "run 'make format'" >&2; exit 1; }

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
