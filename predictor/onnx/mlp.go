package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/go-sdtp/sdtp/predictor"
	pb "github.com/go-sdtp/sdtp/predictor/onnx/internal/onnxpb"
)

// WriteMLP saves m as an ONNX model (opset 17) with input
// "hidden_states" [N, D] — and "context" [N, Context] when m reads
// context features, concatenated after it — and output "logits" [N, 2].
// GELU is the exact erf form, x·(1 + erf(x/√2))/2, which every opset has.
func WriteMLP(path string, m predictor.MLP) error {
	if err := m.Validate(); err != nil {
		return err
	}
	data, err := proto.Marshal(mlpModel(m))
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func mlpModel(m predictor.MLP) *pb.ModelProto {
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
			tensor("fc1.weight", []int64{int64(m.H), int64(m.In())}, m.W1), tensor("fc1.bias", []int64{int64(m.H)}, m.B1),
			tensor("fc2.weight", []int64{2, int64(m.H)}, m.W2), tensor("fc2.bias", []int64{2}, m.B2),
			scalar("sqrt2", 1.4142135623730951), scalar("one", 1), scalar("half", 0.5),
		},
		Node: []*pb.NodeProto{
			gemm("x", "fc1.weight", "fc1.bias", "h"),
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
	if m.Context > 0 {
		concat := node("Concat", []string{"hidden_states", "context"}, "x")
		concat.Attribute = []*pb.AttributeProto{{Name: "axis", Type: pb.AttributeProto_INT, I: 1}}
		g.Node = append([]*pb.NodeProto{concat}, g.Node...)
		g.Input = append(g.Input, io("context", "N", m.Context))
	} else {
		g.Node[0].Input[0] = "hidden_states"
	}
	return &pb.ModelProto{IrVersion: 8, ProducerName: "go-sdtp", Graph: g,
		OpsetImport: []*pb.OperatorSetIdProto{{Domain: "", Version: 17}}}
}

// floats returns the values of a float tensor, stored in either field.
func floats(t *pb.TensorProto) []float32 {
	if len(t.GetFloatData()) > 0 {
		return t.GetFloatData()
	}
	rd := t.GetRawData()
	out := make([]float32, len(rd)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(rd[4*i:]))
	}
	return out
}

// checkWeights rejects an ONNX file with a NaN or infinite value in a float
// initializer: such a predictor scores every token NaN, which would
// otherwise surface only mid-prefill.
func checkWeights(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var model pb.ModelProto
	if err := proto.Unmarshal(raw, &model); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, t := range model.GetGraph().GetInitializer() {
		if t.GetDataType() != int32(pb.TensorProto_FLOAT) {
			continue
		}
		for i, v := range floats(t) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: weight %s[%d] is %v; weights must be finite", path, t.GetName(), i, v)
			}
		}
	}
	return nil
}

// ReadMLP reads the weights of a default-architecture predictor from an
// ONNX file: initializers fc1.weight [H, D+K], fc1.bias [H], fc2.weight
// [2, H] and fc2.bias [2] (the names PyTorch gives nn.Linear layers called
// fc1 and fc2, and the ones WriteMLP uses), where K is the width of the
// "context" input if the model has one.
func ReadMLP(path string) (predictor.MLP, error) {
	var m predictor.MLP
	raw, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	var model pb.ModelProto
	if err := proto.Unmarshal(raw, &model); err != nil {
		return m, fmt.Errorf("onnx: %s: %w", path, err)
	}
	inits := map[string]*pb.TensorProto{}
	for _, t := range model.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	get := func(name string, dims ...int64) []float32 {
		t, ok := inits[name]
		if !ok || err != nil {
			err = errors.Join(err, fmt.Errorf("onnx: %s has no initializer %s (only the default Linear-GELU-Linear predictor can be embedded)", path, name))
			return nil
		}
		if !slices.Equal(t.GetDims(), dims) || t.GetDataType() != int32(pb.TensorProto_FLOAT) {
			err = fmt.Errorf("onnx: %s: %s has shape %v, want float %v", path, name, t.GetDims(), dims)
			return nil
		}
		return floats(t)
	}
	w1, ok := inits["fc1.weight"]
	if !ok || len(w1.GetDims()) != 2 {
		return m, fmt.Errorf("onnx: %s has no 2-D initializer fc1.weight (only the default Linear-GELU-Linear predictor can be embedded)", path)
	}
	m.H, m.D = int(w1.GetDims()[0]), int(w1.GetDims()[1])
	for _, in := range model.GetGraph().GetInput() {
		if dims := in.GetType().GetTensorType().GetShape().GetDim(); in.GetName() == "context" && len(dims) == 2 {
			m.Context = int(dims[1].GetDimValue())
			m.D -= m.Context
		}
	}
	m.W1 = get("fc1.weight", int64(m.H), int64(m.In()))
	m.B1 = get("fc1.bias", int64(m.H))
	m.W2 = get("fc2.weight", 2, int64(m.H))
	m.B2 = get("fc2.bias", 2)
	if err != nil {
		return m, err
	}
	return m, m.Validate()
}
