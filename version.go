package main

import (
	"runtime/debug"
	"strings"
)

// The version, for -version, the start-up line and the User-Agent.

// version and commit identify the build. Release builds set them with
// -ldflags "-X main.version=1.2.3 -X main.commit=<full git sha>" (GoReleaser's {{.Version}}, the image
// tag: no "v"); otherwise version comes from the module's build information (see [programVersion]).
var (
	version = ""
	commit  = ""
)

// programVersion returns the version stamped with -ldflags -X, else the module version from the build
// information ("(devel)" for a plain go build), followed by the commit when one was stamped.
func programVersion() string {
	v := version
	if v == "" {
		v = buildInfoVersion()
	}
	if commit != "" {
		v += " (commit " + commit + ")"
	}
	return v
}

// buildInfoVersion returns the main module's version from the binary's build information without its
// "v", as release builds and image tags spell it: 1.2.3 for "go install module@v1.2.3"; "(devel)" for
// a build in a work tree.
func buildInfoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return strings.TrimPrefix(info.Main.Version, "v")
	}
	return "(devel)"
}
