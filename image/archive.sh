# shellcheck shell=bash
# Writes docker-archive tarballs (what `docker save` writes: manifest.json, a config and one tar per
# layer, named by their sha256) without Docker. `docker load`, `ctr images import` and
# `kind load image-archive` accept them. Sourced by image/build.sh and test/env.

# layer_tar DIR OUT: a reproducible layer of DIR's contents (sorted, time 0, owned by root) or,
# with OWNER=uid:gid set, owned by that user; with APPEND=1 it is added to OUT.
layer_tar() {
	local owner=${OWNER:-0:0}
	tar --sort=name --mtime=@0 --owner="${owner%%:*}" --group="${owner##*:}" --numeric-owner --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		${EXCLUDE:+--exclude="$EXCLUDE"} -C "$1" "$([[ -n ${APPEND:-} ]] && echo -r || echo -c)f" "$2" "${3:-.}"
}

# write_archive OUT REPO:TAG CONFIG_JSON LAYER_TAR...: the archive of an amd64 Linux image whose
# runtime config (User, Env, Entrypoint, Cmd, WorkingDir, ExposedPorts, Labels) is CONFIG_JSON.
# Prints the image id (sha256 of the config).
write_archive() {
	local out=$1 tag=$2 config=$3 dir layer h
	shift 3
	dir=$(mktemp -d "${TMPDIR:-/tmp}/archive.XXXXXX")
	local diff_ids=() files=()
	for layer in "$@"; do
		h=$(sha256sum "$layer" | cut -d' ' -f1)
		cp "$layer" "$dir/$h.tar"
		diff_ids+=("sha256:$h")
		files+=("$h.tar")
	done
	config=$(CONFIG=$config DIFF_IDS="${diff_ids[*]}" node -e '
		const epoch = "1970-01-01T00:00:00Z";
		const diffIds = process.env.DIFF_IDS.split(" ");
		process.stdout.write(JSON.stringify({
			architecture: "amd64", os: "linux", created: epoch,
			config: JSON.parse(process.env.CONFIG),
			rootfs: { type: "layers", diff_ids: diffIds },
			history: diffIds.map(() => ({ created: epoch, created_by: "image/archive.sh" })),
		}));')
	h=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	printf '%s' "$config" >"$dir/$h.json"
	TAG=$tag CONFIG_FILE=$h.json LAYERS="${files[*]}" node -e '
		process.stdout.write(JSON.stringify([{ Config: process.env.CONFIG_FILE, RepoTags: [process.env.TAG],
			Layers: process.env.LAYERS.split(" ") }]));' >"$dir/manifest.json"
	mkdir -p "$(dirname "$out")"
	# Member names without "./", manifest.json first, as `docker save` writes them.
	tar --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$out.tmp" manifest.json "$h.json" "${files[@]}"
	mv -f "$out.tmp" "$out"
	rm -rf "$dir"
	echo "sha256:$h"
}
