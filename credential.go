package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxCredentialSize bounds the service principal file, in bytes. "az ad sp create-for-rbac" prints about
// 200; anything near this is not a service principal file.
const maxCredentialSize = 1 << 20

// servicePrincipal is the JSON that "az ad sp create-for-rbac" prints
// (https://learn.microsoft.com/en-us/cli/azure/ad/sp#az-ad-sp-create-for-rbac). Password is the client
// secret and must never be printed.
type servicePrincipal struct {
	AppID       string // client ID
	DisplayName string
	Password    string // client secret
	Tenant      string // tenant ID or domain name
}

// readServicePrincipal reads and checks the service principal file at path, following symbolic links
// (a Kubernetes Secret volume links the file into a "..data" directory). An unreadable file gives exit
// status 1, an invalid one exit status 2. Errors never quote the file's content: it holds the secret.
func readServicePrincipal(path string) (servicePrincipal, error) {
	f, err := os.Open(path)
	if err != nil {
		return servicePrincipal{}, withExit(exitConfig, fmt.Errorf("reading service principal %q: %w", path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialSize+1))
	if err != nil {
		return servicePrincipal{}, withExit(exitConfig, fmt.Errorf("reading service principal %q: %w", path, err))
	}
	sp, err := parseServicePrincipal(data)
	if err != nil {
		return servicePrincipal{}, withExit(exitCredential, fmt.Errorf("reading service principal %q: %w", path, err))
	}
	return sp, nil
}

// spFile holds every attribute of the known service principal file formats that parseServicePrincipal
// tells apart. Pointers tell a missing attribute from an empty one.
type spFile struct {
	AppID       *string `json:"appId"`
	DisplayName *string `json:"displayName"`
	Password    *string `json:"password"`
	Tenant      *string `json:"tenant"`

	// "az ad sp create-for-rbac --create-cert" sets password to null and names a PEM file instead.
	FileWithCertAndPrivateKey *string `json:"fileWithCertAndPrivateKey"`

	// "az ad sp create-for-rbac --sdk-auth" (deprecated) prints another shape.
	ClientID     *string `json:"clientId"`
	ClientSecret *string `json:"clientSecret"`
	TenantID     *string `json:"tenantId"`
}

// parseServicePrincipal parses the content of a service principal file: UTF-8 JSON, with or without a
// byte-order mark, at most maxCredentialSize bytes. It names the formats it recognises but cannot use
// (UTF-16, --sdk-auth, --create-cert) and says what to do. Its errors never hold any of data.
func parseServicePrincipal(data []byte) (servicePrincipal, error) {
	if len(data) > maxCredentialSize {
		return servicePrincipal{}, fmt.Errorf("file is larger than %d bytes: not a service principal file", maxCredentialSize)
	}
	if isUTF16(data) {
		return servicePrincipal{}, errors.New("file is UTF-16 text (as Windows PowerShell 5 writes with \">\"): save it as UTF-8, e.g. with \"Out-File -Encoding utf8\" or PowerShell 7")
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var f spFile
	if err := json.Unmarshal(data, &f); err != nil {
		return servicePrincipal{}, jsonError(err)
	}
	if f.AppID == nil && f.Password == nil && f.Tenant == nil && (f.ClientID != nil || f.ClientSecret != nil || f.TenantID != nil) {
		return servicePrincipal{}, errors.New(`file has the "az ad sp create-for-rbac --sdk-auth" shape (clientId, clientSecret, tenantId): want the default output, {"appId", "displayName", "password", "tenant"}; rename the attributes or create the secret again without --sdk-auth`)
	}
	if f.Password == nil && f.FileWithCertAndPrivateKey != nil {
		return servicePrincipal{}, errors.New(`file is for a certificate credential ("az ad sp create-for-rbac --create-cert": password is null): this program needs a client secret; create one with "az ad app credential reset --id <appId> --append"`)
	}
	var missing []string
	for _, a := range []struct {
		name  string
		value *string
	}{{"appId", f.AppID}, {"displayName", f.DisplayName}, {"password", f.Password}, {"tenant", f.Tenant}} {
		if a.value == nil || *a.value == "" {
			missing = append(missing, fmt.Sprintf("%q", a.name))
		}
	}
	if len(missing) > 0 {
		return servicePrincipal{}, fmt.Errorf("missing or empty attribute %s: want the JSON \"az ad sp create-for-rbac\" prints", strings.Join(missing, ", "))
	}
	sp := servicePrincipal{AppID: *f.AppID, DisplayName: *f.DisplayName, Password: *f.Password, Tenant: *f.Tenant}
	if err := checkTenant(sp.Tenant); err != nil {
		return servicePrincipal{}, err
	}
	if err := checkPrintable(sp.AppID); err != nil {
		return servicePrincipal{}, fmt.Errorf("attribute \"appId\" %w", err)
	}
	return sp, nil
}

// isUTF16 reports whether data looks like UTF-16 text: a UTF-16 byte-order mark, or JSON's first
// character followed or preceded by a zero byte.
func isUTF16(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) ||
		len(data) >= 2 && (data[0] == 0 || data[1] == 0)
}

// jsonError describes a JSON decoding error without the text encoding/json quotes from the input, which
// could be part of the secret.
func jsonError(err error) error {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("not valid JSON: syntax error at byte %d", e.Offset)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// Value may be "number 123": keep only the kind.
		kind, _, _ := strings.Cut(e.Value, " ")
		if e.Field == "" {
			return fmt.Errorf("not valid JSON: want an object, not %s", kind)
		}
		return fmt.Errorf("attribute %q must be a string, not %s", e.Field, kind)
	}
	return errors.New("not valid JSON")
}

// checkTenant reports an error unless tenant is a tenant ID or a domain name: ASCII letters, digits,
// "." and "-", the rule the Azure SDK for Go applies before putting it in a URL path
// (azidentity's validTenantID).
func checkTenant(tenant string) error {
	for _, r := range tenant {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-') {
			return errors.New(`attribute "tenant" must be a tenant ID or domain name: ASCII letters, digits, "." and "-" only`)
		}
	}
	return nil
}
