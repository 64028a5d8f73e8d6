package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// managedIdentityDemo runs program a second time, with managed identity: an IMDS stand-in on 127.0.0.1
// (plain HTTP, as IMDS at 169.254.169.254 is), and the environment a pod on an Azure VM would have but
// for AZURE_POD_IDENTITY_AUTHORITY_HOST, which points the program at the stand-in. It shows the one
// request IMDS received.
func managedIdentityDemo(program, dir string) error {
	imds, err := entratest.NewMIServer(entratest.IMDS, "")
	if err != nil {
		return err
	}
	defer imds.Close()
	tokenDir := filepath.Join(dir, "token-managed-identity")
	if err := os.Mkdir(tokenDir, 0o755); err != nil {
		return err
	}
	env := managedIdentityEnv(imds.URL, filepath.Join(tokenDir, "token"))
	fmt.Printf("7. managed identity: an IMDS stand-in at %s; running the program again with:\n", imds.URL)
	for _, e := range env {
		fmt.Println("     " + e[0] + "=" + e[1])
	}
	cmd := exec.Command(program)
	for _, e := range env {
		cmd.Env = append(cmd.Env, e[0]+"="+e[1])
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s with managed identity: %w", program, err)
	}
	for _, r := range imds.Requests() {
		fmt.Printf("8. IMDS received %s %s?%s with Metadata: %q: one request, no secret\n", r.Method, r.Path, r.Query, r.Header.Get("Metadata"))
	}
	return nil
}

// managedIdentityEnv is the environment of a managed identity run against the IMDS stand-in at
// authorityHost, writing tokenFile.
func managedIdentityEnv(authorityHost, tokenFile string) [][2]string {
	return [][2]string{
		{"ENTRA_MANAGED_IDENTITY", "system"},
		{"AZURE_RESOURCE", entratest.PrometheusResource},
		{"BEARER_TOKEN_FILE", tokenFile},
		{"AZURE_POD_IDENTITY_AUTHORITY_HOST", authorityHost},
	}
}

// serveManagedIdentity starts an IMDS stand-in beside -serve's Entra stand-in and writes
// DIR/env-managed-identity, whose variables make the program get a token from it into
// DIR/token-managed-identity. The caller closes the stand-in.
func serveManagedIdentity(dir string) (*entratest.MIServer, error) {
	imds, err := entratest.NewMIServer(entratest.IMDS, "")
	if err != nil {
		return nil, err
	}
	// The user-assigned identity deploy/managed-identity.yaml selects, by its placeholder client ID,
	// so that the manifest as shipped can be run against this stand-in.
	imds.Users = append(imds.Users, entratest.ManagedIdentity{ClientID: "00000000-0000-0000-0000-000000000000",
		ObjectID: "00000000-0000-0000-0000-00000000000b", ResourceID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prometheus-reader"})
	var b []byte
	for _, kv := range managedIdentityEnv(imds.URL, filepath.Join(dir, "token-managed-identity")) {
		b = fmt.Appendf(b, "export %s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
	}
	if err := os.WriteFile(filepath.Join(dir, "env-managed-identity"), b, 0o644); err != nil {
		imds.Close()
		return nil, err
	}
	fmt.Printf("IMDS stand-in serving at %s; . %s for managed identity\n", imds.URL, filepath.Join(dir, "env-managed-identity"))
	return imds, nil
}
