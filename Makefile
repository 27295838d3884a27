# svcplane build. `make` builds everything; see README.md for the targets.
# Quiet unless V=1. Generated files go to $(OUT) only.

OUT      ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)
msg       = $(if $(filter 1,$(V)),,@printf '  %-8s %s\n' '$(1)' '$(2)';)

ARCH_INC := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS := -O2 -g -target bpf -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-compare-distinct-pointer-types -Iinclude -Ibpf -I$(ARCH_INC) -MD
CFLAGS   ?= -O2 -g
SAN      ?=
USER_CFLAGS := $(CFLAGS) $(SAN) -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-Iinclude -Iuser -I$(OUT) -MD -D_GNU_SOURCE
# libmicrohttpd through pkg-config (its flags differ between builds of it).
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS   := $(or $(shell pkg-config --libs libmicrohttpd 2>/dev/null),-lmicrohttpd)
USER_CFLAGS += $(MHD_CFLAGS)
LDLIBS   := -lbpf -lelf -lz -ljson-c -lcurl -lyaml $(MHD_LIBS) -lpthread -lm

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRCS))
TBPF_SRCS := $(wildcard selftests/bpf/*.bpf.c)
TBPF_OBJS := $(patsubst selftests/bpf/%.bpf.c,$(OUT)/tests/%.bpf.o,$(TBPF_SRCS))
TSKELS    := $(patsubst selftests/bpf/%.bpf.c,$(OUT)/tests/%.skel.h,$(TBPF_SRCS))

USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUT)/user/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(OUT)/user/main.o,$(USER_OBJS))

# Each selftests/user/test_*.c and selftests/bpf/test_*.c is one test binary
# linked against every user object except main.o.
TEST_SRCS := $(wildcard selftests/user/test_*.c) $(wildcard selftests/bpf/test_*.c)
TEST_BINS := $(patsubst %.c,$(OUT)/tests/%,$(notdir $(TEST_SRCS)))
TOOL_SRCS := $(wildcard scripts/tools/*.c)
TOOL_BINS := $(patsubst scripts/tools/%.c,$(OUT)/tools/%,$(TOOL_SRCS))

.PHONY: all install deps test test-mutants demo bench clean asan check-deps valgrind fuzz fuzz-deps \
	test-stress soak test-multinode test-k8s k8s-real image image-deps test-image test-upgrade
all: check-deps $(OUT)/svcplane $(OUT)/svcplane.bash $(OUT)/svcplane.8 $(TEST_BINS) $(TOOL_BINS)

# Install what is missing (Debian packages, bpffs) unless it is all there.
check-deps:
	$(Q)scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

deps:
	$(Q)scripts/deps.sh

$(OUT)/%.bpf.o: bpf/%.bpf.c | $(OUT)/.dirs
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(OUT)/tests/%.bpf.o: selftests/bpf/%.bpf.c | $(OUT)/.dirs
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/tests/%.skel.h: $(OUT)/tests/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# Every user object may include a skeleton: build them first.
$(USER_OBJS): $(SKELS)
$(OUT)/user/%.o: user/%.c | $(OUT)/.dirs
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -c $< -o $@

$(OUT)/svcplane: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ -o $@ $(LDLIBS)

# The bash completion and the man page, printed by the binary from the option
# tables its --help comes from (user/cli.c).
$(OUT)/svcplane.bash: $(OUT)/svcplane
	$(call msg,GEN,$@)
	$(Q)$< completion bash > $@.tmp && mv $@.tmp $@

$(OUT)/svcplane.8: $(OUT)/svcplane
	$(call msg,GEN,$@)
	$(Q)$< man > $@.tmp && mv $@.tmp $@

# `make install [DESTDIR=...] [PREFIX=/usr/local]`: the binary where
# deploy/svcplane.service and the image expect it, the completion and the
# man page where bash-completion and man look.
PREFIX ?= /usr/local
install: $(OUT)/svcplane $(OUT)/svcplane.bash $(OUT)/svcplane.8
	install -D -m 0755 $(OUT)/svcplane $(DESTDIR)$(PREFIX)/sbin/svcplane
	install -D -m 0644 $(OUT)/svcplane.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/svcplane
	install -D -m 0644 $(OUT)/svcplane.8 $(DESTDIR)$(PREFIX)/share/man/man8/svcplane.8

$(OUT)/tests/%: selftests/user/%.c $(LIB_OBJS) $(TSKELS) | $(OUT)/.dirs
	$(call msg,TEST,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Iselftests -I$(OUT)/tests $< $(LIB_OBJS) -o $@ $(LDLIBS)

$(OUT)/tests/%: selftests/bpf/%.c $(LIB_OBJS) $(TSKELS) $(SKELS) | $(OUT)/.dirs
	$(call msg,TEST,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Iselftests -I$(OUT)/tests $< $(LIB_OBJS) -o $@ $(LDLIBS)

$(OUT)/tools/%: scripts/tools/%.c $(SKELS) $(TSKELS) | $(OUT)/.dirs
	$(call msg,TOOL,$@)
	$(Q)$(CC) $(USER_CFLAGS) -I$(OUT)/tests $< -o $@ $(LDLIBS)

# maglev_bench and sync_bench measure user/ code, so they link the user objects too.
$(OUT)/tools/maglev_bench $(OUT)/tools/sync_bench: $(OUT)/tools/%: scripts/tools/%.c $(LIB_OBJS) | $(OUT)/.dirs
	$(call msg,TOOL,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< $(LIB_OBJS) -o $@ $(LDLIBS)

$(OUT)/.dirs:
	$(Q)mkdir -p $(OUT)/user $(OUT)/tests $(OUT)/tools && touch $@

# Unit tests run under valgrind (leaks and memory errors fail them).
test: all
	$(Q)OUT=$(OUT) VALGRIND=1 CASE="$(CASE)" scripts/run-tests.sh $(TESTS)

# The unit tests alone under valgrind (make test runs them so too); the
# target was declared but had no rule, so `make valgrind` did nothing.
valgrind: all
	$(Q)OUT=$(OUT) VALGRIND=1 scripts/run-tests.sh unit

# The three-node suite (selftests/e2e/test_multinode.sh): ECMP, traffic
# policies, SNAT, DSR. Not in `make test` until the datapath features it
# tests have landed (scripts/run-tests.sh, NOT_IN_GROUP).
test-multinode: all
	$(Q)OUT=$(OUT) CASE="$(CASE)" scripts/run-tests.sh test_multinode

# svcplane against a real control plane (selftests/e2e/test_k8s_real.sh):
# builds kube-apiserver, kube-controller-manager and etcd from the modules
# pinned in selftests/k8s-real/go.mod first (cached in $(OUT)/k8s-real/bin;
# a cold build takes many minutes). Not in `make test` (NOT_IN_GROUP).
k8s-real:
	$(Q)OUT=$(OUT) scripts/k8s-real/build.sh

test-k8s: all k8s-real
	$(Q)OUT=$(OUT) CASE="$(CASE)" scripts/run-tests.sh test_k8s_real

# The container image (Containerfile) with podman, no registry needed: the
# Debian 12 base is made with debootstrap and kept (scripts/image/build.sh).
# BASE_IMAGE=docker.io/library/debian:bookworm-slim takes a registry's base.
IMAGE      ?= localhost/svcplane:latest
BASE_IMAGE ?=
image-deps:
	$(Q)scripts/deps.sh --check --image >/dev/null 2>&1 || scripts/deps.sh --image

image: image-deps
	$(Q)IMAGE=$(IMAGE) BASE_IMAGE=$(BASE_IMAGE) scripts/image/build.sh

# The image runs as the DaemonSet runs it (selftests/e2e/test_image.sh).
# Not in `make test` (NOT_IN_GROUP): it needs podman and builds the image.
test-image: all image
	$(Q)OUT=$(OUT) IMAGE=$(IMAGE) CASE="$(CASE)" scripts/run-tests.sh test_image

# A rolling upgrade with real binaries (selftests/e2e/test_upgrade.sh): the
# daemon of each revision of UPGRADE_FROM, built in a worktree under
# $(OUT)/compare-REV (kept for the next run), hands over to this one:
# d71be34, the last with a single conntrack table, and 504ed1b, the last
# with 64-byte conntrack values. Every revision runs; the target fails if
# any did. Not in `make test` (NOT_IN_GROUP); .ci/run runs it.
UPGRADE_FROM ?= d71be34 504ed1b
test-upgrade: all
	$(Q)rc=0; for r in $(UPGRADE_FROM); do \
		echo "== test-upgrade from $$r"; \
		OUT=$(OUT) scripts/build-rev.sh $$r && \
		OUT=$(OUT) SP_OLD_BIN=$(abspath $(OUT))/compare-$$r/build/svcplane \
			CASE="$(CASE)" scripts/run-tests.sh test_upgrade || rc=1; \
	done; exit $$rc

# `make test` STRESS_RUNS times (default 5) in a row with both cores kept
# busy by stress-ng --cpu 2: no test may depend on the machine's speed.
STRESS_RUNS ?= 5
test-stress: all
	$(Q)scripts/deps.sh --check --stress >/dev/null 2>&1 || scripts/deps.sh --stress
	$(Q)OUT=$(OUT) scripts/test-stress.sh $(STRESS_RUNS)

# Connection integrity under load (scripts/soak.sh): minutes of new
# connections with client-port reuse into a small conntrack, idle
# connections that must get pushed data afterwards, no un-NATed packet.
soak: all
	$(Q)OUT=$(OUT) scripts/soak.sh

# Mutation check: each selftests/mutants/*.patch breaks one claim in a
# scratch copy; its guarding test must fail (MUTANTS=substring to pick).
test-mutants: all
	$(Q)OUT=$(OUT) scripts/test-mutants.sh $(MUTANTS)

demo: all
	$(Q)OUT=$(OUT) scripts/demo.sh

# Traffic and control-plane comparisons (bench.sh), then the figures that
# need no traffic (Maglev builds, map sync, Kubernetes path at scale).
bench: all
	$(Q)OUT=$(OUT) QUICK=$(QUICK) scripts/bench.sh
	$(Q)OUT=$(OUT) QUICK=$(QUICK) scripts/bench/extra.sh $${BENCH_DOC:-docs/BENCHMARKS.md}
	$(Q)OUT=$(OUT) scripts/bench/pkt-compare.sh --doc $${BENCH_DOC:-docs/BENCHMARKS.md}

# AddressSanitizer + UBSan build of the daemon and user tests, then run them.
asan:
	$(Q)$(MAKE) OUT=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" all
	$(Q)OUT=build-asan scripts/run-tests.sh unit

# libFuzzer targets (selftests/fuzz/fuzz_*.c), with ASan and UBSan: the
# user objects they need are built again with clang under $(OUT)/fuzz.
# `make fuzz FUZZ_TIME=N` runs each target N seconds; `make fuzz
# FUZZ_RUNS=N` runs N inputs each from a fixed seed, the same on any
# machine (CI's way; scripts/fuzz.sh).
FUZZ_TIME   ?=
FUZZ_RUNS   ?=
FUZZ_OUT    := $(OUT)/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -std=gnu11 -Wall -Wextra -Werror \
	-Wno-missing-field-initializers -Iinclude -Iuser -MD -D_GNU_SOURCE
FUZZ_LIBS   := $(LDLIBS)
FUZZ_BINS   := $(patsubst selftests/fuzz/%.c,$(FUZZ_OUT)/%,$(wildcard selftests/fuzz/fuzz_*.c))
# Every user object but main and k8s, as the unit tests link them
# (config.c's check-config needs cli.c, which names every command);
# fuzz_k8s_watch includes k8s.c itself, the others link k8s.o.
FUZZ_OBJS   := $(patsubst user/%.c,$(FUZZ_OUT)/user/%.o,$(filter-out user/main.c user/k8s.c,$(USER_SRCS)))

fuzz: $(FUZZ_BINS)
	$(Q)OUT=$(OUT) FUZZ_TIME=$(FUZZ_TIME) FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh $(FUZZ_BINS)

# clang's libFuzzer runtime is a separate package, needed only here.
fuzz-deps:
	$(Q)scripts/deps.sh --check --fuzz >/dev/null 2>&1 || scripts/deps.sh --fuzz

$(FUZZ_OUT)/user/%.o: user/%.c $(SKELS) | fuzz-deps
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -I$(OUT) $(MHD_CFLAGS) -c $< -o $@

# The packet fuzzer runs the datapath itself (BPF_PROG_TEST_RUN, as root).
# It links the user objects for dp_fixture.h's sp_sync_dst_filter_add.
$(FUZZ_OUT)/fuzz_bpf_pkt: selftests/fuzz/fuzz_bpf_pkt.c $(SKELS) $(FUZZ_OBJS) $(FUZZ_OUT)/user/k8s.o | fuzz-deps
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -I$(OUT) -Iselftests/bpf -fsanitize=fuzzer $< \
		$(FUZZ_OBJS) $(FUZZ_OUT)/user/k8s.o -o $@ $(FUZZ_LIBS)

$(FUZZ_OUT)/fuzz_k8s_watch: selftests/fuzz/fuzz_k8s_watch.c $(FUZZ_OBJS) | fuzz-deps
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ $(FUZZ_LIBS)

$(FUZZ_OUT)/fuzz_%: selftests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(FUZZ_OUT)/user/k8s.o | fuzz-deps
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) $(FUZZ_OUT)/user/k8s.o -o $@ \
		$(FUZZ_LIBS)

clean:
	rm -rf $(OUT) build-asan

-include $(wildcard $(OUT)/*.d $(OUT)/user/*.d $(OUT)/tests/*.d $(OUT)/tools/*.d \
	$(FUZZ_OUT)/*.d $(FUZZ_OUT)/user/*.d)
.SECONDARY:
