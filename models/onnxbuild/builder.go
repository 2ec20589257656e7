// Package onnxbuild writes ONNX model files that Foresight's runtime executes
// correctly. Every op is checked against the verified op set
// (model.VerifiedOps) with static shape inference as the graph is built, so a
// graph onnx-go would fail on, or silently miscompute, is refused here rather
// than when a model is loaded.
//
// Errors accumulate: after the first refused op every later call is a no-op
// returning a zero Value, and Err and Marshal report that first error. A
// model reads like its maths:
//
//	b := onnxbuild.New("linear")
//	x := b.Input("x", []int{60, 10})
//	w := b.Initializer("w", []int{6, 60}, weights)
//	b.Output(b.Tanh(b.MatMul(w, x)), "requests")
//	onnxBytes, err := b.Marshal()
package onnxbuild

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

// What Marshal writes in every model.
const (
	IRVersion    = 7
	OpsetVersion = 11
	Producer     = "foresight"
)

// Value is a tensor in the graph being built: a graph input, an initializer
// or the output of an op.
type Value struct {
	name  string
	shape model.Shape
}

// Name is the value's name in the graph.
func (v Value) Name() string { return v.name }

// Shape is the value's static shape.
func (v Value) Shape() []int { return slices.Clone(v.shape) }

// Builder accumulates one ONNX graph. It is not safe for concurrent use.
type Builder struct {
	name    string
	graph   *onnxpb.GraphProto
	values  map[string]model.Operand
	outputs int
	err     error
}

// New starts an empty graph.
func New(name string) *Builder {
	return &Builder{
		name:   name,
		graph:  &onnxpb.GraphProto{Name: proto.String(name)},
		values: make(map[string]model.Operand),
	}
}

// Err returns the first error met so far, if any.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(format string, args ...any) Value {
	if b.err == nil {
		b.err = fmt.Errorf("onnxbuild %s: %s", b.name, fmt.Sprintf(format, args...))
	}
	return Value{}
}

func (b *Builder) claim(kind, name string) bool {
	switch {
	case name == "":
		b.fail("%s name must not be empty", kind)
		return false
	case b.taken(name):
		b.fail("%s name %q is already used", kind, name)
		return false
	}
	return true
}

func (b *Builder) taken(name string) bool {
	if _, ok := b.values[name]; ok {
		return true
	}
	return slices.ContainsFunc(b.graph.GetOutput(), func(o *onnxpb.ValueInfoProto) bool { return o.GetName() == name })
}

func checkShape(shape []int) error {
	if len(shape) > model.MaxRank {
		return fmt.Errorf("rank %d exceeds %d", len(shape), model.MaxRank)
	}
	for _, d := range shape {
		if d < 1 {
			return errors.New("every dimension must be at least 1")
		}
	}
	return nil
}

// Input declares a float32 graph input.
func (b *Builder) Input(name string, shape []int) Value {
	if b.err != nil || !b.claim("input", name) {
		return Value{}
	}
	if len(shape) == 0 {
		return b.fail("input %q: an input must have rank 1 or more", name)
	}
	if err := checkShape(shape); err != nil {
		return b.fail("input %q shape %v: %v", name, shape, err)
	}
	b.graph.Input = append(b.graph.Input, valueInfo(name, shape))
	return b.define(name, model.Operand{Shape: slices.Clone(shape), Type: model.Float32})
}

// Initializer adds a constant float32 tensor (weights) with row-major data.
func (b *Builder) Initializer(name string, shape []int, data []float32) Value {
	if b.err != nil || !b.claim("initializer", name) {
		return Value{}
	}
	if err := checkShape(shape); err != nil {
		return b.fail("initializer %q shape %v: %v", name, shape, err)
	}
	if n := model.Shape(shape).Size(); len(data) != n {
		return b.fail("initializer %q: shape %v needs %d values, got %d", name, shape, n, len(data))
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return b.fail("initializer %q: value %d is %v", name, i, v)
		}
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.graph.Initializer = append(b.graph.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     dims(shape),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		RawData:  raw,
	})
	return b.define(name, model.Operand{Shape: slices.Clone(shape), Type: model.Float32})
}

// int64Initializer adds a constant int64 vector (Reshape's target shape).
func (b *Builder) int64Initializer(base string, data []int64) Value {
	name := b.freshName(base)
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	b.graph.Initializer = append(b.graph.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     []int64{int64(len(data))},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
		RawData:  raw,
	})
	return b.define(name, model.Operand{Shape: model.Shape{len(data)}, Type: model.Int64, Ints: slices.Clone(data)})
}

func (b *Builder) define(name string, o model.Operand) Value {
	b.values[name] = o
	return Value{name: name, shape: o.Shape}
}

func (b *Builder) freshName(base string) string {
	for k := len(b.values); ; k++ {
		if name := fmt.Sprintf("%s_%d", base, k); !b.taken(name) {
			return name
		}
	}
}

// Op adds a node of any op type with attributes (int64, float32 or []int64
// values) and returns its output. The typed methods below are shorthands;
// Op is how an op outside them is tried, and refused when it is outside the
// verified set.
func (b *Builder) Op(opType string, attrs map[string]any, inputs ...Value) Value {
	if b.err != nil {
		return Value{}
	}
	index := len(b.graph.Node) // the node's index in the file, as the loader reports it
	node := model.Node{Op: opType, Attrs: attrs}
	names := make([]string, len(inputs))
	for i, in := range inputs {
		o, ok := b.values[in.name]
		if !ok || in.name == "" {
			return b.fail("node %d (%s): input %d is not a value of this graph (did an earlier call fail?)", index, opType, i)
		}
		node.Inputs = append(node.Inputs, o)
		names[i] = in.name
	}
	out, err := model.CheckNode(node)
	if err != nil {
		return b.fail("node %d (%s): %v", index, opType, err)
	}
	pbAttrs, err := attributes(attrs)
	if err != nil {
		return b.fail("node %d (%s): %v", index, opType, err)
	}
	// onnx-go merges repeated inputs of one node into one graph edge; read a
	// repeated value through an Identity so Mul(x, x) means x².
	for i, name := range names {
		if slices.Index(names, name) != i {
			names[i] = b.emit("Identity", nil, []string{name}, b.values[name])
		}
	}
	return Value{name: b.emit(opType, pbAttrs, names, out), shape: out.Shape}
}

// emit appends a node and defines its output under a fresh name.
func (b *Builder) emit(opType string, attrs []*onnxpb.AttributeProto, inputs []string, out model.Operand) string {
	name := b.freshName(opType)
	b.graph.Node = append(b.graph.Node, &onnxpb.NodeProto{
		Name:      proto.String(name),
		OpType:    proto.String(opType),
		Input:     inputs,
		Output:    []string{name},
		Attribute: attrs,
	})
	b.define(name, out)
	return name
}

func attributes(attrs map[string]any) ([]*onnxpb.AttributeProto, error) {
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic files
	out := make([]*onnxpb.AttributeProto, 0, len(attrs))
	for _, name := range names {
		a := &onnxpb.AttributeProto{Name: proto.String(name)}
		switch v := attrs[name].(type) {
		case int64:
			a.Type, a.I = onnxpb.AttributeProto_INT.Enum(), proto.Int64(v)
		case float32:
			a.Type, a.F = onnxpb.AttributeProto_FLOAT.Enum(), proto.Float32(v)
		case []int64:
			a.Type, a.Ints = onnxpb.AttributeProto_INTS.Enum(), slices.Clone(v)
		default:
			return nil, fmt.Errorf("attribute %q: %T values are not written (use int64, float32 or []int64)", name, v)
		}
		out = append(out, a)
	}
	return out, nil
}

// MatMul is the 2-D matrix product a·x.
func (b *Builder) MatMul(a, x Value) Value { return b.Op("MatMul", nil, a, x) }

// Gemm is a·x + c with c of shape [1] or [N] (broadcast over rows).
func (b *Builder) Gemm(a, x, c Value) Value { return b.Op("Gemm", nil, a, x, c) }

// Add is a + x, element-wise with the verified broadcasts.
func (b *Builder) Add(a, x Value) Value { return b.Op("Add", nil, a, x) }

// Sub is a - x, element-wise with the verified broadcasts.
func (b *Builder) Sub(a, x Value) Value { return b.Op("Sub", nil, a, x) }

// Mul is a ⊙ x, element-wise with the verified broadcasts.
func (b *Builder) Mul(a, x Value) Value { return b.Op("Mul", nil, a, x) }

// Div is a / x, element-wise with the verified broadcasts.
func (b *Builder) Div(a, x Value) Value { return b.Op("Div", nil, a, x) }

// Relu is max(x, 0).
func (b *Builder) Relu(x Value) Value { return b.Op("Relu", nil, x) }

// Sigmoid is 1/(1+e^-x).
func (b *Builder) Sigmoid(x Value) Value { return b.Op("Sigmoid", nil, x) }

// Tanh is tanh(x).
func (b *Builder) Tanh(x Value) Value { return b.Op("Tanh", nil, x) }

// Exp is e^x.
func (b *Builder) Exp(x Value) Value { return b.Op("Exp", nil, x) }

// Log is ln(x).
func (b *Builder) Log(x Value) Value { return b.Op("Log", nil, x) }

// Sqrt is √x.
func (b *Builder) Sqrt(x Value) Value { return b.Op("Sqrt", nil, x) }

// Abs is |x|.
func (b *Builder) Abs(x Value) Value { return b.Op("Abs", nil, x) }

// Neg is -x.
func (b *Builder) Neg(x Value) Value { return b.Op("Neg", nil, x) }

// Softplus is ln(1+e^x).
func (b *Builder) Softplus(x Value) Value { return b.Op("Softplus", nil, x) }

// Identity is x under a new name.
func (b *Builder) Identity(x Value) Value { return b.Op("Identity", nil, x) }

// Softmax normalises a 2-D x along axis (1 or -1: each row sums to 1).
func (b *Builder) Softmax(x Value, axis int) Value {
	return b.Op("Softmax", map[string]any{"axis": int64(axis)}, x)
}

// Reshape gives x a new shape with the same number of elements. One
// dimension may be -1 (inferred) and 0 copies x's dimension, as in ONNX; the
// file always holds the resolved shape, because gorgonnx resolves -1 and 0
// wrongly when the rank changes.
func (b *Builder) Reshape(x Value, shape ...int) Value {
	if b.err != nil {
		return Value{}
	}
	resolved, err := resolveShape(x.shape, shape)
	if err != nil {
		return b.fail("node %d (Reshape): %v", len(b.graph.Node), err)
	}
	return b.Op("Reshape", nil, x, b.int64Initializer("shape", resolved))
}

func resolveShape(from model.Shape, to []int) ([]int64, error) {
	out := make([]int64, len(to))
	inferred, known := -1, 1
	for i, d := range to {
		switch {
		case d == -1 && inferred < 0:
			inferred = i
			continue
		case d == -1:
			return nil, fmt.Errorf("target %v has more than one -1", to)
		case d == 0 && i < len(from):
			d = from[i]
		case d < 1:
			return nil, fmt.Errorf("target %v: dimension %d is %d", to, i, d)
		}
		out[i] = int64(d)
		known *= d
	}
	if inferred >= 0 {
		if known == 0 || from.Size()%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", from, to)
		}
		out[inferred] = int64(from.Size() / known)
	}
	return out, nil
}

// Transpose permutes x's axes: output axis i is input axis perm[i].
func (b *Builder) Transpose(x Value, perm ...int) Value {
	p := make([]int64, len(perm))
	for i, v := range perm {
		p[i] = int64(v)
	}
	return b.Op("Transpose", map[string]any{"perm": p}, x)
}

// Concat joins xs along axis (non-negative).
func (b *Builder) Concat(axis int, xs ...Value) Value {
	return b.Op("Concat", map[string]any{"axis": int64(axis)}, xs...)
}

// Output makes v a graph output called name. The output is written as an
// Identity of v: onnx-go only refreshes values that no node reads, so a graph
// output must never feed another node.
func (b *Builder) Output(v Value, name string) {
	if b.err != nil || !b.claim("output", name) {
		return
	}
	o, ok := b.values[v.name]
	if !ok || v.name == "" {
		b.fail("output %q: not a value of this graph (did an earlier call fail?)", name)
		return
	}
	if o.Type != model.Float32 {
		b.fail("output %q: %v values cannot be outputs", name, o.Type)
		return
	}
	if _, err := model.CheckNode(model.Node{Op: "Identity", Inputs: []model.Operand{o}}); err != nil {
		b.fail("output %q: %v", name, err)
		return
	}
	b.graph.Node = append(b.graph.Node, &onnxpb.NodeProto{
		Name:   proto.String(name),
		OpType: proto.String("Identity"),
		Input:  []string{v.name},
		Output: []string{name},
	})
	b.graph.Output = append(b.graph.Output, valueInfo(name, o.Shape))
	b.outputs++
}

// Marshal writes the model: ONNX IR version 7, opset 11, producer
// "foresight". The bytes are deterministic for a given graph.
func (b *Builder) Marshal() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if err := b.isolateInPlaceOperands(); err != nil {
		return nil, fmt.Errorf("onnxbuild %s: %w", b.name, err)
	}
	if len(b.graph.GetInput()) == 0 || b.outputs == 0 {
		return nil, fmt.Errorf("onnxbuild %s: a model needs at least one input and one output (have %d and %d)", b.name, len(b.graph.GetInput()), b.outputs)
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(OpsetVersion)}},
		ProducerName: proto.String(Producer),
		Graph:        b.graph,
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnxbuild %s: marshal: %w", b.name, err)
	}
	return out, nil
}

func dims(shape []int) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[i] = int64(d)
	}
	return out
}

func valueInfo(name string, shape []int) *onnxpb.ValueInfoProto {
	dim := make([]*onnxpb.TensorShapeProto_Dimension, len(shape))
	for i, d := range shape {
		dim[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    &onnxpb.TensorShapeProto{Dim: dim},
		}}},
	}
}

// isolateInPlaceOperands gives every element-wise op a first operand that no
// other node reads. gorgonnx computes Add/Sub/Mul/Div into the tensor of
// their first operand, so another reader of that value (or the Identity
// publishing it as an output) may see the result instead of the value. The
// copy is a MatMul with an identity matrix, which always allocates. The graph
// input is re-bound before every run and needs no copy.
func (b *Builder) isolateInPlaceOperands() error {
	input := b.graph.GetInput()[0].GetName()
	readers := make(map[string]int)
	for _, n := range b.graph.Node {
		for _, in := range n.Input {
			readers[in]++
		}
	}
	identities := make(map[int]string) // size -> identity initializer
	var nodes []*onnxpb.NodeProto
	for _, n := range b.graph.Node {
		if inPlace[n.GetOpType()] && len(n.Input) > 0 {
			first := n.Input[0]
			if readers[first] > 1 && first != input {
				shape := b.values[first].Shape
				if len(shape) != 2 {
					return fmt.Errorf("%s reads %q (shape %v) first while other nodes read it too; only 2-D values can be copied: compute it twice or reorder the operands", n.GetOpType(), first, shape)
				}
				k := shape[1]
				eye, ok := identities[k]
				if !ok {
					data := make([]float32, k*k)
					for i := range k {
						data[i*k+i] = 1
					}
					eye = b.Initializer(b.freshName("identity"), []int{k, k}, data).name
					if b.err != nil {
						return b.err
					}
					identities[k] = eye
				}
				name := b.freshName("copy")
				b.define(name, b.values[first])
				nodes = append(nodes, &onnxpb.NodeProto{
					Name: proto.String(name), OpType: proto.String("MatMul"),
					Input: []string{first, eye}, Output: []string{name},
				})
				n.Input[0] = name
			}
		}
		nodes = append(nodes, n)
	}
	b.graph.Node = nodes
	return nil
}

// inPlace are the ops gorgonnx computes into their first operand.
var inPlace = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true}
