//go:build tools

// Package tools pins the FerretDB server that test/env builds.
package tools

import _ "github.com/FerretDB/FerretDB/cmd/ferretdb"
