package onnx

import (
	"fmt"
	"math"
	"os"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// MLP is the default SDTP prediction module, pi = W2·GELU(W1·x + b1) + b2,
// with two outputs per token (keep, drop). Weights are row-major:
// W1 [H][D], W2 [2][H].
type MLP struct {
	D, H   int
	W1, B1 []float32
	W2, B2 []float32
}

// Validate checks the weight shapes.
func (m MLP) Validate() error {
	if m.D <= 0 || m.H <= 0 || len(m.W1) != m.H*m.D || len(m.B1) != m.H || len(m.W2) != 2*m.H || len(m.B2) != 2 {
		return fmt.Errorf("onnx: MLP shapes do not match D=%d H=%d", m.D, m.H)
	}
	return nil
}

// Scores computes keep − drop per token in Go: the reference for what the
// ONNX graph must produce. hidden is [n][D].
func (m MLP) Scores(hidden []float32) []float32 {
	n := len(hidden) / m.D
	out := make([]float32, n)
	h := make([]float64, m.H)
	for t := range n {
		x := hidden[t*m.D : (t+1)*m.D]
		for j := range m.H {
			s := float64(m.B1[j])
			for i, v := range x {
				s += float64(m.W1[j*m.D+i]) * float64(v)
			}
			h[j] = gelu(s)
		}
		var keep, drop float64 = float64(m.B2[0]), float64(m.B2[1])
		for j, v := range h {
			keep += float64(m.W2[j]) * v
			drop += float64(m.W2[m.H+j]) * v
		}
		out[t] = float32(keep - drop)
	}
	return out
}

// WriteFile saves the MLP as an ONNX model (opset 17) with input
// "hidden_states" [N, D] and output "logits" [N, 2]. GELU is the exact
// erf form, x·(1 + erf(x/√2))/2, which every opset has.
func (m MLP) WriteFile(path string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := proto.Marshal(m.model())
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func (m MLP) model() *pb.ModelProto {
	f32 := int32(pb.TensorProto_FLOAT)
	tensor := func(name string, dims []int64, v []float32) *pb.TensorProto {
		return &pb.TensorProto{Name: name, Dims: dims, DataType: f32, FloatData: v}
	}
	scalar := func(name string, v float32) *pb.TensorProto { return tensor(name, nil, []float32{v}) }
	node := func(op string, in []string, out string) *pb.NodeProto {
		return &pb.NodeProto{OpType: op, Input: in, Output: []string{out}, Name: out}
	}
	io := func(name string, dims ...any) *pb.ValueInfoProto {
		var shape []*pb.TensorShapeProto_Dimension
		for _, d := range dims {
			switch d := d.(type) {
			case string:
				shape = append(shape, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
			case int:
				shape = append(shape, &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
			}
		}
		return &pb.ValueInfoProto{Name: name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
			TensorType: &pb.TypeProto_Tensor{ElemType: f32, Shape: &pb.TensorShapeProto{Dim: shape}}}}}
	}
	// Gemm with transB computes x·Wᵀ + b with W stored [out][in].
	gemm := func(in, w, b, out string) *pb.NodeProto {
		n := node("Gemm", []string{in, w, b}, out)
		n.Attribute = []*pb.AttributeProto{{Name: "transB", Type: pb.AttributeProto_INT, I: 1}}
		return n
	}
	g := &pb.GraphProto{
		Name: "sdtp_predictor",
		Initializer: []*pb.TensorProto{
			tensor("fc1.weight", []int64{int64(m.H), int64(m.D)}, m.W1), tensor("fc1.bias", []int64{int64(m.H)}, m.B1),
			tensor("fc2.weight", []int64{2, int64(m.H)}, m.W2), tensor("fc2.bias", []int64{2}, m.B2),
			scalar("sqrt2", 1.4142135623730951), scalar("one", 1), scalar("half", 0.5),
		},
		Node: []*pb.NodeProto{
			gemm("hidden_states", "fc1.weight", "fc1.bias", "h"),
			node("Div", []string{"h", "sqrt2"}, "h_scaled"),
			node("Erf", []string{"h_scaled"}, "h_erf"),
			node("Add", []string{"h_erf", "one"}, "h_erf1"),
			node("Mul", []string{"h", "h_erf1"}, "h_mul"),
			node("Mul", []string{"h_mul", "half"}, "h_gelu"),
			gemm("h_gelu", "fc2.weight", "fc2.bias", "logits"),
		},
		Input:  []*pb.ValueInfoProto{io("hidden_states", "N", m.D)},
		Output: []*pb.ValueInfoProto{io("logits", "N", 2)},
	}
	return &pb.ModelProto{IrVersion: 8, ProducerName: "go-sdtp", Graph: g,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: "", Version: 17}}}
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
