// Command providerbench calls a Secrets Store CSI provider the way the driver does: through the driver's own
// provider client (pkg/secrets-store, v1.6: its dial options and service config), over the provider's unix socket.
// bench/injector runs it. It reads the calls to make as JSON on stdin ({"name": MountRequest fields, ...}; the name
// "Version" makes a Version call), makes each one -requests times in sequence, and prints p50 and p99 in
// milliseconds as JSON. It calls Mount without writing the files, which is the driver's work, not the provider's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
)

type mountCall struct {
	Attributes string `json:"attributes"`
	Secrets    string `json:"secrets"`
	TargetPath string `json:"target_path"`
	Permission string `json:"permission"`
	Files      int    `json:"files"`
}

type figures struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

func main() {
	providerDir := flag.String("provider-dir", "", "directory holding <provider>.sock")
	provider := flag.String("provider", "nosana", "provider name (the socket's base name)")
	requests := flag.Int("requests", 1000, "sequential calls per measurement")
	flag.Parse()
	if *providerDir == "" {
		fail(fmt.Errorf("-provider-dir is required"))
	}
	var calls map[string]mountCall
	if err := json.NewDecoder(os.Stdin).Decode(&calls); err != nil {
		fail(fmt.Errorf("reading the calls from stdin: %w", err))
	}

	ctx := context.Background()
	builder := secretsstore.NewPluginClientBuilder([]string{*providerDir})
	defer builder.Cleanup()
	client, err := builder.Get(ctx, *provider)
	if err != nil {
		fail(err)
	}

	results := map[string]figures{}
	for name, call := range calls {
		do := func() error {
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if name == "Version" {
				_, err := client.Version(callCtx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
				return err
			}
			resp, err := client.Mount(callCtx, &v1alpha1.MountRequest{
				Attributes: call.Attributes, Secrets: call.Secrets, TargetPath: call.TargetPath, Permission: call.Permission,
			})
			if err != nil {
				return err
			}
			if code := resp.GetError().GetCode(); code != "" {
				return fmt.Errorf("mount failed: %s", code)
			}
			if len(resp.GetFiles()) != call.Files {
				return fmt.Errorf("mount returned %d files, want %d", len(resp.GetFiles()), call.Files)
			}
			return nil
		}
		for i := 0; i < 100; i++ { // warm up: connection, token and class caches
			if err := do(); err != nil {
				fail(fmt.Errorf("%s: %w", name, err))
			}
		}
		latencies := make([]float64, 0, *requests)
		for i := 0; i < *requests; i++ {
			start := time.Now()
			if err := do(); err != nil {
				fail(fmt.Errorf("%s: %w", name, err))
			}
			latencies = append(latencies, float64(time.Since(start).Microseconds())/1000)
		}
		sort.Float64s(latencies)
		results[name] = figures{P50: percentile(latencies, 50), P99: percentile(latencies, 99)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fail(err)
	}
}

func percentile(sorted []float64, p float64) float64 {
	i := int(p / 100 * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "providerbench:", err)
	os.Exit(1)
}
