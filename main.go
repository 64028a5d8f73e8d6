// Command azure-rest-api-token is being written; see issue 2.
package main

// version and commit are stamped at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = ""
	commit  = ""
)

func main() { println("azure-rest-api-token", version, commit) }
