package activities

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/activity"

	"github.com/project-vulcan/vulcan-backup/workflows"
)

type names []string

func (n *names) RegisterActivityWithOptions(_ any, o activity.RegisterOptions) {
	*n = append(*n, o.Name)
}

// Every activity the workflows call is registered, and the list of names is
// complete: a constant missing from either fails here, not in production.
func TestEveryActivityIsRegistered(t *testing.T) {
	var got names
	(&Activities{}).Register(&got)
	slices.Sort(got)
	want := slices.Clone(workflows.AllActivities)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("registered %v\nwant %v", got, want)
	}
	// Every *Activity constant of the workflows package is in AllActivities.
	f, err := parser.ParseFile(token.NewFileSet(), "../workflows/constants.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if id, ok := n.(*ast.ValueSpec); ok {
			for _, name := range id.Names {
				if strings.HasSuffix(name.Name, "Activity") {
					lit, _ := id.Values[0].(*ast.BasicLit)
					if lit != nil && !slices.Contains(want, strings.Trim(lit.Value, `"`)) {
						t.Errorf("%s is not in workflows.AllActivities", name.Name)
					}
				}
			}
		}
		return true
	})
}
