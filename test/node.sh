# shellcheck shell=bash
# The `node` component of test/env (sourced by it): a single Kubernetes node that runs pods, on the
# control plane of the same state dir. See test/ENV.md, "The node".
#
# It is never started on the shared default state dir: pods there must stay Pending (tests rely on
# it), so the node always gets a control plane of its own (its own NS_TEST_STATE and ports).
#
# What runs (all host processes; pods are real containers):
#   containerd + runc + CNI bridge/host-local/portmap (Debian packages), its own root, state and socket
#   kubelet, kube-scheduler, kube-proxy (iptables mode) from test/tools/kube
#   CoreDNS (test/tools/coredns) on the bridge address, port 53: cluster DNS for cluster.local
#   a hostPath PersistentVolume (no class) so a claim without a storage class binds
# The pod network is a bridge of its own (NS_TEST_NODE_BRIDGE, default nstest0) with
# NS_TEST_POD_CIDR (default 10.244.0.0/24); the bridge's first address is the node's address for pods
# (the apiserver advertises it, CoreDNS listens on it). Chain NSTEST-EGRESS drops whatever pods send
# to anything but the pod CIDR, the service CIDR and the host. `down node` removes every mount,
# cgroup, netns, iptables chain, link, directory and sysctl change the node made.

NODE_STATE=$STATE/node
POD_CIDR=${NS_TEST_POD_CIDR:-10.244.0.0/24}
SERVICE_CIDR=10.0.0.0/24
NODE_BRIDGE=${NS_TEST_NODE_BRIDGE:-nstest0}
NODE_NAME=localhost
KUBELET_PORT=${NS_TEST_KUBELET_PORT:-50250}
KUBELET_HEALTHZ_PORT=${NS_TEST_KUBELET_HEALTHZ_PORT:-50248}
SCHED_PORT=${NS_TEST_SCHED_PORT:-50259}
PROXY_METRICS_PORT=${NS_TEST_PROXY_METRICS_PORT:-50249}
PROXY_HEALTHZ_PORT=${NS_TEST_PROXY_HEALTHZ_PORT:-50256}
COREDNS_HEALTH_PORT=${NS_TEST_COREDNS_HEALTH_PORT:-50181}
CONTAINERD_SOCK=$NODE_STATE/containerd/containerd.sock
PAUSE_IMAGE=nosana.test/pause:1
CSI_SIDECAR_IMAGE=nosana.test/csi-sidecar:1
CSI_DRIVER_IMAGE=nosana.test/secrets-store-csi-driver:v1.6.0
# Host paths that the kubelet, containerd or CNI create outside their configured roots, and the
# charts' default hostPath of the providers socket: removed on `down` unless they existed before.
NODE_HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /run/netns /var/lib/cni
	/var/run/secrets-store-csi-providers /etc/kubernetes/secrets-store-csi-providers)
# Sysctls the node changes (the kubelet sets the vm/kernel ones itself); restored on `down`.
NODE_SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# node-lifecycle: it lifts the not-ready taint the kubelet registers the node with.
NODE_CONTROLLERS=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,deployment-controller,replicaset-controller,daemonset-controller,statefulset-controller,job-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller,root-ca-certificate-publisher-controller,node-lifecycle-controller,pod-garbage-collector-controller,ttl-after-finished-controller,disruption-controller

# node_mode: this state dir runs a node (the control plane is set up for it).
node_mode() { [[ -n ${NS_TEST_NODE:-} || -f $NODE_STATE/.enabled ]]; }
pod_gateway() { local net=${POD_CIDR%/*}; echo "${net%.*}.$((${net##*.} + 1))"; }
nctr() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
nkubectl() { "$BIN/kubectl-$(kube_version)" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

build_node() {
	local v
	v=$(kube_version)
	go_build kube "$v" "$(kube_ldflags)" kubelet=k8s.io/kubernetes/cmd/kubelet kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
		kube-proxy=k8s.io/kubernetes/cmd/kube-proxy kubectl=k8s.io/kubernetes/cmd/kubectl \
		csi-sidecar=nosana.test/tools/kube/csi-sidecar pause=nosana.test/tools/kube/pause
	go_build coredns "$(gomod_version "$TOOLS/coredns" github.com/coredns/coredns)" "-s -w" coredns=.
	build_csi
}

# node_image NAME:TAG ENTRYPOINT_JSON FILE=PATH_IN_IMAGE...: a one-layer image of static binaries,
# imported into containerd (skipped when containerd has it).
node_image() {
	local tag=$1 entrypoint=$2 dir spec
	shift 2
	nctr images check "name==$tag" 2>/dev/null | grep -q complete && return 0
	dir=$(mktemp -d "$NODE_STATE/.image.XXXXXX")
	mkdir -p "$dir/root/tmp" && chmod 1777 "$dir/root/tmp"
	for spec in "$@"; do
		install -D -m 755 "${spec%%=*}" "$dir/root/${spec#*=}"
	done
	layer_tar "$dir/root" "$dir/layer.tar"
	write_archive "$dir/image.tar" "$tag" "{\"Entrypoint\":$entrypoint,\"Env\":[\"PATH=/usr/local/bin:/usr/bin:/bin\"]}" "$dir/layer.tar" >/dev/null
	nctr images import "$dir/image.tar" >/dev/null || die "containerd: importing $tag failed"
	rm -rf "$dir"
}

node_pki() {
	[[ -f $PKI/node.complete ]] && return 0
	(
		set -e
		cd "$PKI"
		openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj "/O=system:nodes/CN=system:node:$NODE_NAME"
		openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out node.crt -days 3650 -sha256 -extfile client.ext
		# The apiserver's client certificate towards the kubelet (logs, exec): bound to system:kubelet-api-admin.
		openssl req -newkey rsa:2048 -nodes -keyout apiserver-kubelet.key -out apiserver-kubelet.csr -subj "/CN=kube-apiserver-kubelet-client"
		openssl x509 -req -in apiserver-kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver-kubelet.crt -days 3650 -sha256 -extfile client.ext
		openssl req -newkey rsa:2048 -nodes -keyout kubelet-serving.key -out kubelet-serving.csr -subj "/CN=$NODE_NAME"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >kubelet-serving.ext
		openssl x509 -req -in kubelet-serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-serving.crt -days 3650 -sha256 -extfile kubelet-serving.ext
		rm -f ./*.csr
		touch node.complete
	) >"$LOGS/pki-node.log" 2>&1 || die_log "$LOGS/pki-node.log" "node: certificates failed"
}

# host_snapshot: what the node may change on the host, one line per item (for `down` and its test).
host_snapshot() {
	echo "# mounts"
	awk '{ print "mount " $5 }' /proc/self/mountinfo | sort -u
	echo "# cgroups"
	{ find /sys/fs/cgroup -maxdepth 3 -type d -name 'kubepods*' 2>/dev/null || true; } | sed 's/^/cgroup /' | sort
	echo "# iptables chains"
	local t
	for t in filter nat mangle raw; do
		iptables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" { print "chain " t " " $2 }'
		ip6tables -t "$t" -S 2>/dev/null | awk -v t="$t" '$1 == "-N" { print "chain6 " t " " $2 }'
	done | sort
	echo "# links"
	ip -o link show | awk -F': ' '{ print "link " $2 }' | sed 's/@.*//' | sort
	echo "# netns"
	{ ls /run/netns 2>/dev/null || true; } | sed 's/^/netns /' | sort
	echo "# paths"
	local p
	for p in "${NODE_HOST_PATHS[@]}"; do if [[ -e $p ]]; then echo "path $p"; fi; done
	echo "# sysctls"
	for p in "${NODE_SYSCTLS[@]}"; do echo "sysctl $p=$(sysctl -n "$p" 2>/dev/null)"; done
}

node_refuse_shared() {
	[[ $STATE != /tmp/nosana-secrets-test ]] ||
		die "the node runs pods; the shared state dir's tests expect Pending pods. Use its own control plane: NS_TEST_STATE=/tmp/nosana-secrets-node NS_TEST_KUBE_PORT=... (see test/ENV.md)"
}

node_network() {
	local gw
	gw=$(pod_gateway)
	if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		ip link add "$NODE_BRIDGE" type bridge
		ip addr add "$gw/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
		ip link set "$NODE_BRIDGE" up
	fi
	modprobe br_netfilter 2>/dev/null || true
	sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
	# Pods may reach the pod network, services (DNAT'ed to pods or the host before FORWARD) and the
	# host; everything else they send is dropped. The chain is first in FORWARD.
	if ! iptables -S NSTEST-EGRESS >/dev/null 2>&1; then
		iptables -N NSTEST-EGRESS
		iptables -A NSTEST-EGRESS -d "$POD_CIDR" -j RETURN
		iptables -A NSTEST-EGRESS -d "$SERVICE_CIDR" -j RETURN
		iptables -A NSTEST-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
		iptables -A NSTEST-EGRESS -j DROP
	fi
	iptables -C FORWARD -i "$NODE_BRIDGE" -j NSTEST-EGRESS 2>/dev/null || iptables -I FORWARD 1 -i "$NODE_BRIDGE" -j NSTEST-EGRESS
	# The control plane listens on 0.0.0.0 in node mode (pods reach it at the bridge address): only
	# loopback and the pod bridge may connect to its ports.
	# (Its socket is dual-stack, hence ip6tables too.)
	local ipt
	for ipt in iptables ip6tables; do
		if ! $ipt -S NSTEST-INPUT >/dev/null 2>&1; then
			$ipt -N NSTEST-INPUT
			$ipt -A NSTEST-INPUT -i lo -j RETURN
			$ipt -A NSTEST-INPUT -i "$NODE_BRIDGE" -j RETURN
			$ipt -A NSTEST-INPUT -p tcp -m multiport --dports "$KUBE_PORT,$KUBELET_PORT" -j DROP
		fi
		$ipt -C INPUT -j NSTEST-INPUT 2>/dev/null || $ipt -I INPUT 1 -j NSTEST-INPUT
	done
	mkdir -p "$NODE_STATE/cni/net.d" "$NODE_STATE/cni/ipam"
	cat >"$NODE_STATE/cni/net.d/10-nstest.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "nstest", "plugins": [
  {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$gw"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_STATE/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
}

start_containerd() {
	local pidfile=$RUN/containerd.pid log=$LOGS/containerd.log pid
	pid=$(read_pid "$pidfile")
	if owned_pid "$pid" && nctr version >/dev/null 2>&1; then
		say "containerd: reusing (pid $pid)"
		return 0
	fi
	mkdir -p "$NODE_STATE/containerd"
	cat >"$NODE_STATE/containerd/config.toml" <<EOF
version = 2
root = "$NODE_STATE/containerd/root"
state = "$NODE_STATE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (test/ENV.md).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_STATE/cni/net.d"
EOF
	spawn containerd "$log" /usr/bin/containerd --config "$NODE_STATE/containerd/config.toml"
	pid=$(read_pid "$pidfile")
	wait_up 30 containerd "$pid" "$log" nctr version
	say "containerd: started (pid $pid, socket $CONTAINERD_SOCK)"
}

node_kubeconfig() { # USER-CERT-PREFIX OUT
	local b64="base64 -w0"
	cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nosana-test
  cluster: {server: "https://127.0.0.1:$KUBE_PORT", certificate-authority-data: $($b64 <"$PKI/ca.crt")}
users:
- name: u
  user: {client-certificate-data: $($b64 <"$PKI/$1.crt"), client-key-data: $($b64 <"$PKI/$1.key")}
contexts:
- name: c
  context: {cluster: nosana-test, user: u}
current-context: c
EOF
	chmod 600 "$2"
}

kubelet_ok() { [[ $(curl -s --max-time 3 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" 2>/dev/null) == ok ]]; }
node_ready() { nkubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; }

start_kubelet() {
	local pidfile=$RUN/kubelet.pid log=$LOGS/kubelet.log pid v
	v=$(kube_version)
	pid=$(read_pid "$pidfile")
	if owned_pid "$pid" && kubelet_ok; then
		say "kubelet: reusing (pid $pid)"
		return 0
	fi
	local k=$NODE_STATE/kubelet
	mkdir -p "$k"
	# Bidirectional mount propagation (the CSI driver's pods dir) needs a shared mount.
	if ! findmnt -n "$k" >/dev/null; then
		mount --bind "$k" "$k"
		mount --make-rshared "$k"
	fi
	node_kubeconfig node "$NODE_STATE/kubelet.kubeconfig"
	echo "nameserver $(pod_gateway)" >"$NODE_STATE/resolv.conf"
	cat >"$NODE_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
oomScoreAdj: 0
failSwapOn: false
clusterDNS: [$(pod_gateway)]
clusterDomain: cluster.local
resolvConf: $NODE_STATE/resolv.conf
podCIDR: $POD_CIDR
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
	spawn kubelet "$log" "$BIN/kubelet-$v" --config="$NODE_STATE/kubelet.yaml" \
		--kubeconfig="$NODE_STATE/kubelet.kubeconfig" --root-dir="$k" --cert-dir="$k/pki" \
		--hostname-override="$NODE_NAME" --v=1
	pid=$(read_pid "$pidfile")
	wait_up 60 "kubelet (/healthz)" "$pid" "$log" kubelet_ok
	wait_up 60 "node $NODE_NAME Ready" "$pid" "$log" node_ready
	say "kubelet $v: node $NODE_NAME Ready (pid $pid, root $k, log $log)"
}

start_simple() { # NAME HEALTH-CHECK-FN COMMAND...
	local name=$1 check=$2 pidfile=$RUN/$1.pid log=$LOGS/$1.log pid
	shift 2
	pid=$(read_pid "$pidfile")
	if owned_pid "$pid" && "$check"; then
		say "$name: reusing (pid $pid)"
		return 0
	fi
	[[ -n $pid ]] && stop_pid "$name" "$pidfile" 10
	spawn "$name" "$log" "$@"
	pid=$(read_pid "$pidfile")
	wait_up 60 "$name" "$pid" "$log" "$check"
	say "$name: running (pid $pid, log $log)"
}
sched_ok() { [[ $(curl -sk --max-time 3 "https://127.0.0.1:$SCHED_PORT/healthz" 2>/dev/null) == ok ]]; }
proxy_ok() { curl -s --max-time 3 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz" 2>/dev/null | grep -q lastUpdated; }
coredns_ok() { [[ $(curl -s --max-time 3 "http://127.0.0.1:$COREDNS_HEALTH_PORT/health" 2>/dev/null) == OK ]]; }

node_cluster_objects() {
	nkubectl apply -f - >/dev/null <<EOF || die "node: applying the node's cluster objects failed"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: nstest-node}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:node:$NODE_NAME"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: nstest-apiserver-kubelet}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:kubelet-api-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: nstest-pv-0}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: "$NODE_STATE/pv/pv-0", type: DirectoryOrCreate}
EOF
	# The pod that claims it runs as non-root; a provisioner (local-path) makes such dirs 0777 too.
	mkdir -p "$NODE_STATE/pv/pv-0" && chmod 0777 "$NODE_STATE/pv/pv-0"
}

up_node() {
	local t0 v
	t0=$(now)
	node_refuse_shared
	node_mode || die "the node needs its control plane set up for it: run 'NS_TEST_NODE=1 test/env up kube node' (see test/ENV.md)"
	v=$(kube_version)
	command -v containerd >/dev/null && command -v iptables >/dev/null && [[ -x /usr/lib/cni/bridge ]] ||
		apt_install containerd runc containernetworking-plugins iptables conntrack
	build_node
	node_pki
	mkdir -p "$NODE_STATE"
	[[ -f $NODE_STATE/host-before.txt ]] || host_snapshot >"$NODE_STATE/host-before.txt"
	node_network
	start_containerd
	node_image "$PAUSE_IMAGE" '["/pause"]' "$BIN/pause-$v=pause"
	node_image "$CSI_SIDECAR_IMAGE" '["/csi-sidecar"]' "$BIN/csi-sidecar-$v=csi-sidecar"
	node_csi_driver_image
	node_busybox_image
	node_kubeconfig admin "$NODE_STATE/admin.kubeconfig"
	node_cluster_objects
	start_simple kube-scheduler sched_ok "$BIN/kube-scheduler-$v" --kubeconfig="$KUBECONFIG_PATH" \
		--authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
		--bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --leader-elect=false --v=1
	start_simple kube-proxy proxy_ok "$BIN/kube-proxy-$v" --kubeconfig="$KUBECONFIG_PATH" \
		--hostname-override="$NODE_NAME" --cluster-cidr="$POD_CIDR" --proxy-mode=iptables \
		--metrics-bind-address="127.0.0.1:$PROXY_METRICS_PORT" --healthz-bind-address="127.0.0.1:$PROXY_HEALTHZ_PORT" \
		--conntrack-max-per-core=0 --iptables-localhost-nodeports=false --v=1
	cat >"$NODE_STATE/Corefile" <<EOF
.:53 {
    bind $(pod_gateway)
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    cache 5
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $KUBECONFIG_PATH
        pods insecure
    }
}
EOF
	start_simple coredns coredns_ok "$BIN/coredns-$(gomod_version "$TOOLS/coredns" github.com/coredns/coredns)" \
		-conf "$NODE_STATE/Corefile" -pidfile ""
	start_kubelet
	say "node: ready in $(elapsed "$t0") (pods on $NODE_BRIDGE $POD_CIDR, DNS $(pod_gateway))"
	set_env node "export NS_TEST_NODE=1
export NS_TEST_NODE_CONTAINERD=$CONTAINERD_SOCK
export NS_TEST_KUBECTL=$BIN/kubectl-$v
export NS_TEST_NODE_STATE=$NODE_STATE
export NS_TEST_POD_CIDR=$POD_CIDR
export NS_TEST_CSI_SIDECAR_IMAGE=$CSI_SIDECAR_IMAGE
export NS_TEST_CSI_DRIVER_IMAGE=$CSI_DRIVER_IMAGE
export NS_TEST_CSI_CHART=$(csi_module_dir)/charts/secrets-store-csi-driver"
}

csi_module_dir() {
	(cd "$TOOLS/csi-driver" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download -json sigs.k8s.io/secrets-store-csi-driver |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# busybox:1.36, the image of the docs' job pod: Debian's static busybox with its applet links.
node_busybox_image() {
	local tag=docker.io/library/busybox:1.36
	nctr images check "name==$tag" 2>/dev/null | grep -q complete && return 0
	local dir applet
	dir=$(mktemp -d "$NODE_STATE/.image.XXXXXX")
	(cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root busybox-static) >/dev/null || die "node: apt-get download busybox-static failed"
	dpkg-deb -x "$dir"/busybox-static_*.deb "$dir/pkg"
	mkdir -p "$dir/root/bin" "$dir/root/tmp" && chmod 1777 "$dir/root/tmp"
	install -m 755 "$dir/pkg/bin/busybox" "$dir/root/bin/busybox"
	for applet in $("$dir/root/bin/busybox" --list); do [[ -e $dir/root/bin/$applet ]] || ln -s busybox "$dir/root/bin/$applet"; done
	# busybox:1.36 has printenv (the docs' job uses it); Debian's build lacks that applet.
	if [[ ! -e $dir/root/bin/printenv ]]; then
		printf '%s\n' '#!/bin/sh' '[ $# -eq 0 ] && exec env' 'for v; do eval "[ -n \"\${$v+x}\" ] && printf \"%s\\n\" \"\$$v\""; done' >"$dir/root/bin/printenv"
		chmod 755 "$dir/root/bin/printenv"
	fi
	layer_tar "$dir/root" "$dir/layer.tar"
	write_archive "$dir/image.tar" "$tag" '{"Cmd":["sh"],"Env":["PATH=/bin"]}' "$dir/layer.tar" >/dev/null
	nctr images import "$dir/image.tar" >/dev/null || die "containerd: importing $tag failed"
	rm -rf "$dir"
}

# The driver's image: its binary plus `mount`/`umount` (mount-utils runs them) from Debian.
node_csi_driver_image() {
	nctr images check "name==$CSI_DRIVER_IMAGE" 2>/dev/null | grep -q complete && return 0
	local dir deb
	dir=$(mktemp -d "$NODE_STATE/.image.XXXXXX")
	mkdir -p "$dir/debs" "$dir/root/tmp"
	chmod 1777 "$dir/root/tmp"
	(cd "$dir/debs" && apt-get download -qq -o APT::Sandbox::User=root mount libmount1 libblkid1 libselinux1 libpcre2-8-0 libc6 libgcc-s1) >/dev/null ||
		die "node: apt-get download of mount and its libraries failed"
	for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
	rm -rf "$dir/root/usr/share/doc" "$dir/root/usr/share/man" "$dir/root/usr/share/locale"
	install -D -m 755 "$BIN/secrets-store-csi-driver-$(csi_version)" "$dir/root/secrets-store-csi-driver"
	layer_tar "$dir/root" "$dir/layer.tar"
	write_archive "$dir/image.tar" "$CSI_DRIVER_IMAGE" '{"Entrypoint":["/secrets-store-csi-driver"],"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}' "$dir/layer.tar" >/dev/null
	nctr images import "$dir/image.tar" >/dev/null || die "containerd: importing $CSI_DRIVER_IMAGE failed"
	rm -rf "$dir"
}

down_node() {
	[[ -d $NODE_STATE ]] || return 0
	local v
	v=$(kube_version)
	# Pods first, while the kubelet can still unmount their volumes; then the processes.
	if kubelet_ok && [[ -x $BIN/kubectl-$v ]]; then
		nkubectl delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
		nkubectl delete daemonsets,deployments,replicasets,statefulsets,jobs --all -A --wait=false >/dev/null 2>&1 || true
		wait_for 60 "pods to go" bash -c "[[ -z \$('$BIN/kubectl-$v' --kubeconfig '$KUBECONFIG_PATH' get pods -A -o name 2>/dev/null) ]]" || true
	fi
	stop_pid kubelet "$RUN/kubelet.pid"
	stop_pid coredns "$RUN/coredns.pid" 10
	stop_pid kube-proxy "$RUN/kube-proxy.pid" 10
	stop_pid kube-scheduler "$RUN/kube-scheduler.pid" 10
	# Whatever containers are left: kill their tasks, remove sandboxes (CNI tears the veths down).
	if [[ -S $CONTAINERD_SOCK ]]; then
		local t
		for t in $(nctr tasks ls -q 2>/dev/null); do nctr tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
		sleep 1
		for t in $(nctr tasks ls -q 2>/dev/null); do nctr tasks delete -f "$t" >/dev/null 2>&1 || true; done
	fi
	stop_pid containerd "$RUN/containerd.pid"
	# Shims outlive containerd: they are ours when their command line names our socket.
	local pid
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
	node_host_cleanup
	rm -f "$RUN/node.env"
}

node_host_cleanup() {
	local before=$NODE_STATE/host-before.txt m
	# Mounts under the state dir (deepest first), and the netns files of pod sandboxes.
	for m in $(awk -v s="$NODE_STATE/" 'index($5, s) == 1 || $5 == substr(s, 1, length(s) - 1) "/kubelet" { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	for m in $(awk '$5 ~ "^/run/netns/cni-" { print $5 }' /proc/self/mountinfo); do umount "$m" 2>/dev/null || true; rm -f "$m"; done
	# kubepods cgroups, in every hierarchy (children first).
	find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} \; 2>/dev/null || true
	# iptables: the node's own chains, and those of kube-proxy, the kubelet and CNI.
	local t chain
	iptables -D FORWARD -i "$NODE_BRIDGE" -j NSTEST-EGRESS 2>/dev/null || true
	iptables -D INPUT -j NSTEST-INPUT 2>/dev/null || true
	ip6tables -D INPUT -j NSTEST-INPUT 2>/dev/null || true
	local ipt
	for ipt in iptables ip6tables; do
		for t in filter nat mangle raw; do
			# Drop every jump into a KUBE-/CNI-/NSTEST- chain from the built-in chains, then the chains.
			$ipt -t "$t" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^(KUBE-|CNI-|NSTEST-)/ && / -j (KUBE-|CNI-|NSTEST-)/' |
				while read -r line; do eval "$ipt -t $t ${line/-A /-D }" 2>/dev/null || true; done
			for chain in $($ipt -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|NSTEST-)/ { print $2 }'); do
				$ipt -t "$t" -F "$chain" 2>/dev/null || true
			done
			for chain in $($ipt -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|NSTEST-)/ { print $2 }'); do
				$ipt -t "$t" -X "$chain" 2>/dev/null || true
			done
		done
	done
	ip link del "$NODE_BRIDGE" 2>/dev/null || true
	for m in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{ print $2 }' | sed 's/@.*//'); do
		grep -qx "link $m" "$before" 2>/dev/null || ip link del "$m" 2>/dev/null || true
	done
	if [[ -f $before ]]; then
		local line p
		while read -r line; do
			case $line in
			"sysctl "*=*) p=${line#sysctl }; [[ -n ${p#*=} ]] && sysctl -qw "$p" 2>/dev/null || true ;;
			esac
		done <"$before"
		for p in "${NODE_HOST_PATHS[@]}"; do
			grep -qx "path $p" "$before" && continue
			# /run/netns becomes a mount point of its own once `ip netns add` (CNI, the network test) has used it.
			while mountpoint -q "$p" 2>/dev/null; do umount "$p" || break; done
			rm -rf "$p"
		done
		mv -f "$before" "$NODE_STATE/host-before.last"
	fi
}
