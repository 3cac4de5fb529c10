// Package proto holds b24hub's protobuf contracts (the .proto files under
// b24hub/) and the Go code generated from them (gen/go). The generated code is
// committed so that no consumer needs buf; drift_test.go fails when it no
// longer matches the .proto files. Regenerate with `go tool task proto`.
package proto
