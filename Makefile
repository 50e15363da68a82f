# corio — top-level build. Plain GNU make, no generator.
#
#   make                 libcorio.a, libcorio.so, examples, tests, benchmarks into build/
#   make lib             just the library
#   make test            the test suite: normal build, install check, Valgrind, TSan, then
#                        ASan+UBSan (build/asan)
#   make examples-run    the tour: every example program, one after another, each
#                        under a line saying what it shows (examples/tour.txt)
#   make run             the same tour, for now
#   make bench           the micro-benchmarks (build/bench/corio-bench)
#   make install PREFIX=/usr/local
#   make install-check   installs into a temporary PREFIX and builds and runs a
#                        program against it with pkg-config (make test runs it)
#
# Only `make test`, `make run` / `examples-run` and `make deps` install what is
# missing (scripts/deps.sh, Debian packages, may call apt-get); `make`, `make
# lib` and `make install` never touch the system outside build/ and PREFIX.
#
# Variables: CORIO_CTX=asm|ucontext (context switch back end; ucontext builds
# into build/ucontext*), SAN=asan|tsan (used by the test target's second pass),
# CORIO_TLS=1|0 (0: no OpenSSL; corio/tls.h calls return -ENOTSUP),
# V=1 (print every command instead of "  CC file"),
# CC, CFLAGS, PREFIX, DESTDIR.

CORIO_CTX ?= asm
CORIO_TLS ?= 1
SAN ?=
CC ?= cc
PREFIX ?= /usr/local

ifeq ($(CORIO_CTX),ucontext)
  CTXDIR := ucontext
else
  CTXDIR :=
endif
BUILD ?= build$(if $(CTXDIR),/$(CTXDIR))$(if $(SAN),$(if $(CTXDIR),-,/)$(SAN))

ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)

# Quiet by default: one "  CC file" line per step; V=1 prints the commands.
# Use as the start of a recipe line: $(call quiet,CC,$@)$(CC) ...
V ?= 0
ifeq ($(V),1)
  quiet =
else
  quiet = @printf '  %-6s %s\n' '$(1)' '$(2)';
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
OPT := -O2 -g
SANFLAGS :=
# CO__ASSERT (src/base/assert.h) is checked in the sanitizer builds only.
ifneq ($(SAN),)
  CPPFLAGS += -DCO_ASSERTS=1
endif
ifeq ($(SAN),asan)
  OPT := -O1 -g
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif
ifeq ($(SAN),tsan)
  OPT := -O1 -g
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif
CTXFLAGS := $(if $(filter ucontext,$(CORIO_CTX)),-DCORIO_CTX_UCONTEXT=1)
CPPFLAGS += -Iinclude -Isrc $(CTXFLAGS)
CFLAGS ?=
ALLCFLAGS := -std=gnu11 $(OPT) $(WARN) -fPIC -fvisibility=hidden -MMD -MP $(SANFLAGS) $(CFLAGS)
LDLIBS := -lpthread -lm
LDEXE := -rdynamic   # names in corio's overflow backtraces

# ---- sources -------------------------------------------------------------
BASE_SRC := $(wildcard src/base/*.c)
ARCH_SRC := src/arch/fiber.c src/arch/stack.c
ifeq ($(CORIO_CTX),ucontext)
  ARCH_SRC += src/arch/ctx_ucontext.c
else
  ARCH_SRC += src/arch/ctx_$(ARCH).c src/arch/switch_$(ARCH).S
endif
CORE_SRC := $(wildcard src/core/*.c)
SYNC_SRC := $(wildcard src/sync/*.c)
THREAD_SRC := $(wildcard src/thread/*.c)
IO_SRC := $(wildcard src/io/*.c)
ifeq ($(CORIO_TLS),0)
  IO_SRC := $(filter-out src/io/tls.c,$(IO_SRC))
else
  IO_SRC := $(filter-out src/io/tls_none.c,$(IO_SRC))
  LDLIBS += -lssl -lcrypto
endif
LIB_SRC := $(BASE_SRC) $(ARCH_SRC) $(CORE_SRC) $(SYNC_SRC) $(THREAD_SRC) $(IO_SRC)
LIB_OBJ := $(patsubst src/%,$(BUILD)/obj/%.o,$(LIB_SRC))

EXAMPLES := $(patsubst examples/%.c,%,$(wildcard examples/*.c))
# What the test loops run by themselves: echo_server is a daemon, driven by echo_client.
SELF_EXAMPLES := $(filter-out echo_server,$(EXAMPLES))
TESTS := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))
MT_TESTS := $(patsubst tests/%.c,%,$(wildcard tests/mt_*.c))
BENCH_SRC := $(wildcard bench/*.c)

LIBA := $(BUILD)/libcorio.a
LIBSO := $(BUILD)/libcorio.so
EX_BIN := $(addprefix $(BUILD)/examples/,$(EXAMPLES))
TEST_BIN := $(addprefix $(BUILD)/tests/,$(TESTS))
MT_BIN := $(addprefix $(BUILD)/tests/,$(MT_TESTS))
BENCH_BIN := $(BUILD)/bench/corio-bench
BENCH_SERVERS := $(patsubst bench/servers/%.c,$(BUILD)/bench/%,$(wildcard bench/servers/*.c))

.PHONY: all lib examples tests bench-bin test test-run test-mt test-tsan test-examples test-valgrind test-aarch64 run examples-run bench install install-check deps clean
all: lib examples tests bench-bin
lib: $(LIBA) $(LIBSO)
examples: $(EX_BIN)
tests: $(TEST_BIN) $(MT_BIN)
bench-bin: $(BENCH_BIN) $(BENCH_SERVERS)

# scripts/deps.sh installs what is missing (Debian packages); cheap when all is
# there. Only the targets that promise a working set-up run it (test, run,
# examples-run, deps), never a plain build or install.
DEPS_STAMP := build/.deps-ok
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p build && touch $@

$(BUILD)/obj/%.c.o: src/%.c
	@mkdir -p $(dir $@)
	$(call quiet,CC,$<)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c $< -o $@
$(BUILD)/obj/%.S.o: src/%.S
	@mkdir -p $(dir $@)
	$(call quiet,AS,$<)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call quiet,AR,$@)rm -f $@ && ar rcs $@ $^
$(LIBSO): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(call quiet,LD,$@)$(CC) -shared $(SANFLAGS) -Wl,-soname,libcorio.so.0 -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(LIBA) $(LDEXE) $(LDLIBS)

# The README's example, cut out of README.md between its readme-example
# markers, so that README and tests/test_readme.c (which runs it) cannot drift.
$(BUILD)/readme/readme_example.c: README.md
	@mkdir -p $(dir $@)
	$(call quiet,GEN,$@)sed -n '/<!-- readme-example: begin/,/<!-- readme-example: end/p' README.md \
	    | sed -e '/^<!--/d' -e '/^```/d' > $@
	@grep -q 'int main' $@ || { echo "README.md: no example between the readme-example markers"; exit 1; }
$(BUILD)/examples/readme_example: $(BUILD)/readme/readme_example.c $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(LIBA) $(LDEXE) $(LDLIBS)
$(BUILD)/tests/test_readme: $(BUILD)/examples/readme_example

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) -Itests -DCORIO_TESTS_DIR=\"$(CURDIR)/tests\" $(ALLCFLAGS) -o $@ $< $(LIBA) -lcriterion $(LDEXE) $(LDLIBS)

# The multithreaded tests: plain C (tests/mt.h), so they also run under TSan.
$(BUILD)/tests/mt_%: tests/mt_%.c tests/mt.h $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) -Itests $(ALLCFLAGS) -o $@ $< $(LIBA) $(LDEXE) $(LDLIBS)

# The servers the macro benchmarks (../shared/peers/macro) run, e.g.
# build/bench/echo_server PORT for tcp-echo.
$(BUILD)/bench/%: bench/servers/%.c $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(BENCH_BIN): $(BENCH_SRC) $(LIBA)
	@mkdir -p $(dir $@)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $(BENCH_SRC) $(LIBA) $(LDLIBS)

# ---- test -------------------------------------------------------------------
# Two passes: this build, then the sanitizer build (ASan+UBSan, LeakSanitizer on);
# between them the examples under ThreadSanitizer.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install-check
	@$(MAKE) --no-print-directory test-run
	@$(MAKE) --no-print-directory test-valgrind
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory SAN=asan all
	@$(MAKE) --no-print-directory SAN=asan test-run

# The example programs under a sanitizer, on the virtual clock; any report
# fails. (Criterion's own runner crashes under ThreadSanitizer, so the TSan
# pass runs the examples, whose output test_examples checks in the others.)
test-examples: examples
	@echo "== examples: $(BUILD)"
	@for e in $(SELF_EXAMPLES); do \
	    out=$$(CORIO_VIRTUAL_CLOCK=1 CORIO_EXAMPLE_UNIT=0.1 TSAN_OPTIONS=halt_on_error=1 $(BUILD)/examples/$$e 2>&1) \
	        || { printf '%s\n' "$$out"; echo "$$e FAILED"; exit 1; }; \
	    if printf '%s' "$$out" | grep -q Sanitizer; then printf '%s\n' "$$out"; exit 1; fi; \
	    echo "$$e: ok"; \
	done

export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

test-run: tests examples $(BUILD)/ctx_check
	@echo "== tests: $(BUILD) (ctx=$(CORIO_CTX)$(if $(SAN), san=$(SAN)))"
	@CORIO_VIRTUAL_CLOCK=1 $(BUILD)/ctx_check >/dev/null
	@CORIO_EXAMPLES_DIR=$(BUILD)/examples sh scripts/run-tests.sh $(TEST_BIN)
	@$(MAKE) --no-print-directory test-mt

# The multithreaded tests (any sanitizer report fails them).
test-mt: $(MT_BIN)
	@for t in $(MT_BIN); do \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 atexit_sleep_ms=50" $$t || exit 1; \
	done

# ThreadSanitizer: the multithreaded tests and the examples.
test-tsan:
	@$(MAKE) --no-print-directory SAN=tsan examples
	@$(MAKE) --no-print-directory SAN=tsan test-mt
	@$(MAKE) --no-print-directory SAN=tsan test-examples

# The examples and the context check under Valgrind (stacks are registered
# with it, so it follows the switches); any error fails.
test-valgrind: examples $(BUILD)/ctx_check
	@echo "== valgrind: $(BUILD)"
	@for p in $(BUILD)/ctx_check $(addprefix $(BUILD)/examples/,$(SELF_EXAMPLES)); do \
	    CORIO_VIRTUAL_CLOCK=1 CORIO_EXAMPLE_UNIT=0.1 valgrind -q --error-exitcode=9 --leak-check=full \
	        --errors-for-leak-kinds=definite $$p > /dev/null 2> $(BUILD)/valgrind.log \
	        || { cat $(BUILD)/valgrind.log; echo "$$p: valgrind FAILED"; exit 1; }; \
	    echo "$$(basename $$p): ok"; \
	done

# The AArch64 back end, cross-built and run under qemu-user: the context
# check and the examples (their output compared with tests/expected; for
# the thread examples, which block real threads for real seconds, only
# their results, and process_pool not at all: see the case below).
# Needs gcc-aarch64-linux-gnu and qemu-user (scripts/deps.sh --cross);
# OpenSSL is not installed for the target, so TLS is left out (CORIO_TLS=0).
A64 := build/aarch64
test-aarch64:
	@$(MAKE) --no-print-directory CC=aarch64-linux-gnu-gcc BUILD=$(A64) CORIO_TLS=0 lib examples $(A64)/ctx_check
	@echo "== aarch64 under qemu-user"
	@export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu; \
	CORIO_VIRTUAL_CLOCK=1 qemu-aarch64 $(A64)/ctx_check || exit 1; \
	for e in $(SELF_EXAMPLES); do \
	    case $$e in \
	        process_pool|echo_client) echo "$$e: skipped (it spawns a program of ours as a native process: qemu-user cannot run it without binfmt_misc)"; continue;; \
	        to_thread|loop_thread) \
	            qemu-aarch64 $(A64)/examples/$$e > $(A64)/$$e.out 2>&1 || { cat $(A64)/$$e.out; exit 1; }; \
	            grep -q -e '^gathered: \[3, 5, 7, 8, 9\]' -e 'results 6 and 4$$' $(A64)/$$e.out \
	                || { cat $(A64)/$$e.out; echo "$$e: wrong results"; exit 1; }; \
	            echo "$$e: ok (results; emulated threads wake too slowly to compare the timings)"; continue;; \
	        *) envs=CORIO_VIRTUAL_CLOCK=1;; \
	    esac; \
	    env $$envs qemu-aarch64 $(A64)/examples/$$e > $(A64)/$$e.out 2>&1 || { cat $(A64)/$$e.out; exit 1; }; \
	    diff -u tests/expected/$$e.txt $(A64)/$$e.out || exit 1; \
	    echo "$$e: ok"; \
	done

$(BUILD)/ctx_check: tests/ctx_check.c $(LIBA)
	$(call quiet,CC,$@)$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# ---- showcase and benchmarks ------------------------------------------------
# The tour builds only the programs it runs (echo_client starts echo_server).
RUN_EXAMPLES := $(shell sed -e '/^\#/d' -e 's/[[:space:]].*//' examples/tour.txt)
RUN_BIN := $(addprefix $(BUILD)/examples/,$(RUN_EXAMPLES) echo_server)
examples-run:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory $(RUN_BIN)
	@sed -e '/^#/d' -e '/^[[:space:]]*$$/d' examples/tour.txt | while read -r e what; do \
	    printf '\n=== %s: %s ===\n' "$$e" "$$what"; \
	    $(BUILD)/examples/$$e < /dev/null || exit 1; \
	done
run: examples-run

bench: all
	@sh scripts/bench.sh $(BENCH_BIN)

# ---- install ----------------------------------------------------------------
# Outside the system's own prefixes the installed corio.pc carries an rpath,
# so that a program built with `pkg-config --libs corio` finds libcorio.so
# at run time without LD_LIBRARY_PATH.
SYSTEM_PREFIXES := /usr /usr/local
PC_RPATH := $(if $(filter $(patsubst %/,%,$(PREFIX)),$(SYSTEM_PREFIXES)),,-Wl,-rpath,$${libdir})
install: lib
	install -d $(DESTDIR)$(PREFIX)/include/corio $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/corio.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/corio/*.h $(DESTDIR)$(PREFIX)/include/corio/
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/libcorio.so.0
	ln -sf libcorio.so.0 $(DESTDIR)$(PREFIX)/lib/libcorio.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' -e 's|@RPATH@|$(PC_RPATH)|' corio.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/corio.pc

# What a user does after `make install PREFIX=~/opt`: a program including
# only <corio.h>, built with pkg-config, run without LD_LIBRARY_PATH.
install-check:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(MAKE) --no-print-directory install PREFIX=$$d/prefix > $$d/install.log 2>&1 \
	    || { cat $$d/install.log; exit 1; }; \
	export PKG_CONFIG_PATH=$$d/prefix/lib/pkgconfig; \
	$(CC) tests/install_check.c -o $$d/app $$(pkg-config --cflags --libs corio) \
	    && $$d/app > $$d/out && grep -q 'installed corio works' $$d/out \
	    || { echo "install-check FAILED"; cat $$d/out 2>/dev/null; exit 1; }; \
	echo "install-check: ok (pkg-config, custom PREFIX, shared library found at run time)"

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
