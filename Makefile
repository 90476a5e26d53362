# Thin wrapper over CMake. `make` builds build/apikeyd; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(WERROR),1)
CMAKE_FLAGS += -DAPIKEYD_WERROR=ON
endif

.PHONY: all deps run test bench fuzz crashtest format clean

all: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

deps:
	@bash scripts/deps.sh

run: all
	@bash scripts/run.sh

test: deps
	@bash scripts/test.sh

bench: all
	@bash bench/run.sh

fuzz: deps
	@bash fuzz/run.sh

crashtest: all
	@/usr/bin/python3 tests/crash/crashtest.py --kills $${KILLS:-100}

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

# The Debian package (debian/), end to end: build, lintian, install, run, purge (as root).
.PHONY: package-test
package-test: deps
	@bash scripts/package-test.sh
