# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # globals set here for, or by, the scripts that source this file
# lib.sh: what the offline checks under .ci/ share, so that each check script
# (release-check, k8s-check, admission-check) says only what it proves.
# Source it from a check script, then call lib_start:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lib_start release-check
#
# Every check prints PASS/FAIL lines and ends with finish: "N passed, N
# failed", non-zero on any failure. Everything goes to a mktemp directory,
# $work, removed on exit (KEEP=1 keeps it); background processes started with
# `pids+=($!)` are stopped on exit, after the commands added with `on_exit CMD`
# (e.g. removing containers) have run.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$repo/.ci/release

# lib_start NAME: counters, $work ($logs, $bin on PATH, $src, $standin), the
# exit trap.
lib_start() {
	check_name=$1
	start=$SECONDS
	passed=0
	failed=0
	work=$(mktemp -d "${TMPDIR:-/tmp}/$check_name.XXXXXX")
	logs=$work/logs
	bin=$work/bin
	src=$work/src         # make_clone
	standin=$work/standin # start_standin
	mkdir -p "$logs" "$bin"
	pids=()
	exit_hooks=()
	export PATH=$bin:$PATH
	trap lib_cleanup EXIT
	trap 'exit 130' INT TERM
}

# on_exit CMD: run CMD (a command or function name, no arguments) on exit,
# before background processes are stopped and $work is removed.
on_exit() {
	exit_hooks+=("$1")
}

lib_cleanup() {
	local p h
	for h in "${exit_hooks[@]}"; do
		"$h" >/dev/null 2>&1
	done
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ "${KEEP:-${RELEASE_CHECK_KEEP:-}}" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}

pass() {
	passed=$((passed + 1))
	printf 'PASS  %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	printf 'FAIL  %s\n' "$*"
}


# check NAME CMD...: run CMD with output to a log; PASS or FAIL with the log's tail.
# The log's name starts with the check's number: names that share their first
# 80 characters would otherwise share (and overwrite) one log.
check() {
	local name=$1 log
	shift
	log=$logs/$(printf '%03d-%s' $((passed + failed + 1)) "$name" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-84).log
	if "$@" >"$log" 2>&1; then
		pass "$name"
		return 0
	fi
	fail "$name"
	tail -n 25 "$log" | sed 's/^/      | /'
	return 1
}

# finish: the tally; exits non-zero if anything failed.
finish() {
	printf '\n%s took %ds\n' "$check_name" $((SECONDS - start))
	printf '%d passed, %d failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
	exit
}

# install_apt PACKAGE...: install the Debian packages that are missing.
install_apt() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all installed: $*"
		return 0
	fi
	apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The release tools are pinned in tools/go.mod (actionlint in its own module:
# its YAML library cannot share a build list with GoReleaser's). `go tool -n`
# builds a tool once into the build cache and prints its path; link it into
# $bin so that other programs (GoReleaser, buildah) can run it by name.
# install_tools [TOOL...]: those tools only (default: all of them).
install_tools() {
	local t p mod
	[ $# -gt 0 ] || set -- ko crane cosign goreleaser syft actionlint
	for t in "$@"; do
		mod=tools/go.mod
		[ "$t" = actionlint ] && mod=tools/actionlint/go.mod
		p=$(cd "$repo" && go tool -modfile="$mod" -n "$t") || return 1
		ln -sf "$p" "$bin/$t"
		echo "$t: $p"
	done
}

# release_toolchain: the release Go toolchain that .goreleaser.yaml names.
release_toolchain() {
	sed -n 's/^ *- GOTOOLCHAIN=\(go[0-9.]*\)$/\1/p' "$repo/.goreleaser.yaml" | head -n1
}

# fetch_release_toolchain: the release toolchain in the module cache (GOTOOLCHAIN in .ko.yaml and
# .goreleaser.yaml), while the module proxy may still be reached: every check that builds the image
# needs it, and a fresh machine does not have it.
fetch_release_toolchain() {
	local v
	v=$(release_toolchain)
	[ -n "$v" ] && (cd "$repo" && GOTOOLCHAIN=$v go version)
}

# go_offline: from here on nothing may leave the machine. Proxies point at a
# closed loopback port and the module proxy is off. cosign: no TUF refresh
# (there is no Sigstore here); $offline_verify passes an empty trusted root to
# verify commands for the same reason.
go_offline() {
	export HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost
	export https_proxy=$HTTPS_PROXY http_proxy=$HTTP_PROXY no_proxy=$NO_PROXY
	export GOPROXY=off GOTOOLCHAIN=local
	export COSIGN_PASSWORD=
	export SIGSTORE_NO_CACHE=true TUF_ROOT=$work/tuf
	printf '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n' >"$work/trusted_root.json"
	offline_verify=(--insecure-ignore-tlog --trusted-root="$work/trusted_root.json")
}

# start_registry NAME: crane registry serve on 127.0.0.1:0; sets REG to host:port.
start_registry() {
	local name=$1 log=$logs/registry-$1.log port
	crane registry serve --address 127.0.0.1:0 >"$log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$log" | head -n1)
		if [ -n "$port" ]; then
			REG=127.0.0.1:$port
			crane catalog "$REG" >/dev/null && return 0
		fi
		sleep 0.1
	done
	echo "registry $name did not start" >&2
	cat "$log" >&2
	return 1
}

# The stand-in for distroless static nonroot ($platforms, pushed to $R1).
# The layer: Debian's CA bundle from the ca-certificates package's own files
# (not /etc/ssl/certs, which may hold local additions), users and dirs as in
# distroless static nonroot. Fixed owners, modes and mtimes, sorted: the layer
# digest depends only on the package version.
make_base_layer() {
	local root=$work/base-root
	rm -rf "$root"
	mkdir -p "$root/etc/ssl/certs" "$root/home/nonroot" "$root/tmp"
	dpkg -L ca-certificates | grep '^/usr/share/ca-certificates/mozilla/.*\.crt$' | LC_ALL=C sort |
		xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
	test -s "$root/etc/ssl/certs/ca-certificates.crt" || return 1
	printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
		'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
		'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$root/etc/group"
	chmod 0755 "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs" "$root/home"
	chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/ssl/certs/ca-certificates.crt"
	chown 65532:65532 "$root/home/nonroot"
	chmod 0700 "$root/home/nonroot"
	chmod 1777 "$root/tmp"
	tar -C "$root" --sort=name --mtime=@0 --numeric-owner --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-cf "$work/base.tar" etc home tmp
}

push_base() {
	local p args=()
	crane append --oci-empty-base -f "$work/base.tar" -t "$R1/stand-in/static:layer" || return 1
	for p in "${platforms[@]}"; do
		crane mutate "$R1/stand-in/static:layer" --set-platform "$p" \
			--user 65532:65532 --workdir /home/nonroot \
			-e PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			-e SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
			-t "$R1/stand-in/static:${p//\//-}" || return 1
		args+=(-m "$R1/stand-in/static:${p//\//-}")
	done
	crane index append "${args[@]}" -t "$R1/stand-in/static:nonroot" || return 1
	BASE=$R1/stand-in/static@$(crane digest "$R1/stand-in/static:nonroot") || return 1
	echo "$BASE"
}

# index_platforms REF: the platforms of an index, one per line, sorted.
index_platforms() {
	crane manifest "$1" | jq -r '.manifests[] | select(.platform.os != "unknown")
		| .platform | [.os, .architecture, .variant // empty] | join("/")' | LC_ALL=C sort
}

# A temporary clone with a release tag at HEAD. CI's tree is clean, so this is
# a plain clone of HEAD; a dirty tree (local runs) is snapshotted into a fresh
# repository instead, dated like HEAD, so work in progress can be checked.
make_clone() {
	local when
	if [ -z "$(git -C "$repo" status --porcelain)" ]; then
		git clone -q "$repo" "$src" || return 1
	else
		echo "working tree is dirty: snapshotting it"
		mkdir -p "$src"
		(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do
				if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
			done | xargs -0 cp -a --parents -t "$src") || return 1
		when=$(git -C "$repo" log -1 --format=%cI)
		git -C "$src" init -q &&
			git -C "$src" add -A &&
			GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when git -C "$src" \
				-c user.name=release-check -c user.email=release-check@localhost \
				commit -q -m "snapshot of the working tree" || return 1
	fi
	# Any remote will do: the GitHub release is disabled and nothing is pushed.
	git -C "$src" remote remove origin 2>/dev/null
	git -C "$src" remote add origin https://github.com/densify-dev/azure-rest-api-token.git &&
		git -C "$src" tag -f "v$version" >/dev/null &&
		git -C "$src" log -1 --format='%H %cI' --decorate
}

# ko_build REPO [KO_FLAG...]: ko build --bare of $src with the shipped .ko.yaml
# on the stand-in base (for .ko.yaml's platforms, unless a --platform flag
# narrows them to those of $platforms); prints the image reference
# (REPO@sha256:...) last.
ko_build() {
	local repo_=$1
	shift
	(cd "$src" &&
		KO_DEFAULTBASEIMAGE=$BASE KO_DOCKER_REPO=$repo_ VERSION=$version \
			ko build --bare --tags "$version" "$@" . >"$work/ko.ref") || return 1
	cat "$work/ko.ref"
}

# start_standin [FLAG...]: the Entra stand-in (go run ./demo -serve, with
# FLAGs such as -token-lifetime 90s) in $standin: ca.pem, serviceprincipal.json,
# env. For a second one, call it as `standin=DIR start_standin ...`.
start_standin() {
	[ -d "$src/demo" ] || {
		echo "no ./demo in the source tree: the Entra stand-in is missing"
		return 1
	}
	local log=$logs/standin-${standin##*/}.log
	[ -x "$bin/entra-standin" ] || (cd "$src" && go build -o "$bin/entra-standin" ./demo) || return 1
	mkdir -p "$standin"
	"$bin/entra-standin" -serve "$standin" "$@" >"$log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 300); do
		[ -e "$standin/ready" ] && break
		sleep 0.1
	done
	[ -e "$standin/ready" ] && [ -s "$standin/ca.pem" ] && [ -s "$standin/serviceprincipal.json" ] || {
		cat "$log"
		return 1
	}
	cat "$standin/env"
}

# check_token FILE: non-empty JWT whose aud is the requested resource, mode
# 0644, owned by 65532:65532.
check_token() {
	local f=$1 payload aud resource
	[ -s "$f" ] || {
		echo "no token file"
		return 1
	}
	stat -c '%A %u:%g %s bytes %n' "$f"
	[ "$(stat -c '%A %u %g' "$f")" = "-rw-r--r-- 65532 65532" ] || {
		echo "want -rw-r--r-- 65532 65532"
		return 1
	}
	payload=$(cut -d. -f2 "$f" | tr '_-' '/+')
	while [ $((${#payload} % 4)) -ne 0 ]; do payload+='='; done
	aud=$(base64 -d <<<"$payload" 2>/dev/null | jq -r .aud) || {
		echo "token is not a JWT"
		return 1
	}
	resource=$(. "$standin/env" && echo "$AZURE_RESOURCE")
	echo "aud=$aud resource=$resource"
	[ "${aud%/}" = "${resource%/}" ]
}
