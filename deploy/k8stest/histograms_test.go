package k8stest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryHistogramHasBuckets fails when the code creates an OpenTelemetry
// histogram without metric.WithExplicitBucketBoundaries: the SDK default
// (0, 5, 10, 25 ... 10000) suits milliseconds, so every seconds histogram
// would read a p95 under 5 s as about 4.75 s. Each package's own test
// asserts the boundaries it declares (libs/bitrix, libs/consumer).
func TestEveryHistogramHasBuckets(t *testing.T) {
	found := 0
	for _, root := range []string{"libs", "services", "tools"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Float64Histogram" && sel.Sel.Name != "Int64Histogram") {
					return true
				}
				found++
				for _, a := range call.Args {
					if c, ok := a.(*ast.CallExpr); ok {
						if s, ok := c.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "WithExplicitBucketBoundaries" {
							return true
						}
					}
				}
				t.Errorf("%s: %s without metric.WithExplicitBucketBoundaries", fset.Position(call.Pos()), sel.Sel.Name)
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found < 5 {
		t.Fatalf("found %d histograms: the scan is broken", found)
	}
}
