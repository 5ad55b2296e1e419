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

## test: vet; the long tests (TestLong*: 10,000 keys, 70 MiB of values)
## without the race detector, where they take seconds instead of minutes on a
## 2-core machine; then every unit and integration test with it (-short skips
## the long ones there).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 5m -run '^TestLong' ./node/
	$(GO) test -race -short -count=1 -timeout 8m ./...

## run: a local 3-node cluster on 127.0.0.1:7001-7003; Ctrl-C stops it.
run: build
	@./scripts/run-local.sh

## proto: regenerate the committed protobuf code.
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$(GOBIN):$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/ringkv/v1/*.proto

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) .run
