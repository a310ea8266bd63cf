# Entry points for people; meson + ninja do the real work.
#   make          optimized build in build/ (build/vireo, build/vireo-img)
#   make check    install missing packages, build with ASan/UBSan in build-san/, run every test
#   make run      boot the demo VM
#   make bench    benchmarks side by side with the peers named in bench/README.md
#   make fuzz     clang/libFuzzer build in build-fuzz/, run every fuzz target (or
#                 TARGET=name) for FUZZTIME seconds each, or FUZZRUNS executions if sooner;
#                 an input running past FUZZTIMEOUT seconds counts as a hang
BUILD     ?= build
SANBUILD  ?= build-san
FUZZBUILD ?= build-fuzz
FUZZTIME  ?= 600
FUZZRUNS  ?= 0
FUZZTIMEOUT ?= 120

.PHONY: all deps check run bench fuzz clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dwerror=true

$(SANBUILD)/build.ninja:
	meson setup $(SANBUILD) --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false

$(FUZZBUILD)/build.ninja:
	CC=clang meson setup $(FUZZBUILD) --buildtype=debugoptimized -Dwerror=true \
		-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false

deps:
	@scripts/install-deps

check: deps $(SANBUILD)/build.ninja
	ninja -C $(SANBUILD)
	VIREO_FUZZ_BUILD=$(FUZZBUILD) python3 tests/run.py --build $(SANBUILD)

run: deps all
	scripts/demo

bench: deps all
	bench/run-all --build $(BUILD)

# New inputs go to $(FUZZBUILD)/fuzz-corpus/TARGET, crashes to
# $(FUZZBUILD)/fuzz-crashes; the committed seeds stay as they are.
# Targets: tests/fuzz/targets.py.
fuzz: deps $(FUZZBUILD)/build.ninja
	python3 tests/fuzz/fuzz.py --build $(FUZZBUILD) --time $(FUZZTIME) --runs $(FUZZRUNS) \
		--timeout $(FUZZTIMEOUT) $(TARGET)

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD)
