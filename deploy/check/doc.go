// Package check proves the deployment files of deploy/ against the Kubernetes
// API types, the Compose specification and the real scriptgen binary, built
// by the Dockerfile's own `go build` line. It is a module of its own so that
// scriptgen's module does not depend on k8s.io/api or compose-go; .ci/deploy-check
// runs its tests. Kubernetes' own schema tools (kubeconform) fetch schemas
// from the network, which CI does not have: decoding every manifest strictly
// into the typed objects of k8s.io/api is the same check, and the
// cross-checks below go further (probe paths that answer, settings the
// binary reads, ports and selectors that meet).
package check
