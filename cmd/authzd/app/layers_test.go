package app

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// modulePath is the module whose packages docs/architecture.md places in layers.
const modulePath = "github.com/scailabs/authzd"

// TestLayers holds docs/architecture.md to the code: every package of the
// repository is in its layer table, each imports only packages of lower
// layers and none of the outside packages its row says it never imports, and
// every file and `file: function` the page names exists.
func TestLayers(t *testing.T) {
	const root = "../../.."
	doc, err := os.ReadFile(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	layers, never := layerTable(t, string(doc))
	pkgs := packageImports(t, root)
	if len(pkgs) < 10 {
		t.Fatalf("found %d packages; is the repository root %s?", len(pkgs), root)
	}
	for pkg, imports := range pkgs {
		layer, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s is not in docs/architecture.md's layer table", pkg)
			continue
		}
		for imp, file := range imports {
			if rel, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				if l, known := layers[rel]; known && l >= layer {
					t.Errorf("%s (layer %d) imports %s (layer %d): an import may only go down a layer", file, layer, rel, l)
				}
				continue
			}
			for _, banned := range never[pkg] {
				if imp == banned || strings.HasPrefix(imp, banned+"/") {
					t.Errorf("%s imports %s, which docs/architecture.md says %s never imports", file, imp, pkg)
				}
			}
		}
	}
	for pkg := range layers {
		if _, ok := pkgs[pkg]; !ok {
			t.Errorf("docs/architecture.md's layer table lists %s, which has no Go files", pkg)
		}
	}
	for _, m := range regexp.MustCompile("`([\\w./-]+\\.go)`").FindAllStringSubmatch(string(doc), -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("docs/architecture.md names %s: %v", m[1], err)
		}
	}
	for _, ref := range namedFunctions(string(doc)) {
		if err := declared(filepath.Join(root, ref[0]), ref[1]); err != nil {
			t.Errorf("docs/architecture.md names `%s: %s`: %v", ref[0], ref[1], err)
		}
	}
}

// layerTable reads the rows "| layer | package | holds | never imports |".
func layerTable(t *testing.T, doc string) (layers map[string]int, never map[string][]string) {
	layers, never = map[string]int{}, map[string][]string{}
	for line := range strings.SplitSeq(doc, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			continue
		}
		pkg := strings.TrimSpace(cells[2])
		if _, dup := layers[pkg]; dup {
			t.Errorf("docs/architecture.md lists %s twice", pkg)
		}
		layers[pkg] = n
		for banned := range strings.SplitSeq(cells[4], ",") {
			if banned = strings.TrimSpace(banned); banned != "" {
				never[pkg] = append(never[pkg], banned)
			}
		}
	}
	if len(layers) == 0 {
		t.Fatal("docs/architecture.md has no layer table")
	}
	return layers, never
}

// packageImports maps each directory holding Go files (relative to root,
// skipping hidden directories and testdata) to the imports of its non-test
// files, each with a file that makes it.
func packageImports(t *testing.T, root string) map[string]map[string]string {
	out := map[string]map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if out[pkg] == nil {
			out[pkg] = map[string]string{}
		}
		if strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			out[pkg][p] = filepath.ToSlash(filepath.Join(pkg, name))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// namedFunctions finds every `path/file.go: Function` or `path/file.go: Type.Method` in doc.
func namedFunctions(doc string) [][2]string {
	var out [][2]string
	for _, m := range regexp.MustCompile("`([\\w./-]+\\.go): ([\\w.]+)`").FindAllStringSubmatch(doc, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// declared reports whether file declares the function (Name) or method (Type.Name).
func declared(file, name string) error {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		return err
	}
	recv, fn, isMethod := strings.Cut(name, ".")
	if !isMethod {
		recv, fn = "", name
	}
	var found []string
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		r := ""
		if fd.Recv != nil && len(fd.Recv.List) > 0 {
			r = receiverType(fd.Recv.List[0].Type)
		}
		if r == recv && fd.Name.Name == fn {
			return nil
		}
		found = append(found, strings.TrimPrefix(r+"."+fd.Name.Name, "."))
	}
	slices.Sort(found)
	return &missingError{name: name, found: found}
}

func receiverType(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.StarExpr:
		return receiverType(x.X)
	case *ast.IndexExpr:
		return receiverType(x.X)
	case *ast.Ident:
		return x.Name
	}
	return ""
}

type missingError struct {
	name  string
	found []string
}

func (e *missingError) Error() string {
	return "the file declares no " + e.name + " (it declares " + strings.Join(e.found, ", ") + ")"
}
