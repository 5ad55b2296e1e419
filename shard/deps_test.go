package shard

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the state machine free of Raft, gRPC and the network:
// besides the standard library it may use only the modules listed here.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/google/btree":      true,
		"github.com/cespare/xxhash/v2": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			stdlib := !strings.Contains(first, ".")
			if !stdlib && !allowed[path] {
				t.Errorf("%s imports %q; package shard may import only the standard library and %v", name, path, allowed)
			}
		}
	}
}
