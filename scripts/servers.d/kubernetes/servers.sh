# Kubernetes control plane for scripts/servers (sourced by it; not run on its own).
#
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, all on
# 127.0.0.1, state under $STATE/kubernetes/. Nothing here is a Debian package, so the
# binaries are built once per machine and version from the Go module proxy (the wrapper
# modules beside this file pin every version; their go.sum files are the checksums) into
# $CACHE/kubernetes-<version>/bin/. kwok plays the kubelet: it makes the nodes listed in
# $STATE/kubernetes/nodes.yaml Ready and marks every pod bound to them Running and Ready
# without starting a container. Docs: docs/servers.md.

K8S_VERSION="v1.34.4"   # must match k8s.io/kubernetes in go.mod (the cache dir is keyed on it)
KWOK_VERSION="v0.7.0"   # must match kwok/go.mod
ETCD_VERSION="v3.6.4"   # must match go.etcd.io/etcd/server/v3 in go.mod
APISERVER_PORT="${EVENTING_KUBE_APISERVER_PORT:-16443}"
ETCD_PORT="${EVENTING_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${EVENTING_ETCD_PEER_PORT:-12380}"
KCM_PORT="${EVENTING_KUBE_CONTROLLER_MANAGER_PORT:-20257}"
SCHEDULER_PORT="${EVENTING_KUBE_SCHEDULER_PORT:-20259}"
KWOK_NODES="${EVENTING_KWOK_NODES:-3}"
KWOK_NODE_PODS="${EVENTING_KWOK_NODE_PODS:-1000}"
K8S_BUILD_TIMEOUT="${EVENTING_KUBERNETES_BUILD_TIMEOUT:-5400}"
K8S_MODULE="$TEMPLATES/kubernetes"
# Static binaries (no C toolchain needed), stripped, without local paths.
K8S_BUILD_ENV=(CGO_ENABLED=0 GOFLAGS=-mod=readonly GOENV=off GOWORK=off)
K8S_BUILD_FLAGS=(-trimpath "-ldflags=-s -w")
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)
# The controllers the tests and the eventing data plane rely on: Deployments and
# StatefulSets with their ReplicaSets and Pods, cascading deletes, namespaces, the
# per-namespace `default` ServiceAccount and root CA ConfigMap (pods need both), Service
# endpoints and PodDisruptionBudget status; Jobs (one per event for job workloads) and
# their clean-up after ttlSecondsAfterFinished.
K8S_CONTROLLERS="deployment-controller,replicaset-controller,statefulset-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,endpointslice-controller,disruption-controller,job-controller,ttl-after-finished-controller"
# kwok's pod stages (they replace its built-in ones): a Job's pod runs for the duration
# in its annotation kwok.eventing.local/run-for, then succeeds, or fails with the exit
# code in kwok.eventing.local/exit-code (see the file). Not part of the build stamp: a
# change restarts kwok, it rebuilds nothing.
K8S_KWOK_STAGES="$K8S_MODULE/kwok-stages.yaml"
# Start order; `down` stops them in reverse.
K8S_PROCESSES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# --- build --------------------------------------------------------------------------

go_bin() {  # a Go toolchain new enough for the wrapper modules (go >= 1.21 fetches 1.24)
    local candidate
    for candidate in "${EVENTING_GO:-}" "$(command -v go || true)" /usr/local/go/bin/go; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        "$candidate" version 2>/dev/null | grep -Eq 'go1\.(2[1-9]|[3-9][0-9])' || continue
        echo "$candidate"; return 0
    done
    die "kubernetes needs Go >= 1.21 to build its control plane (set EVENTING_GO, or install Go from https://go.dev/dl into /usr/local/go)"
}

k8s_bins() {  # build (once per machine and pinned versions) the binaries; prints the bin dir
    local dir="$CACHE/kubernetes-$K8S_VERSION" stamp go
    go="$(go_bin)"
    # The stamp covers everything that decides the binaries: pins, checksums, toolchain,
    # build settings.
    stamp="$(cat "$K8S_MODULE/go.mod" "$K8S_MODULE/go.sum" "$K8S_MODULE/etcd/main.go" \
        "$K8S_MODULE/kwok/go.mod" "$K8S_MODULE/kwok/go.sum" | cksum) $("$go" version)"
    stamp+=" ${K8S_BUILD_ENV[*]} ${K8S_BUILD_FLAGS[*]}"
    if [[ "$(cat "$dir/.complete" 2>/dev/null)" == "$stamp" ]]; then echo "$dir/bin"; return 0; fi
    mkdir -p "$dir"
    (
        flock 9  # two `up`s at once build once
        if [[ "$(cat "$dir/.complete" 2>/dev/null)" != "$stamp" ]]; then
            say "building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION and kwok $KWOK_VERSION from the Go module proxy into $dir (cold: ~17 CPU-minutes, 10-30 min; log: $dir/build.log)"
            rm -rf "$dir/bin.new"
            local started=$SECONDS
            # Module cache and build cache beside the binaries, so a changed pin
            # rebuilds only what changed.
            if ! (
                export GOMODCACHE="$dir/gomod" GOCACHE="$dir/gocache" "${K8S_BUILD_ENV[@]}"
                cd "$K8S_MODULE" &&
                    timeout "$K8S_BUILD_TIMEOUT" "$go" build "${K8S_BUILD_FLAGS[@]}" \
                        -o "$dir/bin.new/" k8s.io/kubernetes/cmd/kube-apiserver \
                        k8s.io/kubernetes/cmd/kube-controller-manager \
                        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
                        ./etcd &&
                    cd kwok &&
                    timeout "$K8S_BUILD_TIMEOUT" "$go" build "${K8S_BUILD_FLAGS[@]}" \
                        -o "$dir/bin.new/" sigs.k8s.io/kwok/cmd/kwok
            ) >"$dir/build.log" 2>&1; then
                tail -n 30 "$dir/build.log" >&2
                die "building the Kubernetes control plane failed (full log: $dir/build.log)"
            fi
            rm -rf "$dir/bin"
            mv "$dir/bin.new" "$dir/bin"
            echo "$stamp" >"$dir/.complete"
            say "built the control plane in $((SECONDS - started)) s"
        fi
    ) 9>"$dir/.lock"
    echo "$dir/bin"
}

# --- certificates and kubeconfigs ---------------------------------------------------

k8s_cert() {  # k8s_cert PKI NAME SUBJECT EXTENSIONS: a P-256 key and a cert signed by our CA
    local pki="$1" name="$2" subject="$3" extensions="$4"
    [[ -s "$pki/$name.crt" && -s "$pki/$name.key" ]] && return 0
    printf '%s\n' "$extensions" >"$pki/$name.ext"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$pki/$name.ext" \
        -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$pki/$name.ext"
    chmod 600 "$pki/$name.key"
}

k8s_pki() {  # the cluster CA, serving cert, client certs and service-account key (once)
    local pki="$STATE/kubernetes/pki"
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$pki"
    chmod 700 "$pki"
    if [[ ! -s "$pki/ca.crt" || ! -s "$pki/ca.key" ]]; then
        printf '%s\n' "basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign" \
            "subjectKeyIdentifier=hash" >"$pki/ca.ext"
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout "$pki/ca.key" -subj "/CN=eventing-test-cluster-ca" -out "$pki/ca.csr" 2>/dev/null
        openssl x509 -req -in "$pki/ca.csr" -signkey "$pki/ca.key" -days 3650 \
            -extfile "$pki/ca.ext" -out "$pki/ca.crt" 2>/dev/null
        rm -f "$pki/ca.csr" "$pki/ca.ext"
        chmod 600 "$pki/ca.key"
    fi
    # One serving certificate for the three HTTPS endpoints (all on 127.0.0.1), with the
    # in-cluster names of the `kubernetes` Service as well.
    k8s_cert "$pki" serving "/CN=eventing-test-control-plane" "$(printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
    local client="$(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth")"
    # The identities the bootstrap RBAC policy already knows, and an admin.
    k8s_cert "$pki" admin "/O=system:masters/CN=eventing-admin" "$client"
    k8s_cert "$pki" apiserver-client "/O=system:masters/CN=kube-apiserver" "$client"
    k8s_cert "$pki" controller-manager "/CN=system:kube-controller-manager" "$client"
    k8s_cert "$pki" scheduler "/CN=system:kube-scheduler" "$client"
    # kwok writes node and pod status for every fake node, which no bootstrap role of
    # a single kubelet covers: it runs as an admin of this test cluster.
    k8s_cert "$pki" kwok "/O=system:masters/CN=kwok" "$client"
    # The aggregation layer's identity; its CA also lets the controller manager and the
    # scheduler read a complete extension-apiserver-authentication ConfigMap.
    k8s_cert "$pki" front-proxy-client "/CN=front-proxy-client" "$client"
    if [[ ! -s "$pki/sa.key" ]]; then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key" 2>/dev/null
        openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
        chmod 600 "$pki/sa.key"
    fi
}

k8s_kubeconfig() {  # k8s_kubeconfig NAME: a kubeconfig for the client cert NAME
    local dir="$STATE/kubernetes" name="$1"
    cat >"$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: eventing-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $dir/pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $dir/pki/$name.crt
    client-key: $dir/pki/$name.key
contexts:
- name: eventing-test
  context:
    cluster: eventing-test
    user: $name
    namespace: default
current-context: eventing-test
EOF
    chmod 600 "$dir/$name.kubeconfig"
}

k8s_nodes_yaml() {  # the fake nodes kwok manages (no taint: any pod may land on them)
    local i
    for ((i = 0; i < KWOK_NODES; i++)); do
        cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "$KWOK_NODE_PODS"}
  capacity: {cpu: "64", memory: 256Gi, pods: "$KWOK_NODE_PODS"}
EOF
    done
}

# --- processes ----------------------------------------------------------------------

k8s_start() {  # k8s_start NAME CMD...: spawn NAME unless its pid file names a live process
    local dir="$STATE/kubernetes" name="$1"; shift
    pid_alive "$dir/$name.pid" && return 0
    say "starting $name"
    spawn "$dir/$name.pid" "$dir/$name.log" env EVENTING_SERVERS_STATE="$STATE" "$@"
}

k8s_wait() {  # k8s_wait NAME DESCRIPTION CMD...: run CMD until it succeeds, bounded
    local dir="$STATE/kubernetes" name="$1" what="$2"; shift 2
    local deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [[ "$name" != - ]] && ! pid_alive "$dir/$name.pid"; then
            say "$name exited during start-up; last lines of $dir/$name.log:"
            tail -n 40 "$dir/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.3
    done
    say "$what not within ${TIMEOUT}s; last lines of $dir/${name/#-/kube-apiserver}.log:"
    tail -n 40 "$dir/${name/#-/kube-apiserver}.log" >&2 || true
    exit 1
}

k8s_ready() {  # the whole cluster answers: API ready, nodes Ready, default SA exists
    local dir="$STATE/kubernetes" bin="$1"
    probe https "https://127.0.0.1:$APISERVER_PORT/readyz" "$dir/pki/ca.crt" \
        "$dir/pki/admin.crt" "$dir/pki/admin.key" || return 1
    "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" --request-timeout=5s \
        get serviceaccount default -n default >/dev/null 2>&1 || return 1
    local ready
    ready="$("$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" --request-timeout=5s \
        get nodes -l type=kwok -o \
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
        2>/dev/null | grep -c '^True$')" || return 1
    ((ready >= KWOK_NODES))
}

up_kubernetes() {
    local dir="$STATE/kubernetes" config
    config="$(k8s_config_stamp)"
    if [[ "$(cat "$dir/config.stamp" 2>/dev/null)" != "$config" ]] &&
        { pid_alive "$dir/kube-controller-manager.pid" || pid_alive "$dir/kwok.pid"; }; then
        # Started with an older configuration (controllers, kwok stages): restart the
        # two processes it concerns; etcd, the API server and every object stay.
        say "kubernetes configuration changed: restarting kube-controller-manager and kwok"
        stop_pidfile "$dir/kwok.pid" kwok
        stop_pidfile "$dir/kube-controller-manager.pid" kube-controller-manager
    fi
    local all_alive=1 name
    for name in "${K8S_PROCESSES[@]}"; do pid_alive "$dir/$name.pid" || all_alive=0; done
    local bin="$CACHE/kubernetes-$K8S_VERSION/bin"
    if ((all_alive)) && [[ -x "$bin/kubectl" ]] && k8s_ready "$bin"; then
        say "kubernetes already running (https://127.0.0.1:$APISERVER_PORT, KUBECONFIG=$dir/admin.kubeconfig)"
        return 0
    fi
    bin="$(k8s_bins)"
    mkdir -p "$dir/etcd" "$dir/kwok-home"
    chmod 700 "$dir/etcd"
    # kubectl and friends beside the kubeconfig, for tests and for `eval $(... env)` users.
    ln -sfn "$bin" "$dir/bin"
    k8s_pki
    local who
    for who in admin controller-manager scheduler kwok; do k8s_kubeconfig "$who"; done
    local pki="$dir/pki"

    k8s_start etcd "$bin/etcd" --name eventing --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "eventing=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
    k8s_wait etcd "etcd did not answer /health" \
        probe http "http://127.0.0.1:$ETCD_PORT/health" "" ""

    # TaintNodesByCondition taints every new node not-ready until the node lifecycle
    # controller clears it; that controller also evicts pods when a heartbeat is late,
    # which a loaded test machine can cause. Neither runs here: kwok keeps nodes Ready.
    k8s_start kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
        --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
        --client-ca-file "$pki/ca.crt" \
        --kubelet-client-certificate "$pki/apiserver-client.crt" \
        --kubelet-client-key "$pki/apiserver-client.key" \
        --authorization-mode RBAC \
        --disable-admission-plugins TaintNodesByCondition \
        --requestheader-client-ca-file "$pki/ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User \
        --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$pki/front-proxy-client.crt" \
        --proxy-client-key-file "$pki/front-proxy-client.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range 10.96.0.0/16 \
        --cert-dir "$dir/apiserver-certs" --profiling=false --v 1
    k8s_wait kube-apiserver "kube-apiserver was not ready" \
        probe https "https://127.0.0.1:$APISERVER_PORT/readyz" "$pki/ca.crt" \
        "$pki/admin.crt" "$pki/admin.key"

    # Each controller (K8S_CONTROLLERS) runs with its own ServiceAccount token, as on a
    # real cluster, so the bootstrap RBAC roles are exercised too.
    k8s_start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig "$dir/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
        --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
        --client-ca-file "$pki/ca.crt" --root-ca-file "$pki/ca.crt" \
        --service-account-private-key-file "$pki/sa.key" \
        --use-service-account-credentials --leader-elect=false \
        --controllers "$K8S_CONTROLLERS" \
        --kube-api-qps 200 --kube-api-burst 400 --concurrent-replicaset-syncs 10 \
        --concurrent-deployment-syncs 10 --profiling=false --v 1
    k8s_start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig "$dir/scheduler.kubeconfig" \
        --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
        --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
        --tls-cert-file "$pki/serving.crt" --tls-private-key-file "$pki/serving.key" \
        --client-ca-file "$pki/ca.crt" --leader-elect=false \
        --kube-api-qps 200 --kube-api-burst 400 --profiling=false --v 1
    # HOME points kwok at an empty config dir, so a user's ~/.kwok never applies.
    k8s_start kwok env HOME="$dir/kwok-home" "$bin/kwok" \
        --kubeconfig "$dir/kwok.kubeconfig" \
        --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --cidr 10.64.0.0/12 --node-ip 10.63.0.1 --node-lease-duration-seconds 40 \
        --config "$K8S_KWOK_STAGES" \
        -v WARN  # INFO logs every pod and node patch: megabytes per test run
    k8s_wait kube-controller-manager "kube-controller-manager was not healthy" \
        probe https "https://127.0.0.1:$KCM_PORT/healthz" "$pki/ca.crt"
    k8s_wait kube-scheduler "kube-scheduler was not healthy" \
        probe https "https://127.0.0.1:$SCHEDULER_PORT/healthz" "$pki/ca.crt"

    k8s_nodes_yaml >"$dir/nodes.yaml"
    k8s_wait - "the fake nodes could not be created" \
        "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" --request-timeout=10s \
        apply --server-side --force-conflicts -f "$dir/nodes.yaml"
    k8s_wait kwok "the fake nodes did not become Ready (or no default ServiceAccount)" \
        k8s_ready "$bin"
    echo "$config" >"$dir/config.stamp"
    say "kubernetes $K8S_VERSION ready: https://127.0.0.1:$APISERVER_PORT, $KWOK_NODES kwok nodes, KUBECONFIG=$dir/admin.kubeconfig"
}

k8s_config_stamp() {  # what the processes start with beyond the binaries (not the build)
    printf '%s\n' "$K8S_CONTROLLERS"
    cksum <"$K8S_KWOK_STAGES"
}

down_kubernetes() {
    local i name
    for ((i = ${#K8S_PROCESSES[@]} - 1; i >= 0; i--)); do
        name="${K8S_PROCESSES[$i]}"
        stop_pidfile "$STATE/kubernetes/$name.pid" "$name"
    done
}

status_kubernetes() {
    local dir="$STATE/kubernetes" name state running=0
    for name in "${K8S_PROCESSES[@]}"; do pid_alive "$dir/$name.pid" && running=$((running + 1)); done
    if ((running == ${#K8S_PROCESSES[@]})); then
        state="running (pid $(cat "$dir/kube-apiserver.pid"))"
    elif ((running)); then
        state="partly ($running/${#K8S_PROCESSES[@]} up)"
    else
        state="stopped"
    fi
    printf '%-10s %-24s https://127.0.0.1:%s  (Kubernetes %s, etcd %s, kwok %s x%s nodes)\n' \
        kubernetes "$state" "$APISERVER_PORT" "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" "$KWOK_NODES"
}

logs_kubernetes() {
    local name
    for name in "${K8S_PROCESSES[@]}"; do
        echo "==> $STATE/kubernetes/$name.log <=="
        tail -n 20 "$STATE/kubernetes/$name.log" 2>/dev/null || true
    done
}
