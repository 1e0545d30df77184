// The version command: the stamped release, the module version and the VCS revision the binary was built from.
package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is stamped at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func printVersion(w io.Writer) error {
	line := "parley " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			line += " module " + v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				line += " revision " + s.Value
			}
		}
		line += " " + bi.GoVersion
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
