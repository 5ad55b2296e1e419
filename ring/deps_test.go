package ring

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps ring at the bottom of the dependency graph: the standard
// library and xxhash only (see STYLE.md). Test files may also import ring
// itself (external examples).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			stdlib := !strings.Contains(strings.Split(path, "/")[0], ".")
			ok := stdlib || path == "github.com/cespare/xxhash/v2" ||
				(strings.HasSuffix(name, "_test.go") && path == "github.com/ringkv/ringkv/ring")
			if !ok {
				t.Errorf("%s imports %q; ring may import only the standard library and github.com/cespare/xxhash/v2", name, path)
			}
		}
	}
}
