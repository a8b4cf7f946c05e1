// Builds the Secrets Store CSI driver for test/env (build only; tests start it).
// Its CRDs are read from this module's copy in the Go module cache.
module nosana.test/tools/csi-driver

go 1.25.9

require sigs.k8s.io/secrets-store-csi-driver v1.6.0
