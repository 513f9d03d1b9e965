package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

func runVersion(_ context.Context, e *env, args []string) error {
	f := newFlags(e, "version", "", "Print the version, the source revision it was built from and the Go version.")
	if err := f.Parse(args); err != nil {
		return err
	}
	version, revision, goVersion := "(devel)", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					revision += "+dirty"
				}
			}
		}
	}
	fmt.Fprintf(e.stdout, "backfill %s (revision %s, %s)\n", version, revision, goVersion)
	return nil
}
