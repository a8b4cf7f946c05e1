//go:build tools

// Package tools pins the Secrets Store CSI driver that test/env builds.
package tools

import _ "sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver"
