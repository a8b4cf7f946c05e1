// Package mlog is a minimal stand-in for monis.app/mlog (see go.mod): the
// functions the Secrets Store CSI driver calls, logging through klog.
package mlog

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

// LogFormat is the output format of the logs.
type LogFormat string

const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns a function that flushes the logs.
func Setup() func() { return klog.Flush }

// ValidateAndSetKlogLevelAndFormatGlobally checks the level and format. klog keeps
// its own level (-v); the JSON format is not implemented and falls back to text.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid log level %d", level)
	}
	switch format {
	case FormatText, FormatJSON, "":
		return nil
	default:
		return fmt.Errorf("invalid log format %q", format)
	}
}

// Error logs an error with structured key/value pairs.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorSDepth(1, err, msg, keysAndValues...)
}

// Fatal logs an error and exits with status 1.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorSDepth(1, err, "fatal error", keysAndValues...)
	klog.Flush()
	os.Exit(1)
}
