package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	caFile    string      // SSL_CERT_FILE, checked by [checkTrustedCAs]
	caDirs    string      // SSL_CERT_DIR, likewise
	refresh   bool        // BEARER_TOKEN_REFRESH: keep the token fresh (refresh.go) instead of exiting
	replace   bool        // a regular file at tokenFile is replaced: BEARER_TOKEN_FILE_REPLACE, or refresh
	format    tokenFormat // BEARER_TOKEN_FORMAT, else the entry's (format.go)

	more        []resourceEntry // BEARER_TOKEN_RESOURCES: the tokens kept besides AZURE_RESOURCE's
	metricsAddr string          // BEARER_TOKEN_METRICS_ADDR, "" for no listener
	metrics     *metrics        // set once the listener is open; nil records nothing
	spacer      *spacer         // spaces the requests of several resources; nil for one
}

// resourceEntry is one entry of BEARER_TOKEN_RESOURCES: resource=path[,format].
type resourceEntry struct {
	resource, file string
	format         tokenFormat
}

// targets returns one config per token file: AZURE_RESOURCE's first, then BEARER_TOKEN_RESOURCES' in
// their order, each with its resource, audience (an entry's is its resource), file and format, and
// everything else shared. With one resource it is c alone, unchanged.
func (c config) targets() []config {
	ts := []config{c}
	for _, e := range c.more {
		t := c
		t.resource, t.audience, t.tokenFile, t.format = e.resource, e.resource, e.file, e.format
		ts = append(ts, t)
	}
	return ts
}

// withTimeout returns ctx bounded by BEARER_TOKEN_TIMEOUT, with a cause that names the variable: for
// the one-shot run, the first token of refresh mode, and each renewal.
func (c config) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.timeout, fmt.Errorf("BEARER_TOKEN_TIMEOUT (%s) ran out", c.timeout))
}

// knownVariables are the environment variables this program reads, but for the proxy and CA variables
// every Go program reads. Keep it whole: a variable set in the environment that starts with one of
// checkedPrefixes and is not here draws a warning naming the closest one here ([unknownVariables]).
var knownVariables = []string{
	"ENTRA_SERVICE_PRINCIPAL", "ENTRA_MANAGED_IDENTITY", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
	"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_RESOURCE", "AZURE_AUTHORITY_HOST",
	"BEARER_TOKEN_FILE", "BEARER_TOKEN_AUDIENCE", "BEARER_TOKEN_FILE_MODE", "BEARER_TOKEN_TIMEOUT",
	"BEARER_TOKEN_REFRESH", "BEARER_TOKEN_FILE_REPLACE", "BEARER_TOKEN_MIN_VALIDITY",
	"BEARER_TOKEN_FORMAT", "BEARER_TOKEN_RESOURCES", "BEARER_TOKEN_METRICS_ADDR",
	"LOG_FORMAT",
}

// checkedPrefixes are the prefixes of the variables that are this program's own: a variable with one
// of them that it does not read is most likely a typo, which would otherwise change nothing silently
// (BEARER_TOKEN_REFERSH=true gives a one-shot run). AZURE_ is not checked: Azure SDKs and tools read
// many more of those.
var checkedPrefixes = []string{"BEARER_TOKEN_", "ENTRA_"}

// unknownVariables returns one warning for each name in names (the variables set in the environment)
// that starts with one of checkedPrefixes but is not in knownVariables, naming the closest known
// variable, in the order of names.
func unknownVariables(names []string) []string {
	var warnings []string
	for _, name := range names {
		if slices.Contains(knownVariables, name) || !slices.ContainsFunc(checkedPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		closest, best := "", -1
		for _, k := range knownVariables {
			if d := editDistance(name, k); best < 0 || d < best {
				closest, best = k, d
			}
		}
		warnings = append(warnings, fmt.Sprintf("%s is set but is not a variable this program reads, and is ignored: did you mean %s?", name, closest))
	}
	return warnings
}

// editDistance returns the Levenshtein distance between a and b, counted in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// modeAttrs describes the run's mode for the start-up log line: one-shot or refresh, and whether a
// file at the token's path is replaced, so that a mistyped BEARER_TOKEN_REFRESH shows at once.
func (c config) modeAttrs() []any {
	mode := "one-shot"
	if c.refresh {
		mode = "refresh"
	}
	return []any{"mode", mode, "replace", c.replace}
}

// loadConfig reads and checks the environment variables through getenv, but for those of the credential
// (see [loadSource]), and keeps SSL_CERT_FILE and SSL_CERT_DIR for [checkTrustedCAs], without touching
// the network or the file system: it runs before BEARER_TOKEN_TIMEOUT is known, so nothing here may
// wait on a hung mount. Its error names every variable that is wrong, in one message, and carries exit
// status 1.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		resource:  getenv("AZURE_RESOURCE"),
		audience:  getenv("BEARER_TOKEN_AUDIENCE"),
		tokenFile: getenv("BEARER_TOKEN_FILE"),
		fileMode:  defaultFileMode,
		timeout:   defaultTimeout,
		caFile:    getenv("SSL_CERT_FILE"),
		caDirs:    getenv("SSL_CERT_DIR"),
	}
	var errs []error
	if err := checkCredentialVariables(getenv); err != nil {
		errs = append(errs, err)
	}
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
	errs = append(errs, checkProxies(getenv)...)
	if f, err := parseFormat(getenv("BEARER_TOKEN_FORMAT")); err != nil {
		errs = append(errs, fmt.Errorf("BEARER_TOKEN_FORMAT: %w", err))
	} else {
		c.format = f
	}
	more, err := parseResources(getenv("BEARER_TOKEN_RESOURCES"), c.tokenFile)
	if err != nil {
		errs = append(errs, err)
	}
	c.more = more
	c.refresh = boolVar(getenv, "BEARER_TOKEN_REFRESH", &errs)
	if c.metricsAddr = getenv("BEARER_TOKEN_METRICS_ADDR"); c.metricsAddr != "" {
		if err := checkListenAddr(c.metricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("BEARER_TOKEN_METRICS_ADDR %q: %w", c.metricsAddr, err))
		} else if !c.refresh {
			errs = append(errs, errors.New("BEARER_TOKEN_METRICS_ADDR is set but BEARER_TOKEN_REFRESH is not \"true\": a one-shot run exits before anything scrapes it"))
		}
	}
	c.replace = boolVar(getenv, "BEARER_TOKEN_FILE_REPLACE", &errs)
	if c.refresh && getenv("BEARER_TOKEN_FILE_REPLACE") == "false" {
		errs = append(errs, errors.New("BEARER_TOKEN_FILE_REPLACE is \"false\" but BEARER_TOKEN_REFRESH is \"true\": refresh mode replaces the file at every renewal; unset BEARER_TOKEN_FILE_REPLACE"))
	}
	c.replace = c.replace || c.refresh
	if len(errs) == 0 {
		return c, nil
	}
	return c, withExit(exitConfig, oneLine(errs))
}

// parseResources reads BEARER_TOKEN_RESOURCES: entries resource=path[,format] separated by white
// space (one a line in a YAML block scalar), each a token kept besides AZURE_RESOURCE's in
// BEARER_TOKEN_FILE (first, the path that no entry may repeat). Split at the first "=" (a resource
// has none) and at the last ",": a path may hold neither a comma nor white space. Its error names
// every malformed entry, by number and value: a resource and a path are not secrets.
func parseResources(s, first string) ([]resourceEntry, error) {
	var entries []resourceEntry
	var errs []error
	files := map[string]string{filepath.Clean(first): "BEARER_TOKEN_FILE"}
	for i, entry := range strings.Fields(s) {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("BEARER_TOKEN_RESOURCES entry %d %q: %s", i+1, entry, fmt.Sprintf(format, args...)))
		}
		resource, rest, ok := strings.Cut(entry, "=")
		if !ok || resource == "" || rest == "" {
			bad("want resource=path or resource=path,format, such as https://management.azure.com/=/var/run/azure-token/arm,json")
			continue
		}
		file, formatName := rest, ""
		if j := strings.LastIndexByte(rest, ','); j >= 0 {
			file, formatName = rest[:j], rest[j+1:]
		}
		format, err := parseFormat(formatName)
		switch {
		case err != nil:
			bad("%v", err)
		case file == "":
			bad("no path")
		case checkResource(resource) != nil:
			bad("resource: %v", checkResource(resource))
		case checkPath(file) != nil:
			bad("path: %v", checkPath(file))
		case files[filepath.Clean(file)] != "":
			bad("the path is also %s's: one file per token", files[filepath.Clean(file)])
		default:
			files[filepath.Clean(file)] = fmt.Sprintf("entry %d", i+1)
			entries = append(entries, resourceEntry{resource: resource, file: file, format: format})
		}
	}
	if len(errs) > 0 {
		return nil, oneLine(errs)
	}
	return entries, nil
}

// checkListenAddr reports an error unless addr is host:port with a port number (0 to 65535), as
// net.Listen takes it; the host may be empty (every address), a name or an IP address.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, such as :9464 or 127.0.0.1:9464")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("want a port number, such as :9464")
	}
	return nil
}

// boolVar returns whether the variable name is "true"; "false" and "" are false, and anything else is
// appended to errs.
func boolVar(getenv func(string) string, name string, errs *[]error) bool {
	switch v := getenv(name); v {
	case "true":
		return true
	case "", "false":
		return false
	default:
		*errs = append(*errs, fmt.Errorf("%s %q: want \"true\" or \"false\"", name, v))
		return false
	}
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

// checkExistingTokenFile returns an error with exit status 1 if anything exists at path, even a
// dangling symbolic link; but with replace (BEARER_TOKEN_FILE_REPLACE, refresh mode) a regular file is
// fine, since it will be replaced. A directory is named as such: BEARER_TOKEN_FILE names the file itself.
func checkExistingTokenFile(path string, replace bool) error {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return withExit(exitConfig, fmt.Errorf("checking token file %q: %w", path, pathErr(err)))
	case info.IsDir():
		return withExit(exitConfig, fmt.Errorf("token file %q already exists as a directory: BEARER_TOKEN_FILE names the token file inside a directory, such as %q", path, filepath.Join(path, "token")))
	case replace && info.Mode().IsRegular():
		return nil
	case replace:
		return withExit(exitConfig, fmt.Errorf("token file %q already exists as a %s: only a regular file is replaced", path, fileKind(info.Mode())))
	}
	return withExit(exitConfig, fmt.Errorf("token file %q already exists: an init container re-run on an emptyDir that survived it (its pod sandbox was re-created) is the usual cause, and the pod cannot start while this fails: delete the pod, set BEARER_TOKEN_FILE_REPLACE=true to replace the file, or run the program as a sidecar with BEARER_TOKEN_REFRESH=true", path))
}

// fileKind names the type of a file that is neither regular nor a directory, for messages.
func fileKind(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "symbolic link"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeDevice != 0:
		return "device"
	}
	return fmt.Sprintf("special file (%s)", mode.Type())
}

// proxyVariables are the proxy settings net/http reads (golang.org/x/net/http/httpproxy.FromEnvironment),
// each in upper and lower case, upper case first.
var proxyVariables = []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}

// checkProxies returns an error for each proxy variable whose value net/http cannot use. net/http
// ignores such a value without a word and connects directly, around the proxy and any egress control
// it enforces; or it reads "http//proxy:3128" as the host "http". So, as net/http does, a value without
// a scheme is read as http://value; it must then be a URL with the scheme http, https, socks5 or
// socks5h, a host, an optional port and nothing else. Errors name the variable and quote the value
// with any password, or if it does not parse anything before its "@", replaced by "xxxxx".
func checkProxies(getenv func(string) string) []error {
	var errs []error
	for _, name := range proxyVariables {
		v := getenv(name)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			if u2, err2 := url.Parse("http://" + v); err2 == nil {
				u, err = u2, nil
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %s", name, redactUserinfo(v), urlProblem(err)))
			continue
		}
		var reason string
		switch port, portErr := strconv.ParseUint(u.Port(), 10, 16); {
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h":
			reason = "want the scheme http, https, socks5 or socks5h"
		case u.Hostname() == "" || u.Port() != "" && (portErr != nil || port == 0):
			reason = "want a host name and an optional port"
		case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			reason = "want a host name, an optional port and nothing else, such as http://proxy.example:3128"
		default:
			continue
		}
		errs = append(errs, fmt.Errorf("%s %q: %s; Go would not use it and would connect without a proxy or fail", name, u.Redacted(), reason))
	}
	return errs
}

// urlProblem describes a url.Parse error without its text, which quotes the value, password included.
func urlProblem(err error) string {
	if _, ok := errors.AsType[url.EscapeError](err); ok {
		return `not a URL: an invalid %-escape; write a "%" in a user name or password as %25, and "@", ":" or "/" as %40, %3A, %2F; Go would not use it and would connect without a proxy`
	}
	return "not a URL; Go would not use it and would connect without a proxy"
}

// redactUserinfo returns s, which may not parse as a URL, with anything between its "scheme://" and its
// last "@" replaced by "xxxxx".
func redactUserinfo(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return s[:start] + "xxxxx" + s[at:]
}

// maxCABundle bounds, in bytes, how much of SSL_CERT_FILE is read to check it; the Mozilla bundle is
// about 220 KB.
const maxCABundle = 16 << 20

// checkTrustedCAs returns an error with exit status 1 if file, SSL_CERT_FILE, is set but is not a readable
// file holding a PEM certificate, or if dirs, SSL_CERT_DIR, is set but one of its directories (":"-separated)
// is missing or not a directory; nil if both are fine. crypto/x509 ignores both then, and the run would
// fail later with advice to set what is already set. It reads files, so it runs within
// BEARER_TOKEN_TIMEOUT ([oneShot]), not in [loadConfig]. On Linux crypto/x509 reads SSL_CERT_FILE in
// place of the system's bundle file but still every file in /etc/ssl/certs (or in SSL_CERT_DIR, when
// set): SSL_CERT_FILE adds CAs.
func checkTrustedCAs(file, dirs string) error {
	var errs []error
	if file != "" {
		data, err := readRegularFile(file, maxCABundle, fmt.Errorf("larger than %d bytes", maxCABundle))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("SSL_CERT_FILE %q: %w", file, err))
		case !x509.NewCertPool().AppendCertsFromPEM(data):
			errs = append(errs, fmt.Errorf("SSL_CERT_FILE %q: holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file))
		}
	}
	if dirs != "" {
		for dir := range strings.SplitSeq(dirs, ":") {
			if dir == "" {
				continue
			}
			if info, err := os.Stat(dir); err != nil {
				errs = append(errs, fmt.Errorf("SSL_CERT_DIR %q: %w", dir, pathErr(err)))
			} else if !info.IsDir() {
				errs = append(errs, fmt.Errorf("SSL_CERT_DIR %q: not a directory", dir))
			}
		}
	}
	if len(errs) > 0 {
		return withExit(exitConfig, oneLine(errs))
	}
	return nil
}
