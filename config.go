package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults for the optional environment variables; the package comment documents them.
const (
	defaultAuthorityHost = "https://login.microsoftonline.com/"
	defaultFileMode      = fs.FileMode(0o644)
	defaultTimeout       = 2 * time.Minute
)

// config is the validated environment.
type config struct {
	resource  string      // AZURE_RESOURCE, exactly as given
	audience  string      // BEARER_TOKEN_AUDIENCE, else resource
	tokenFile string      // BEARER_TOKEN_FILE
	fileMode  fs.FileMode // BEARER_TOKEN_FILE_MODE, permission bits only
	authority *url.URL    // AZURE_AUTHORITY_HOST, https, path ending in "/"
	timeout   time.Duration
}

// loadConfig reads and checks the environment variables through getenv, but for those of the credential
// (see [loadCredential]), without touching the network or the file system. Its errors name the variable
// and carry exit status 1.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		resource:  getenv("AZURE_RESOURCE"),
		audience:  getenv("BEARER_TOKEN_AUDIENCE"),
		tokenFile: getenv("BEARER_TOKEN_FILE"),
		fileMode:  defaultFileMode,
		timeout:   defaultTimeout,
	}
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"AZURE_RESOURCE", c.resource},
		{"BEARER_TOKEN_FILE", c.tokenFile},
	} {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is not set", v.name))
		}
	}
	for _, v := range []struct{ name, value string }{
		{"ENTRA_SERVICE_PRINCIPAL", getenv("ENTRA_SERVICE_PRINCIPAL")},
		{"BEARER_TOKEN_FILE", c.tokenFile},
		{"AZURE_CLIENT_CERTIFICATE_PATH", getenv("AZURE_CLIENT_CERTIFICATE_PATH")},
		{"AZURE_FEDERATED_TOKEN_FILE", getenv("AZURE_FEDERATED_TOKEN_FILE")},
	} {
		if err := checkPath(v.value); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", v.name, v.value, err))
		}
	}
	if err := checkResource(c.resource); c.resource != "" && err != nil {
		errs = append(errs, fmt.Errorf("AZURE_RESOURCE %q: %w", c.resource, err))
	}
	if c.audience == "" {
		c.audience = c.resource
	} else if err := checkPrintable(c.audience); err != nil {
		errs = append(errs, fmt.Errorf("BEARER_TOKEN_AUDIENCE %q: %w", c.audience, err))
	}
	authority, err := parseAuthorityHost(getenv("AZURE_AUTHORITY_HOST"))
	if err != nil {
		errs = append(errs, fmt.Errorf("AZURE_AUTHORITY_HOST: %w", err))
	}
	c.authority = authority
	if s := getenv("BEARER_TOKEN_FILE_MODE"); s != "" {
		mode, err := strconv.ParseUint(s, 8, 32)
		if err != nil || mode > 0o777 {
			errs = append(errs, fmt.Errorf("BEARER_TOKEN_FILE_MODE %q: want octal permission bits such as 0644", s))
		}
		c.fileMode = fs.FileMode(mode) & fs.ModePerm
	}
	if s := getenv("BEARER_TOKEN_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("BEARER_TOKEN_TIMEOUT %q: want a positive Go duration such as 2m or 90s", s))
		}
		c.timeout = d
	}
	if len(errs) == 0 {
		return c, nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return c, withExit(exitConfig, errors.New(strings.Join(msgs, "; ")))
}

// checkResource rejects a resource Entra's v1 endpoint cannot take: a v2 scope ("…/.default"), or a
// value with white space or control characters (usually a stray newline from a ConfigMap).
func checkResource(resource string) error {
	if strings.HasSuffix(resource, "/.default") {
		return fmt.Errorf("this is a v2 scope, not a resource: drop the \"/.default\" suffix, e.g. %q", strings.TrimSuffix(resource, "/.default"))
	}
	return checkPrintable(resource)
}

// checkPath reports an error if path holds control characters or starts or ends with a space: most
// likely a stray newline from a YAML block scalar, which would name another file.
func checkPath(path string) error {
	if strings.ContainsFunc(path, func(r rune) bool { return r < ' ' || r == 0x7f }) || strings.TrimSpace(path) != path {
		return errors.New("holds control characters or surrounding white space")
	}
	return nil
}

// checkPrintable reports an error if s holds white space or control characters.
func checkPrintable(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("holds white space or control characters")
	}
	return nil
}

// parseAuthorityHost returns the Entra authority s ("" means the public cloud's) as an https URL whose
// path ends in "/", so that the tenant can be joined to it. The Azure SDKs read the same variable
// (https://learn.microsoft.com/en-us/azure/developer/go/sdk/authentication/authentication-overview).
// Its errors quote s, less any password.
func parseAuthorityHost(s string) (*url.URL, error) {
	if s == "" {
		s = defaultAuthorityHost
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	port, portErr := strconv.ParseUint(u.Port(), 10, 16)
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("%q: want an https URL such as https://login.microsoftonline.us/", u.Redacted())
	case u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		u.Port() != "" && (portErr != nil || port == 0):
		return nil, fmt.Errorf("%q: want a host name, an optional port and nothing else, such as https://login.microsoftonline.us/", u.Redacted())
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	return u, nil
}

// checkNoTokenFile returns an error with exit status 1 if anything exists at path, even a dangling
// symbolic link: the program never replaces a token file.
func checkNoTokenFile(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return withExit(exitConfig, fmt.Errorf("token file %q already exists: an init container re-run on an emptyDir that survived it is the usual cause; the main container can use that token, or delete it first", path))
	case !errors.Is(err, fs.ErrNotExist):
		return withExit(exitConfig, fmt.Errorf("checking token file %q: %w", path, pathErr(err)))
	}
	return nil
}
