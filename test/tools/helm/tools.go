//go:build tools

// Package tools pins the helm CLI that test/env builds.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
