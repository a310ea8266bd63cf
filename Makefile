# Entry points for people; meson + ninja do the real work.
#   make          optimized build in build/ (build/vireo, build/vireo-img)
#   make check    install missing packages, build with ASan/UBSan in build-san/, run every test
#   make run      boot the demo VM
#   make bench    benchmarks side by side with the peers named in bench/README.md
BUILD     ?= build
SANBUILD  ?= build-san

.PHONY: all deps check run bench clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dwerror=true

$(SANBUILD)/build.ninja:
	meson setup $(SANBUILD) --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false

deps:
	@scripts/install-deps

check: deps $(SANBUILD)/build.ninja
	ninja -C $(SANBUILD)
	python3 tests/run.py --build $(SANBUILD)

run: deps all
	scripts/demo

bench: deps all
	bench/run-all --build $(BUILD)

clean:
	rm -rf $(BUILD) $(SANBUILD)
