# One entry point for a fresh Debian machine: installs what is missing, then builds.
#   make demo   set up, then replay the bundled sample traffic
#   make test   set up, then run the test suite
#   make asan   build the extensions with AddressSanitizer (build/asan/src), then run
#               tests/test_live.py against that build (live table changes under traffic)
PY      ?= python3
VENV    ?= .venv
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := dpdk dpdk-dev libdpdk-dev pkg-config gcc python3 python3-dev python3-venv tshark iproute2 ethtool
BIN     := $(VENV)/bin

.PHONY: setup deps venv build demo test bench clean asan asan-build hugepages hugepages-off
setup: deps venv build

deps:
	@pkg-config --exists libdpdk && command -v dpdk-testpmd >/dev/null && command -v gcc >/dev/null && command -v tshark >/dev/null && command -v ip >/dev/null && command -v ethtool >/dev/null \
	  && $(PY) -c "import ensurepip, venv" 2>/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PKGS); }

$(BIN)/python:
	$(PY) -m venv $(VENV)

venv: $(BIN)/python
	@$(BIN)/python -c "import yaml, rich, scapy, Cython, numpy, pytest, matplotlib, pytest_benchmark" 2>/dev/null || \
	  $(BIN)/pip install -q -r requirements.txt

build: venv
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	$(BIN)/python setup.py -q build_ext --inplace

demo: setup
	$(BIN)/dataplane replay samples/sample.yaml --in samples/sample.pcap --out-dir out/sample

# the suite includes the live-change stress test on an AddressSanitizer build of the
# extensions (asan-build), so it never skips
test: setup asan-build
	DP_ASAN_BUILD=$(abspath $(ASAN_DIR))/src DP_ASAN_REQUIRED=1 $(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q bench/micro --benchmark-disable

bench: setup
	-$(MAKE) --no-print-directory hugepages
	$(BIN)/python bench/throughput.py

# 2 MiB hugepages for the benchmarks (every side on the same memory): reserve HUGEPAGES
# pages and mount hugetlbfs on HUGE_MNT; idempotent, needs root or sudo. hugepages-off
# unmounts and gives the pages back. The tests and the main job never need them.
HUGEPAGES ?= 512
HUGE_MNT  ?= /dev/hugepages
HUGE_NR   := /proc/sys/vm/nr_hugepages
hugepages:
	@have=$$(cat $(HUGE_NR)); \
	if [ "$$have" -lt $(HUGEPAGES) ]; then \
	  echo $(HUGEPAGES) | $(SUDO) tee $(HUGE_NR) >/dev/null; \
	  echo "hugepages: reserved $$(cat $(HUGE_NR)) x 2 MiB (asked $(HUGEPAGES), had $$have)"; \
	else echo "hugepages: $$have x 2 MiB already reserved (>= $(HUGEPAGES))"; fi; \
	[ "$$(cat $(HUGE_NR))" -ge $(HUGEPAGES) ] || { echo "hugepages: the kernel gave only $$(cat $(HUGE_NR))" >&2; exit 1; }
	@if mountpoint -q $(HUGE_MNT) && [ "$$(stat -f -c %T $(HUGE_MNT))" = hugetlbfs ]; then \
	  echo "hugepages: hugetlbfs already mounted on $(HUGE_MNT)"; \
	else $(SUDO) mkdir -p $(HUGE_MNT) && $(SUDO) mount -t hugetlbfs nodev $(HUGE_MNT) && \
	  echo "hugepages: mounted hugetlbfs on $(HUGE_MNT)"; fi

hugepages-off:
	@if mountpoint -q $(HUGE_MNT) && [ "$$(stat -f -c %T $(HUGE_MNT))" = hugetlbfs ]; then \
	  $(SUDO) rm -f $(HUGE_MNT)/*map_* 2>/dev/null; $(SUDO) umount $(HUGE_MNT) && \
	  echo "hugepages: unmounted $(HUGE_MNT)"; else echo "hugepages: nothing mounted on $(HUGE_MNT)"; fi
	@echo 0 | $(SUDO) tee $(HUGE_NR) >/dev/null; \
	echo "hugepages: $$(cat $(HUGE_NR)) reserved now"

clean:
	rm -rf build $(VENV) dataplane/*.so pyx/*.c out *.egg-info

# ASAN: a copy of the sources (the in-place build and pyx/*.c are left alone) built with
# -fsanitize=address into $(ASAN_DIR)/src; test_live.py's ASAN test runs the live stress
# child with LD_PRELOAD of libasan and PYTHONPATH=$(ASAN_DIR)/src (it checks the child
# imported dataplane._core from there and that the copy matches the working tree)
ASAN_DIR   ?= build/asan
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer
asan: asan-build
	DP_ASAN_BUILD=$(abspath $(ASAN_DIR))/src DP_ASAN_REQUIRED=1 \
	  $(BIN)/python -m pytest -q -rs tests/test_live.py -k asan

asan-build: deps venv
	rm -rf $(ASAN_DIR)/src
	mkdir -p $(ASAN_DIR)/src
	tar -cf - --exclude='*.so' --exclude='*.c' --exclude=__pycache__ \
	  setup.py pyproject.toml pyx dataplane tools | tar -xf - -C $(ASAN_DIR)/src
	cd $(ASAN_DIR)/src && CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address" \
	  $(abspath $(BIN))/python setup.py -q build_ext --inplace --force

# Fuzzing (fuzz/README.md): atheris feeds bursts through the Cython core and the reference
# model (fuzz/harness.py); a crash, an exception, a byte or counter difference, an
# accounting gap or an mbuf left in use is a finding, saved under FUZZ_ARTIFACTS. Runs
# FUZZ_SECONDS (default 10 minutes) or FUZZ_RUNS inputs (-1: no limit), whichever comes
# first, in FUZZ_JOBS processes (libFuzzer -fork), then reports the execs. The seed
# corpus (fuzz/make_corpus.py, from the differential corpora) is made once in FUZZ_CORPUS,
# which libFuzzer then grows. FUZZ_FLAGS: more libFuzzer flags (-seed=1, -dict=...).
FUZZ_SECONDS   ?= 600
FUZZ_RUNS      ?= -1
FUZZ_JOBS      ?= 1
FUZZ_CORPUS    ?= fuzz/corpus
FUZZ_ARTIFACTS ?= fuzz/artifacts
FUZZ_LOG       ?= $(FUZZ_ARTIFACTS)/fuzz.log
FUZZ_FLAGS     ?=
.PHONY: fuzz
fuzz: venv
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install -q "atheris>=2.3"
	@$(BIN)/python -c "import dataplane._core" 2>/dev/null || $(MAKE) --no-print-directory build
	@[ -n "$$(ls -A $(FUZZ_CORPUS) 2>/dev/null)" ] || $(BIN)/python fuzz/make_corpus.py $(FUZZ_CORPUS)
	@mkdir -p $(FUZZ_ARTIFACTS)
	( $(BIN)/python fuzz/harness.py -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
	    $(if $(filter-out 1,$(FUZZ_JOBS)),-fork=$(FUZZ_JOBS) -ignore_crashes=0,) \
	    -timeout=30 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=$(abspath $(FUZZ_ARTIFACTS))/ $(FUZZ_FLAGS) $(FUZZ_CORPUS) 2>&1; \
	  echo "harness exit status $$?" ) | tee $(FUZZ_LOG)
	@$(BIN)/python fuzz/harness.py --report $(FUZZ_LOG)
