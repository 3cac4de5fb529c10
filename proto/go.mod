module github.com/b24hub/b24hub/proto

go 1.26.4

require google.golang.org/protobuf v1.36.12
