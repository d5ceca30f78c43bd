// Package onnxpb holds the protobuf messages of the ONNX model format that
// package onnx writes and reads: the subset of ONNX's onnx.proto listed in
// onnx.proto here, compiled by protoc-gen-go. It replaces a dependency on a
// whole ONNX implementation (and its module tree) for a handful of message
// types.
//
// To regenerate onnx.pb.go after editing onnx.proto, with protoc (Debian
// protobuf-compiler, or PyPI grpcio-tools) and protoc-gen-go at the version
// of google.golang.org/protobuf in go.mod on PATH:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.34.1
//	go generate ./predictor/onnx/internal/onnxpb/
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
