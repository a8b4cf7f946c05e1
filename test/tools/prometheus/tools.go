//go:build tools

// Package tools pins the promtool that test/env builds.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
