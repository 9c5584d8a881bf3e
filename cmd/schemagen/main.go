// Command schemagen builds the full SpiceDB schema, schema/authzd.zed, from the hand-written core
// schema/core.zed and the module manifests schema/modules/*.yaml.
//
//	go run ./cmd/schemagen            # from the repository root: rewrite schema/authzd.zed
//	go run ./cmd/schemagen -check     # exit 1 if schema/authzd.zed is stale (for CI)
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scailabs/authzd/schema"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("schemagen", flag.ContinueOnError)
	dir := flags.String("dir", "schema", "directory holding core.zed and modules/*.yaml; "+schema.GeneratedFile+" is written there")
	check := flags.Bool("check", false, "do not write; fail if "+schema.GeneratedFile+" is not up to date")
	if err := flags.Parse(args); err != nil {
		return err
	}

	m, err := schema.Load(os.DirFS(*dir))
	if err != nil {
		return err
	}
	out := filepath.Join(*dir, schema.GeneratedFile)
	want := []byte(m.Schema())
	got, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch {
	case bytes.Equal(got, want):
		fmt.Fprintf(stdout, "%s is up to date (%d modules, %d keys)\n", out, len(m.Modules), len(m.Keys))
		return nil
	case *check:
		return fmt.Errorf("%s is stale: run `go run ./cmd/schemagen` (or `make schema`)", out)
	}
	if err := os.WriteFile(out, want, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d modules, %d keys)\n", out, len(m.Modules), len(m.Keys))
	return nil
}
