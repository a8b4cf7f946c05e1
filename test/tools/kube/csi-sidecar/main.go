// Command csi-sidecar stands in for the two sidecars of the Secrets Store CSI driver's DaemonSet
// that the Go module proxy here does not serve (kubernetes-csi/node-driver-registrar and
// livenessprobe). It takes their flags, so the driver's Helm chart runs it unchanged:
//
//	--kubelet-registration-path=P: registrar. Asks the driver (--csi-address) its name, serves the
//	  kubelet's plugin-registration API on /registration/<name>-reg.sock, and exits when the
//	  kubelet reports a failed registration (the kubelet does not retry; the restart does).
//	--http-endpoint=ADDR: liveness probe. GET /healthz calls the driver's Probe.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the driver's CSI socket, as this container sees it")
	registrationPath := flag.String("kubelet-registration-path", "", "the driver's CSI socket, as the kubelet sees it (registrar mode)")
	registrationDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugins_registry directory")
	httpEndpoint := flag.String("http-endpoint", "", "address of /healthz (liveness-probe mode)")
	probeTimeout := flag.Duration("probe-timeout", 3*time.Second, "timeout of one Probe call")
	flag.Int("v", 0, "log verbosity (accepted for compatibility)")
	flag.Parse()

	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("csi-address %s: %v", *csiAddress, err)
	}
	identity := csi.NewIdentityClient(conn)
	switch {
	case *registrationPath != "":
		register(identity, *registrationPath, *registrationDir)
	case *httpEndpoint != "":
		probe(identity, *httpEndpoint, *probeTimeout)
	default:
		log.Fatal("give --kubelet-registration-path (registrar) or --http-endpoint (liveness probe)")
	}
}

// registrar implements the kubelet's plugin-registration service for one CSI driver.
type registrar struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.name, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Fatalf("the kubelet refused the registration of %s: %s", r.name, s.Error)
	}
	log.Printf("registered %s with the kubelet", r.name)
	return &registerapi.RegistrationStatusResponse{}, nil
}

func register(identity csi.IdentityClient, endpoint, dir string) {
	var name string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := identity.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			name = info.GetName()
			break
		}
		log.Printf("waiting for the driver: %v", err)
		time.Sleep(time.Second)
	}
	socket := filepath.Join(dir, name+"-reg.sock")
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		log.Fatal(err)
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatalf("listen %s: %v", socket, err)
	}
	server := grpc.NewServer()
	registerapi.RegisterRegistrationServer(server, &registrar{name: name, endpoint: endpoint})
	log.Printf("serving the registration of %s (endpoint %s) on %s", name, endpoint, socket)
	log.Fatal(server.Serve(lis))
}

func probe(identity csi.IdentityClient, addr string, timeout time.Duration) {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res, err := identity.Probe(ctx, &csi.ProbeRequest{})
		if err != nil || (res.GetReady() != nil && !res.GetReady().GetValue()) {
			http.Error(w, fmt.Sprintf("driver not ready: %v", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	server := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(server.ListenAndServe())
}
