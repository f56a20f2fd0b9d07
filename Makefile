# nkscript — run Starlark network labs with guaranteed cleanup.
#
#   make demo    set up (qemu, microVM kernel) and run scripts/tutorial.star
#   make test    gofmt/vet checks, the whole test suite (as root), leak check
#   make build   bin/nkscript, static (the microVM boots it as its init)
#   make generate  rebuild the BPF objects with the pinned clang
#   make install   bin/nkscript and its shell completions under $(DESTDIR)$(PREFIX)

GO      ?= go
CLANG   ?= clang-19
BIN     := bin/nkscript
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
TESTFLAGS ?=

.PHONY: all build install demo setup kernel test check generate check-generate bench reliability clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nkscript

# install puts the binary in $(DESTDIR)$(PREFIX)/bin and the completion
# scripts where bash-completion, zsh and fish look for them.
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/nkscript
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	./$(BIN) completion bash >$(DESTDIR)$(PREFIX)/share/bash-completion/completions/nkscript
	./$(BIN) completion zsh >$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_nkscript
	./$(BIN) completion fish >$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/nkscript.fish

# setup installs what the microVM needs on Debian (qemu, the pinned kernel).
setup: build
	./hack/setup.sh
	./$(BIN) kernels --fetch

kernel: build
	./$(BIN) kernels --fetch

demo: setup
	./$(BIN) scripts/tutorial.star

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# setup (qemu, iproute2/bpftool from backports, the microVM kernel) is
# idempotent and quick once done, so a fresh Debian machine needs nothing
# but `make test`. The netkit suites run in the microVM (vmtest/, and
# `nkscript test scripts`, which boots one guest for the batch);
# NKSCRIPT_REQUIRE_VM=1 makes them fail rather than skip if it cannot boot.
# The leak check (internal/machine) snapshots every namespace, the links,
# addresses, routes, rules, tc and BPF attachments in the host and named
# namespaces, host sysctls, BPF programs, maps and links, pins, tracefs
# instances, the journals (the real directory and the one `nkscript test`
# uses) and qemu processes before and after the suite; any difference
# fails. check-generate rebuilds the committed BPF objects
# from their C sources (clang-19, installed by setup) and fails if they
# differ. The VM suites boot qemu under TCG (seconds per boot) and one test
# binary can hold more than one of them, so go test's default 10-minute
# limit is too short: TESTTIMEOUT covers them.
TESTTIMEOUT ?= 25m
test: check setup check-generate
	journals=$$(mktemp -d); \
	GO=$(GO) ./hack/leakcheck.sh snapshot .leakcheck.before /run/nkscript $$journals || exit 1; \
	NKSCRIPT_REQUIRE_VM=1 $(GO) test -count=1 -timeout $(TESTTIMEOUT) $(TESTFLAGS) ./... ; status=$$?; \
	./$(BIN) test --no-skip --journal-dir=$$journals scripts || status=1; \
	GO=$(GO) ./hack/leakcheck.sh compare .leakcheck.before || status=1; \
	rm -rf .leakcheck.before $$journals; exit $$status

# The generated bpf/*_bpfel.{go,o} are committed: building and testing
# needs no C toolchain. clang-19 and llvm-strip-19 are pinned in
# bpf/gen.go; install them with: apt-get install -y clang-19 llvm-19 libbpf-dev
generate:
	@command -v $(CLANG) >/dev/null || { echo "$(CLANG) not found: apt-get install -y clang-19 llvm-19 libbpf-dev"; exit 1; }
	$(GO) generate ./bpf/ ./bench/nsrelease/

# Fails if the committed objects are out of date with their sources.
check-generate: generate
	git diff --exit-code -- bpf/ bench/nsrelease/

# Writes BENCHMARKS.md (as root): nkscript vs the --dry-run shell script vs
# hand-written netlink Go for chains of 1..1000 namespaces, startup, peak
# RSS, phases, BPF ns/packet. QUICK=1 for fewer repetitions.
bench: setup
	./hack/bench.sh

# The long version of the reliability tests `make test` runs short: a fault
# sweep over every script, many random signals, every fuzz target for
# FUZZTIME; writes docs/RELIABILITY.md.
reliability: build
	./hack/reliability.sh

clean:
	rm -rf bin
