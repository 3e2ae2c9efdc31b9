# SPDX-License-Identifier: MIT
# tern: hand-written GNU Makefile. `make`, `make test`, `make run`, `make fuzz`,
# `make bench`, `make install PREFIX=...`, `make clean`; SANITIZE=1 for ASan+UBSan.

PREFIX ?= /usr/local
CC ?= cc
PKGS := luajit libcares openssl rocksdb libzstd libmicrohttpd libpcre2-8 hiredis gmime-3.0 rdkafka libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lpthread -lm

ifeq ($(SANITIZE),1)
BUILD := build/san
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD := build/rel
SAN_FLAGS :=
OPT := -O2
endif

CFLAGS += -std=gnu11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation \
	-Iinclude $(PKG_CFLAGS) $(SAN_FLAGS) -MMD -MP \
	-DTERN_VERSION='"$(shell cat VERSION)"' -DTERN_LUA_DIR='"$(PREFIX)/share/tern/lua"'
LDFLAGS += $(SAN_FLAGS)

CORE_SRCS := $(filter-out core/ternd.c core/tern.c,$(wildcard core/*.c))
CORE_OBJS := $(CORE_SRCS:core/%.c=$(BUILD)/core/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 20

.PHONY: all deps test unit run fuzz fuzz-build bench install clean format
all: $(BUILD)/ternd $(BUILD)/tern ternd tern

deps:
	@./packaging/install-deps.sh

$(BUILD)/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The status page (core/status_page.html) becomes a byte array linked into the core.
$(BUILD)/gen/status_page_html.c: core/status_page.html
	@mkdir -p $(dir $@)
	cd core && xxd -i status_page.html > $(CURDIR)/$@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libtern.a: $(CORE_OBJS) $(BUILD)/gen/status_page_html.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ternd: $(BUILD)/core/ternd.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tern: $(BUILD)/core/tern.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs libcurl)

# Convenience links at the top: ./ternd and ./tern are the last build.
ternd tern: %: $(BUILD)/%
	@ln -sf $< $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libtern.a $(PKG_LIBS) -lcmocka $(LDFLAGS)

unit: $(UNIT_BINS)

test: deps check-layers
	@$(MAKE) --no-print-directory all unit fuzz-build
	@/usr/bin/python3 tests/run.py --build $(BUILD)

# Every include between core modules points down the layers (DESIGN.md, "Layers").
.PHONY: check-layers
check-layers:
	@/usr/bin/python3 tests/check-layers.py

# As root (a fresh machine, a container) the quickstart runs as root on purpose: it is a demo in
# the source tree, not a service; the package's unit drops privileges with --user.
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var/log
	./ternd --policy policy-examples/quickstart.lua $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# libFuzzer targets. The core is compiled once, with coverage hooks but no
# fuzzer main (fuzzer-no-link), into libtern-fuzz.a; each target links it.
# Undefined behaviour stops the run (-fno-sanitize-recover), like a crash.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -D_GNU_SOURCE -g -O1 -Iinclude $(PKG_CFLAGS) $(FUZZ_SAN) -MMD -MP \
	-DTERN_VERSION='"$(shell cat VERSION)"' -DTERN_LUA_DIR='"$(PREFIX)/share/tern/lua"'
FUZZ_OBJS := $(CORE_SRCS:core/%.c=build/fuzz/core/%.o) build/fuzz/core/ternd_main.o

build/fuzz/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# The daemon's main, renamed, for targets that drive a whole running ternd.
build/fuzz/core/ternd_main.o: core/ternd.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Dmain=ternd_main -c -o $@ $<

build/fuzz/gen/status_page_html.o: $(BUILD)/gen/status_page_html.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<

build/fuzz/libtern-fuzz.a: $(FUZZ_OBJS) build/fuzz/gen/status_page_html.o
	@rm -f $@
	ar rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libtern-fuzz.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libtern-fuzz.a $(PKG_LIBS)

fuzz: deps $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build/fuzz/corpus/$$n \
			$$( [ -d tests/fuzz/seeds/$$n ] && echo tests/fuzz/seeds/$$n ) 2>build/fuzz/$$n.log \
			|| { tail -50 build/fuzz/$$n.log; exit 1; }; \
	done

# The targets alone, for `make test` to replay each seed corpus (tests/run.py).
fuzz-build: $(FUZZ_BINS)

bench: deps
	@$(MAKE) --no-print-directory all
	@/usr/bin/python3 bench/run $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/tern/lua/tern
	install -m 0755 $(BUILD)/ternd $(BUILD)/tern $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 lua/tern/*.lua $(DESTDIR)$(PREFIX)/share/tern/lua/tern/

format:
	clang-format -i core/*.c include/tern/*.h tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build ternd tern

-include $(CORE_OBJS:.o=.d) $(BUILD)/core/ternd.d $(BUILD)/core/tern.d $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:=.d)

# ThreadSanitizer build of ternd in build/tsan, for the race regression test
# (tests/integration/test_regressions.py, run with TERN_TSAN_BUILD=build/tsan).
# Uninstrumented libraries (RocksDB, LuaJIT) are silenced by tests/tsan.supp.
.PHONY: tsan
tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan OPT=-O1 \
		SAN_FLAGS='-fsanitize=thread -fno-omit-frame-pointer' build/tsan/ternd

# Durability: the power-loss simulation (a preload library; never sanitized, as it is loaded
# before the sanitizer's runtime) and the tests that use it, alone. `make test` runs them too.
$(BUILD)/tests/powerloss.so: tests/durability/powerloss.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -fPIC -shared \
		-o $@ $< -ldl -lpthread

unit: $(BUILD)/tests/powerloss.so

.PHONY: test-durability mutants
test-durability: deps
	@$(MAKE) --no-print-directory all unit
	TERN_BUILD=$(CURDIR)/$(BUILD) TERN_ROOT=$(CURDIR) TERN_DNS_SERVERS=127.0.0.1:9 \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration/test_powerloss.py \
		tests/integration/test_durability.py

# Deliberate breakages that the tests must catch (tests/mutants/run); fails if one survives.
mutants: deps
	@$(MAKE) --no-print-directory all unit
	@/usr/bin/python3 tests/mutants/run --build $(BUILD) $(MUTANTS_ARGS)

# Man pages from their scdoc sources in docs/man.
MAN_SRCS := $(wildcard docs/man/*.scd)
MAN_PAGES := $(MAN_SRCS:docs/man/%.scd=build/man/%)
.PHONY: man deb
man: $(MAN_PAGES)

build/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

# Debian package build/deb/tern_VERSION_ARCH.deb (debhelper): a copy of the tree, without
# builds and run-time state, with packaging/debian as its debian/ directory; then lintian.
deb:
	@rm -rf build/deb && mkdir -p build/deb/tern-$(shell cat VERSION)
	tar -c --exclude=./build --exclude=./var --exclude=./.git --exclude=./ternd --exclude=./tern . \
		| tar -x -C build/deb/tern-$(shell cat VERSION)
	cp -r packaging/debian build/deb/tern-$(shell cat VERSION)/debian
	cd build/deb/tern-$(shell cat VERSION) && dpkg-buildpackage -b -us -uc
	lintian --fail-on error build/deb/tern_$(shell cat VERSION)_*.deb
