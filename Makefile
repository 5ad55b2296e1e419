# ringkv: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
BIN := bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: all build test test-race vet run proto bench clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: vet; the long tests (TestLong*: 10,000 keys, 70 MiB of values, and
## the membership test: real processes joining, leaving and dying) and
## kvctl's tests against real clusters (TLS, auth, snapshots) without the
## race detector, where they take seconds instead of minutes on a 2-core
## machine; then every unit and integration test with it (-short skips the
## long ones there). The bench module (test/bench, etcd's client) is vetted so
## that it keeps building with the main module.
test:
	$(GO) vet ./...
	$(GO) -C test/bench vet ./...
	$(GO) test -count=1 -timeout 8m -run '^TestLong' ./node/ ./test/membership/
	$(GO) test -count=1 -timeout 4m ./cmd/kvctl/
	$(GO) test -race -short -count=1 -timeout 8m ./...

## run: a local 3-node cluster on 127.0.0.1:7001-7003; Ctrl-C stops it.
run: build
	@./scripts/run-local.sh

## certs: a test CA and certificates for the local cluster in .run/certs
## (nodes n1-n3 for localhost/127.0.0.1, client admin); see README "TLS".
.PHONY: certs
certs: build
	$(BIN)/kvctl certs create --dir .run/certs --nodes n1,n2,n3 --clients admin

## proto: regenerate the committed protobuf code.
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$(GOBIN):$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/ringkv/v1/*.proto

## bench: ringkv against etcd, side by side (bench-compare below); the Go
## micro-benchmarks are bench-go.
bench: bench-compare

clean:
	rm -rf $(BIN) .run

## jepsen: the jepsen-lite suite, every nemesis in turn, 75 s each (root,
## ip and nft; about 13 minutes). Replay one run with the command it prints;
## pass more flags with JEPSEN_FLAGS="--seed 42". See test/jepsen-lite/README.md.
.PHONY: jepsen jepsen-smoke
jepsen:
	$(GO) build -o $(BIN)/ ./cmd/kvnode ./test/jepsen-lite/cmd/jepsen-lite
	$(BIN)/jepsen-lite --kvnode $(BIN)/kvnode --nemesis all --duration 75s $(JEPSEN_FLAGS)

## jepsen-smoke: one 60 s jepsen-lite run under the nemesis mix (root; under
## 2 minutes, build included).
jepsen-smoke:
	$(GO) build -o $(BIN)/ ./cmd/kvnode ./test/jepsen-lite/cmd/jepsen-lite
	$(BIN)/jepsen-lite --kvnode $(BIN)/kvnode --nemesis mix --duration 60s $(JEPSEN_FLAGS)

## bench-compare: build, start a 3-node ringkv cluster and a 3-member etcd
## v3.6 cluster on loopback, drive both with the same load generator in
## alternating rounds, print the side-by-side table; results, chart and logs
## in bench-results/ (git-ignored). About 12 minutes; knobs in scripts/bench.sh.
## bench-go: the Go micro-benchmarks of every package (go test -bench).
.PHONY: bench-compare bench-go
bench-compare:
	./scripts/bench.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## docker-image: the image ringkv:dev, FROM scratch, with static kvnode and
## kvctl built on the host (no base image is pulled). docker-test: a 3-node
## docker-compose cluster end to end (put/get, a node re-created, the whole
## cluster restarted on its volumes; about 2 minutes with the build); skips
## when docker is absent. See docs/deploy.md.
.PHONY: docker-image docker-test
docker-image:
	GO=$(GO) ./scripts/docker-build.sh

docker-test:
	GO=$(GO) ./scripts/docker-test.sh
