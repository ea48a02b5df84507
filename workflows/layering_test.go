package workflows_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Workflows only orchestrate: they must not import the I/O packages (or the
// activities), and must not reach for the clock, randomness or goroutines
// through the standard library.
func TestWorkflowsImportNoIO(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	forbidden := []string{"/internal/", "/activities", "/control", "os", "os/exec", "net", "net/http", "math/rand", "math/rand/v2", "crypto/rand", "io/ioutil", "sync"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(bad, "/") && strings.Contains(path, "vulcan-backup"+bad) {
					t.Errorf("%s imports %s: workflows must stay deterministic and free of I/O", f, path)
				}
			}
		}
	}
}
