# dispatch — see README.md. `make run` runs the main job, `make test` the tests.

GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME      ?= 10s
BENCHTIME     ?= 1s
COUNT         ?= 5
PEERS_BENCHTIME ?= 200ms

.PHONY: all run test fmt-check vet staticcheck unit golden bench bench-peers fuzz build clean

all: test

CONFIG        ?= config/dispatch.yaml

## run: the main job on the default configuration: start its channels with
## their simulated workers and dispatch the built-in sample load through them
run:
	$(GO) run ./cmd/dispatch run -c $(CONFIG)

## test: gofmt check, go vet, staticcheck, race-enabled tests
test: fmt-check vet staticcheck unit

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 ./...

## golden: rewrite the golden journals of testdata/scenarios and the
## expected outputs of the CLI scripts from the current runs, the
## reference tables of docs/scripting.md from router/internal/names, and
## config/dispatch.schema.json from the config's key declarations
golden:
	$(GO) test ./scenario ./cmd/dispatch -run 'TestScenarios|TestScripts' -update
	$(GO) generate ./router/internal/names ./config

## bench: every benchmark, with allocations
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

## bench-peers: the policy of issue 16 in every embeddable engine, in the
## module bench/peers (its own go.mod, so `test` neither builds it nor
## downloads its dependencies): first the check that every implementation
## chooses as Go does, then the benchmark
bench-peers:
	cd bench/peers && $(GO) test -count=1 -run . ./...
	cd bench/peers && $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(PEERS_BENCHTIME) -count=$(COUNT) ./...

## fuzz: a short run of every fuzz target
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

## build: the dispatch binary into bin/
build:
	$(GO) build -o bin/dispatch ./cmd/dispatch

clean:
	rm -rf bin
