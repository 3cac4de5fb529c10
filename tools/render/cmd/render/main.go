// Command render regenerates every file that derives from the service
// declarations in services/catalog (see package render): run it from the
// repository root as `go tool task render` after changing a declaration,
// a go.mod replace line or a marked fragment's surroundings. With -check it
// writes nothing and exits 1 naming each stale file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/b24hub/b24hub/services/catalog"
	"github.com/b24hub/b24hub/tools/render"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("render", flag.ContinueOnError)
	root := fl.String("root", ".", "the repository root")
	check := fl.Bool("check", false, "write nothing; fail naming each stale file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))
	repo := os.DirFS(*root)
	files, err := render.Render(repo, catalog.All)
	if err != nil {
		return err
	}
	stale, err := render.Stale(repo, files)
	if err != nil {
		return err
	}
	if *check {
		for _, p := range stale {
			log.ErrorContext(ctx, "stale generated file", "path", p)
		}
		if len(stale) > 0 {
			return fmt.Errorf("%d generated files are stale; run `%s`", len(stale), render.Command)
		}
		return nil
	}
	obsolete, err := render.Obsolete(repo, files)
	if err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(*root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	for _, p := range obsolete {
		if err := os.Remove(filepath.Join(*root, filepath.FromSlash(p))); err != nil {
			return err
		}
		log.InfoContext(ctx, "removed obsolete generated file", "path", p)
	}
	for _, p := range stale {
		log.InfoContext(ctx, "updated", "path", p)
	}
	log.InfoContext(ctx, "rendered", "files", len(files), "changed", len(stale))
	return nil
}
