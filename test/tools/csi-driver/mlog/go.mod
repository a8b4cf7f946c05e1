// A stand-in for monis.app/mlog, which the Secrets Store CSI driver imports but
// which is not reachable from the Go module proxy here. It covers only what the
// driver's command uses, on top of klog.
module monis.app/mlog

go 1.22

require k8s.io/klog/v2 v2.120.1
