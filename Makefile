# farmsd -- build, test, run, bench.  See README.md.
#
#   make build    release binary build/farmsd
#   make test     install missing Debian packages (as root), build, run every test (ASan+UBSan)
#   make run      install, build, run the main job (see README)
#   make bench    benchmarks (release build)
#   make fuzz     run each libFuzzer target FUZZ_SECONDS (default 60) under ASan+UBSan
#   make soak     reliability soak, SOAK_SECONDS (default 180) per backend (not in make test)
#   make gguf-fixtures  regenerate tests/fixtures/gguf with ggml itself (npm; not in make test)
#   make tsan | lint | format | format-check | check-symbols | check-layers | clean

SHELL   := /bin/bash
CC      ?= cc
V       ?= 0
Q       := $(if $(filter 1,$(V)),,@)
STD     := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN    := -Wall -Wextra -Werror -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wpointer-arith \
           -Wcast-qual -fno-common
OPT     ?= -O2 -g
SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
TSAN    := -O1 -g -fsanitize=thread
PKGS    := openblas lapacke sqlite3 libpq libmicrohttpd libcjson libcrypto zlib libcurl
DEB_PKGS := build-essential pkg-config libopenblas-dev liblapacke-dev libcjson-dev \
            libsqlite3-dev libpq-dev libmicrohttpd-dev libssl-dev libcurl4-openssl-dev zlib1g-dev
# Only `make test` needs these: the dashboard's browser test, the Python client's test,
# and the PostgreSQL server for the tests of the second backend (tests/pg_cluster.sh).
TEST_DEB_PKGS := chromium nodejs python3 postgresql
DEPS_PKGS = $(DEB_PKGS)
test: DEPS_PKGS = $(DEB_PKGS) $(TEST_DEB_PKGS)

# Lazily expanded: `make test` installs the packages before these are used.
CPPFLAGS = -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
TEST_LDLIBS = $(LDLIBS)

MODULES  := server api storage core
MOD_SRCS  = $(filter-out server/main.c,$(wildcard $(1)/*.c $(1)/*/*.c))
TEST_SRCS := $(wildcard tests/test_*.c)
BENCH_SRCS := $(wildcard tests/bench_*.c)
H_FILES   := $(wildcard core/*.h core/*/*.h storage/*.h api/*.h server/*.h tests/*.h)
C_FILES   := $(wildcard core/*.c core/*/*.c storage/*.c api/*.c server/*.c) $(TEST_SRCS) $(BENCH_SRCS) \
             tests/soak.c

.PHONY: all build test test-build run bench tsan lint format format-check check-symbols \
        check-layers clean deps fuzz soak
all: build

# --- One block per variant: objects, one archive per module --------------
# $(1) variant name, $(2) compile flags
define VARIANT
build/$(1)/%.o: %.c
	@mkdir -p $$(@D)
	$$(Q)$$(CC) $$(STD) $$(WARN) $(2) $$(CPPFLAGS) -MMD -MP -c $$< -o $$@
$(foreach m,$(MODULES),
build/$(1)/lib$(m).a: $$(patsubst %.c,build/$(1)/%.o,$$(call MOD_SRCS,$(m)))
	@mkdir -p $$(@D)
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
)
build/$(1)/libapi.a: build/$(1)/build/gen/api_dashboard_assets.o
$(1)_ARCHIVES := $(foreach m,$(MODULES),build/$(1)/lib$(m).a)
build/$(1)/farmsd: build/$(1)/server/main.o $$($(1)_ARCHIVES)
	$$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS)
build/$(1)/tests/%: build/$(1)/tests/%.o $$($(1)_ARCHIVES)
	$$(Q)$$(CC) $(2) -o $$@ $$^ $$(TEST_LDLIBS)
-include $$(shell find build/$(1) -name '*.d' 2>/dev/null)
endef

$(eval $(call VARIANT,rel,$(OPT)))
$(eval $(call VARIANT,san,$(SAN)))
$(eval $(call VARIANT,tsan,$(TSAN)))

.SECONDARY:

# --- The dashboard: api/dashboard/ embedded into libapi (api/api_dashboard.h) --
DASH_FILES := $(sort $(wildcard api/dashboard/*.html api/dashboard/*.js api/dashboard/*.css))
build/gen/api_dashboard_assets.c: api/dashboard/embed.sh $(DASH_FILES)
	@mkdir -p $(@D)
	$(Q)sh api/dashboard/embed.sh $@ $(DASH_FILES)

# --- Fuzzing (libFuzzer, clang): core only -----------------------------------
# Each tests/fuzz_<name>.c names its seeds in a header line " * seeds: FILE|DIR|GLOB ..."
# (a directory contributes the files directly in it).
FUZZ_SRCS    := $(wildcard tests/fuzz_*.c)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
# A memory blow-up is a fuzz failure: every target caps what it reads at 1 MiB or
# less (zip members, safetensors headers, npy arrays, max_pickle_mem), so no
# legitimate allocation nears 64 MB and the process (ASan's 256 MB quarantine
# and shadow included) stays far below 2 GB.
FUZZ_LIMITS  := -rss_limit_mb=2048 -malloc_limit_mb=64
build/fuzz/%.o: %.c
	@mkdir -p $(@D)
	$(Q)clang $(STD) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(CPPFLAGS) -MMD -MP -c $< -o $@
build/fuzz/libcore.a: $(patsubst %.c,build/fuzz/%.o,$(wildcard core/*.c core/*/*.c))
	$(Q)rm -f $@ && ar rcs $@ $^
build/fuzz/tests/%: build/fuzz/tests/%.o build/fuzz/libcore.a
	$(Q)clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# --- GGUF fixtures: written by ggml 0.23.0 itself (tests/fixtures/gguf/gen_gguf.c) ---------
# Needs npm and the registry; the generated files are committed, so `make test` needs neither.
GGUF_NPM := build/gguf-npm
GGUF_LIB := $(GGUF_NPM)/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
.PHONY: gguf-fixtures
gguf-fixtures:
	@mkdir -p $(GGUF_NPM)
	npm install --prefix $(GGUF_NPM) --no-save --no-audit --no-fund @node-llama-cpp/linux-x64@3.21.1
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -o build/gen_gguf tests/fixtures/gguf/gen_gguf.c -ldl
	build/gen_gguf $(GGUF_LIB) tests/fixtures/checkpoints/llama/llama_step0500.safetensors \
	    tests/fixtures/gguf
	python3 tests/fixtures/gguf/make_malformed.py tests/fixtures/gguf tests/fuzz-seeds/gguf

# --- The browser test's driver: playwright-core (no browser download; it drives
# Debian's /usr/bin/chromium). A failed install leaves test_dashboard to fail
# with the reason, after the other tests ran.
BROWSER_DEPS := tests/browser/node_modules/playwright-core/package.json
$(BROWSER_DEPS): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
	@cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
	    || echo "warning: npm ci in tests/browser failed: test_dashboard will fail"
	@[ ! -f $@ ] || touch $@

# --- The OpenAPI linter: Redocly's CLI, pinned in tests/openapi/ (test_openapi
# runs it on openapi.yaml). Installed like playwright-core above.
OPENAPI_DEPS := tests/openapi/node_modules/@redocly/cli/package.json
$(OPENAPI_DEPS): tests/openapi/package.json tests/openapi/package-lock.json
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
	@cd tests/openapi && npm ci --no-audit --no-fund --loglevel=error \
	    || echo "warning: npm ci in tests/openapi failed: test_openapi will fail"
	@[ ! -f $@ ] || touch $@

# --- Targets ----------------------------------------------------------------
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "installing Debian packages:$$missing"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else \
	        echo "missing Debian packages:$$missing -- run 'sudo apt-get install$$missing' or 'sudo make deps'"; \
	        exit 1; \
	    fi; \
	fi

build: deps
	@$(MAKE) --no-print-directory build/farmsd

build/farmsd: build/rel/farmsd
	rm -f $@ && cp $< $@

test: deps
	@$(MAKE) --no-print-directory test-build build/farmsd $(BROWSER_DEPS) $(OPENAPI_DEPS)
	@url=$$(tests/pg_cluster.sh start) || { url=""; echo "PostgreSQL could not be started: its tests will fail"; }; \
	FARMSD_TEST_PG_URL="$$url" tests/run.sh $(patsubst tests/%.c,build/san/tests/%,$(TEST_SRCS)) \
	    $(patsubst tests/%.c,FARMSD_TEST_BACKEND=postgresql@build/san/tests/%,$(SERVICE_TEST_SRCS)); \
	rc=$$?; tests/pg_cluster.sh stop; exit $$rc

# The service's integration tests run a second time against PostgreSQL.
SERVICE_TEST_SRCS := $(wildcard tests/test_service*.c)

test-build: $(patsubst tests/%.c,build/san/tests/%,$(TEST_SRCS)) build/san/farmsd

tsan: deps
	@$(MAKE) --no-print-directory $(patsubst tests/%.c,build/tsan/tests/%,$(TEST_SRCS)) build/farmsd
	@url=$$(tests/pg_cluster.sh start) || { url=""; echo "PostgreSQL could not be started: its tests will fail"; }; \
	FARMSD_TEST_PG_URL="$$url" tests/run.sh $(patsubst tests/%.c,build/tsan/tests/%,$(TEST_SRCS)); \
	rc=$$?; tests/pg_cluster.sh stop; exit $$rc

run: build
	./build/farmsd serve

# The reliability soak (tests/soak.c, release build; README "Reliability soak"):
# SOAK_SECONDS of load with kill -9 cycles every SOAK_KILL_EVERY seconds, against
# SQLite then PostgreSQL (tests/pg_cluster.sh), then the checks. Minutes.
SOAK_SECONDS    ?= 180
SOAK_KILL_EVERY ?= 60
soak: DEPS_PKGS = $(DEB_PKGS) postgresql
soak: deps
	@$(MAKE) --no-print-directory build/rel/farmsd build/rel/tests/soak
	@url=$$(tests/pg_cluster.sh start) || { url=""; echo "PostgreSQL could not be started: its soak will fail"; }; \
	export SOAK_SECONDS=$(SOAK_SECONDS) SOAK_KILL_EVERY=$(SOAK_KILL_EVERY) FARMSD_TEST_PG_URL="$$url"; \
	rc=0; echo "== soak: sqlite"; build/rel/tests/soak || rc=1; \
	echo "== soak: postgresql"; FARMSD_TEST_BACKEND=postgresql build/rel/tests/soak || rc=1; \
	tests/pg_cluster.sh stop; exit $$rc

# Every tests/bench_*.c; the engine's print lines into build/bench/<name>.txt,
# then bench_service measures the service and writes build/bench/report.{md,json}
# with all of them (FARMSD_BENCH_QUICK=1: small shapes, for development).
BENCH_BINS := $(patsubst tests/%.c,build/rel/tests/%,$(BENCH_SRCS))
bench:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) wrk openssl postgresql"
	@$(MAKE) --no-print-directory build/farmsd $(BENCH_BINS)
	@mkdir -p build/bench && rm -f build/bench/bench_*.txt
	@set -e; for b in $(filter-out build/rel/tests/bench_service,$(BENCH_BINS)); do \
	    echo "== $$(basename $$b)"; $$b | tee build/bench/$$(basename $$b).txt; done
	@build/rel/tests/bench_service

fuzz: deps
	@$(MAKE) --no-print-directory $(patsubst tests/%.c,build/fuzz/tests/%,$(FUZZ_SRCS))
	@set -e; for src in $(FUZZ_SRCS); do \
	    name=$$(basename $$src .c); corpus=build/fuzz/corpus/$$name; mkdir -p $$corpus; \
	    for g in $$(sed -n 's/^ \* seeds: //p' $$src); do \
	        if [ -d "$$g" ]; then find "$$g" -maxdepth 1 -type f -exec cp {} $$corpus/ \; ; \
	        else cp $$g $$corpus/ 2>/dev/null || true; fi; done; \
	    echo "== $$name: $(FUZZ_SECONDS) s"; \
	    log=build/fuzz/$$name.log; \
	    if build/fuzz/tests/$$name -max_total_time=$(FUZZ_SECONDS) -timeout=10 $(FUZZ_LIMITS) \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/$$name- $$corpus >$$log 2>&1; then \
	        grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' $$log; \
	    else \
	        tail -n 40 $$log; echo "$$name: crash, leak or timeout (see $$log)"; exit 1; \
	    fi; \
	done

# The house limits (style.md): no header over 200 lines outside tests/, no
# function over 80 lines (clang-tidy's readability-function-size, .clang-tidy),
# then cppcheck and clang-tidy (warnings are errors), one process per core.
# variableScope is off: style.md §4 declares every resource at the top of a
# function, initialised to NULL/-1, for the single `out:` exit.
LINT_PKGS   := cppcheck clang-tidy clang-format
HEADER_MAX  := 200
lint: DEPS_PKGS = $(DEB_PKGS) $(LINT_PKGS)
lint: deps
	@wc -l $(filter-out tests/%,$(H_FILES)) | awk '$$2 != "total" && $$1 > $(HEADER_MAX) \
	    {print $$2 ": " $$1 " lines (headers stay within $(HEADER_MAX))"; bad = 1} END {exit bad}'
	cppcheck --std=c11 --enable=warning,style,performance,portability --error-exitcode=1 \
	  --inline-suppr --quiet --suppress=missingIncludeSystem --suppress=variableScope \
	  -I. core storage api server tests
	@mkdir -p build && printf '%s\n' $(C_FILES) | xargs -P "$$(nproc)" -n 1 sh -c \
	    'clang-tidy --quiet "$$0" -- $(STD) $(CPPFLAGS) 2>/dev/null' >build/lint-tidy.log || \
	    { grep -E 'warning:|error:' -A3 build/lint-tidy.log; echo "clang-tidy: findings above"; exit 1; }
	@echo "lint: headers within $(HEADER_MAX) lines, cppcheck and clang-tidy clean"

format:
	clang-format -i $(C_FILES) $(H_FILES)

format-check: DEPS_PKGS = $(DEB_PKGS) $(LINT_PKGS)
format-check: deps
	clang-format --dry-run -Werror $(C_FILES) $(H_FILES)

# Each folder's external symbols carry one of its own modules' prefixes (a core
# function named store_x fails here): "folder:prefix,prefix,..." per entry.
SYMBOL_PREFIXES := core:err,dtype,sbuf,utf8,clock,analysis,compare \
                   core/formats:ckpt,rfile,st,shards,zip,pkl,tz,npy,npz,layer,thash,gguf,dcp,ds,peft,tar \
                   core/numerics:esd,pl,farms,preset,rec,lowrank \
                   storage:store,blob \
                   api:api,json \
                   server:cfg,cli,engine,http,pool,worker,log,webhook,alerts
check-symbols: build/rel/farmsd
	@bad=0; for spec in $(SYMBOL_PREFIXES); do dir=$${spec%%:*}; pre=$$(echo $${spec#*:} | tr , "|"); \
	    objs=$$(for c in $$dir/*.c; do [ "$$c" = server/main.c ] || echo build/rel/$${c%.c}.o; done); \
	    out=$$(nm -g --defined-only $$objs | awk 'NF==3{print $$3}' | grep -vE "^($$pre)_"); \
	    if [ -n "$$out" ]; then echo "$$dir: symbols without one of its prefixes ($$pre):"; \
	        echo "$$out" | sed 's/^/  /'; bad=1; fi; done; \
	[ $$bad = 0 ] && echo "symbols: every folder's symbols carry its own prefixes"

check-layers:
	@! grep -rnE '#include "(storage|api|server)/' core/
	@! grep -rn '#include "core/numerics/' core/formats/
	@! grep -rn '#include "core/formats/' core/numerics/
	@! grep -rnE '#include "core/(analysis|compare).h"' core/formats/ core/numerics/
	@! grep -nE '#include "core/(formats|numerics)/' $(filter-out core/analysis.% core/compare.%,$(wildcard core/*.[ch]))
	@! grep -rnE '#include "(api|server)/' storage/
	@! grep -rn '#include "server/' api/
	@echo "layers: dependencies point down; core/formats and core/numerics are independent"

clean:
	rm -rf build

# --- Installing and packaging (README "Install") ------------------------------
#   make install [PREFIX=/usr/local] [DESTDIR=]   binary, farmsd(1), farmsd.service,
#                 /etc/default/farmsd (kept when it exists); UNITDIR= leaves the unit out
#   make uninstall    the same files, except /etc/default/farmsd
#   make man-check    farmsd(1) names every --option and FARMSD_* of the help texts
#   make deb          build/deb/farmsd_<version>_<arch>.deb (debhelper)
#   make deb-test     install that .deb with dpkg -i into a scratch Debian root and run it
#   make docker-test  build docker/Dockerfile with podman on a local base image, run it
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
.PHONY: install uninstall man-check deb deb-test docker-test

build/farmsd.1: build/farmsd packaging/manpage.sh
	$(Q)packaging/manpage.sh build/farmsd > $@.tmp && mv $@.tmp $@

install: build/farmsd build/farmsd.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 build/farmsd $(DESTDIR)$(BINDIR)/farmsd
	install -m 644 build/farmsd.1 $(DESTDIR)$(MANDIR)/man1/farmsd.1
	$(if $(UNITDIR),install -d $(DESTDIR)$(UNITDIR) && \
	    sed 's|@BINDIR@|$(BINDIR)|g' packaging/farmsd.service.in > $(DESTDIR)$(UNITDIR)/farmsd.service && \
	    chmod 644 $(DESTDIR)$(UNITDIR)/farmsd.service)
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/farmsd ] || \
	    install -D -m 644 packaging/farmsd.default $(DESTDIR)$(SYSCONFDIR)/default/farmsd

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/farmsd $(DESTDIR)$(MANDIR)/man1/farmsd.1 \
	    $(if $(UNITDIR),$(DESTDIR)$(UNITDIR)/farmsd.service)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/default/farmsd (your settings): remove it by hand"

man-check: build/farmsd.1
	$(Q)packaging/man-check.sh build/farmsd build/farmsd.1

# dpkg-buildpackage writes next to the tree it builds: it builds a copy in
# build/deb/src (the files git knows, as in the working tree).
deb:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) debhelper"
	$(Q)rm -rf build/deb && mkdir -p build/deb/src
	$(Q)git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C build/deb/src -xf -
	$(Q)cd build/deb/src && dpkg-buildpackage -b -us -uc -j2 > ../build.log 2>&1 \
	    || { tail -n 40 ../build.log; exit 1; }
	@ls build/deb/*.deb

deb-test:
	$(Q)packaging/deb-test.sh

docker-test:
	$(Q)docker/test.sh
