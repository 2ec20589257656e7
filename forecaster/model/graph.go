package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/foresightscale/foresight/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Opset versions of the default ONNX domain a model may import. gorgonnx
// ignores opset_import and follows pre-13 conventions; for the verified uses
// the semantics are the same from opset 7 through 13.
const (
	MinOpsetVersion = 7
	MaxOpsetVersion = 13
)

// checkGraph checks that onnx-go will compute an ONNX file correctly and that
// the file takes and produces what the manifest says. Errors do not name the
// file; the caller does.
func checkGraph(onnxBytes []byte, man *Manifest) error {
	g, err := analyzeGraph(onnxBytes)
	if err != nil {
		return err
	}
	if g.input != man.Input.Name {
		return fmt.Errorf("graph input is %q, manifest input.name is %q", g.input, man.Input.Name)
	}
	if in := g.values[g.input].Shape; !slices.Equal(in, man.Input.Shape) {
		return fmt.Errorf("graph input %q has shape %v, manifest input.shape is %v", g.input, in, man.Input.Shape)
	}
	for i, o := range man.Outputs {
		shape, ok := g.outputs[o.Name]
		if !ok {
			return fmt.Errorf("manifest outputs[%d] %q is not a graph output (graph outputs: %q)", i, o.Name, slices.Sorted(maps.Keys(g.outputs)))
		}
		if !slices.Equal(shape, o.Shape) {
			return fmt.Errorf("graph output %q has shape %v, manifest outputs[%d].shape is %v", o.Name, shape, i, o.Shape)
		}
	}
	return nil
}

// analyzedGraph is what analyzeGraph learned about a model file.
type analyzedGraph struct {
	input   string             // the one graph input that is not an initializer
	values  map[string]Operand // every value by name, with its static shape
	outputs map[string]Shape   // graph outputs
}

// analyzeGraph decodes an ONNX file and checks that onnx-go will compute it
// correctly: one float32 input of static shape, initializers it reads right,
// nodes in topological order using only the verified op set, and outputs that
// no node reads.
func analyzeGraph(onnxBytes []byte) (*analyzedGraph, error) {
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(onnxBytes, &mp); err != nil {
		return nil, fmt.Errorf("not an ONNX model (%d bytes): %w", len(onnxBytes), err)
	}
	g := mp.GetGraph()
	if g == nil || len(g.GetNode()) == 0 {
		return nil, errors.New("the model has no graph or the graph has no nodes")
	}
	if err := checkOpsetImport(&mp); err != nil {
		return nil, err
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, errors.New("sparse initializers are not supported")
	}

	values := make(map[string]Operand)
	consumer := make(map[string]int) // value name -> first node that reads it
	readers := make(map[string]int)  // value name -> how many node inputs read it
	for i, t := range g.GetInitializer() {
		name := t.GetName()
		if name == "" {
			return nil, fmt.Errorf("initializer %d has no name", i)
		}
		if _, dup := values[name]; dup {
			return nil, fmt.Errorf("initializer %q is defined twice", name)
		}
		tv, err := decodeTensor(t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", name, err)
		}
		values[name] = tv.operand()
	}

	// The graph input is every declared input that is not an initializer
	// (exporters may list initializers as inputs too).
	var inputs []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if _, isInit := values[in.GetName()]; !isInit {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		names := make([]string, len(inputs))
		for i, in := range inputs {
			names[i] = in.GetName()
		}
		return nil, fmt.Errorf("graph inputs (besides initializers) are %q; want exactly one", names)
	}
	input := inputs[0].GetName()
	inShape, err := valueShape(inputs[0])
	if err != nil {
		return nil, fmt.Errorf("graph input %q: %w", input, err)
	}
	values[input] = Operand{Shape: inShape, Type: Float32}

	for i, n := range g.GetNode() {
		op := n.GetOpType()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("node %d (%s): %s", i, op, fmt.Sprintf(format, args...))
		}
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, fail("domain %q: only the default ONNX domain is verified", d)
		}
		if _, ok := VerifiedOps[op]; !ok {
			return nil, fmt.Errorf("node %d (%s) uses an op outside the verified set", i, op)
		}
		node := Node{Op: op}
		for j, in := range n.GetInput() {
			if in == "" {
				return nil, fail("input %d is empty (optional inputs are not supported)", j)
			}
			// onnx-go keeps one graph edge per (node, input) pair: a value read
			// twice by one node collapses into one input, and the op sees the
			// wrong arity or the wrong order.
			if slices.Index(n.GetInput(), in) != j {
				return nil, fail("reads %q twice; onnx-go merges repeated inputs, read it once through an Identity", in)
			}
			v, ok := values[in]
			if !ok {
				return nil, fail("input %q is not the graph input, an initializer or the output of an earlier node", in)
			}
			node.Inputs = append(node.Inputs, v)
			if _, seen := consumer[in]; !seen {
				consumer[in] = i
			}
			readers[in]++
		}
		if node.Attrs, err = decodeAttrs(n.GetAttribute()); err != nil {
			return nil, fail("%v", err)
		}
		out, err := CheckNode(node)
		if err != nil {
			return nil, fail("%v", err)
		}
		if len(n.GetOutput()) != 1 || n.GetOutput()[0] == "" {
			return nil, fail("has outputs %q; want exactly one named output", n.GetOutput())
		}
		name := n.GetOutput()[0]
		if _, dup := values[name]; dup {
			return nil, fail("output %q is already defined", name)
		}
		values[name] = out
	}

	// gorgonnx's element-wise ops write their result into their first
	// operand's tensor. When anything else reads that value (another node,
	// or the Identity that publishes a graph output), it may see the result
	// instead (measured: an output p next to Add(p, c) came out as p+c).
	for i, n := range g.GetNode() {
		if !inPlaceOps[n.GetOpType()] || len(n.GetInput()) == 0 {
			continue
		}
		// The graph input is re-bound before every run and measured safe.
		if first := n.GetInput()[0]; readers[first] > 1 && first != input {
			return nil, fmt.Errorf("node %d (%s): its first operand %q is also read elsewhere; onnx-go computes %s in place in the first operand, so give it a value no other node reads (onnxbuild inserts a copy)", i, n.GetOpType(), first, n.GetOpType())
		}
	}

	outputs := make(map[string]Shape, len(g.GetOutput()))
	for _, o := range g.GetOutput() {
		name := o.GetName()
		v, ok := values[name]
		if !ok {
			return nil, fmt.Errorf("graph output %q is not computed by any node", name)
		}
		if _, dup := outputs[name]; dup {
			return nil, fmt.Errorf("graph output %q is listed twice", name)
		}
		shape, err := valueShape(o)
		if err != nil {
			return nil, fmt.Errorf("graph output %q: %w", name, err)
		}
		if !slices.Equal(shape, v.Shape) || v.Type != Float32 {
			return nil, fmt.Errorf("graph output %q is declared as float32 %v but the graph computes %v %v", name, shape, v.Type, v.Shape)
		}
		// gorgonnx copies results out of the machine only for values no node
		// reads; an output that feeds another node keeps its initial zeros.
		if j, read := consumer[name]; read {
			return nil, fmt.Errorf("graph output %q is also read by node %d (%s); onnx-go only refreshes values no node reads, output an Identity of it instead", name, j, g.GetNode()[j].GetOpType())
		}
		outputs[name] = shape
	}
	return &analyzedGraph{input: input, values: values, outputs: outputs}, nil
}

func checkOpsetImport(mp *onnxpb.ModelProto) error {
	for _, o := range mp.GetOpsetImport() {
		if d := o.GetDomain(); d != "" && d != "ai.onnx" {
			continue
		}
		if v := o.GetVersion(); v < MinOpsetVersion || v > MaxOpsetVersion {
			return fmt.Errorf("imports opset %d of the default domain; verified for %d to %d", v, MinOpsetVersion, MaxOpsetVersion)
		}
		return nil
	}
	return errors.New("does not import the default ONNX opset")
}

// valueShape reads a graph input or output's static float32 shape.
func valueShape(v *onnxpb.ValueInfoProto) (Shape, error) {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return nil, errors.New("has no tensor type")
	}
	if tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("has element type %v, want FLOAT", onnxpb.TensorProto_DataType(tt.GetElemType()))
	}
	if tt.GetShape() == nil {
		return nil, errors.New("has no shape")
	}
	shape := make(Shape, 0, len(tt.GetShape().GetDim()))
	for i, d := range tt.GetShape().GetDim() {
		dv, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue)
		if !ok || dv.DimValue < 1 {
			return nil, fmt.Errorf("dimension %d is not a fixed positive size (symbolic dimensions are not supported)", i)
		}
		shape = append(shape, int(dv.DimValue))
	}
	return shape, nil
}

// maxTensorSize bounds the elements of one tensor (1 GiB of float32), far
// above any forecasting model, so a corrupt dims field cannot overflow.
const maxTensorSize = 1 << 28

// tensorValue is a decoded float32 or int64 tensor.
type tensorValue struct {
	shape  Shape
	typ    ElemType
	floats []float32
	ints   []int64
}

func (t tensorValue) operand() Operand {
	return Operand{Shape: t.shape, Type: t.typ, Ints: t.ints}
}

// decodeTensor reads a TensorProto the way onnx-go will, refusing what it
// would misread: wrong element counts, external or segmented data, two data
// fields at once, and non-finite weights.
func decodeTensor(t *onnxpb.TensorProto) (tensorValue, error) {
	if t.GetSegment() != nil {
		return tensorValue{}, errors.New("segmented tensors are not supported")
	}
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.GetExternalData()) > 0 {
		return tensorValue{}, errors.New("external tensor data is not supported")
	}
	if len(t.GetDims()) > MaxRank {
		return tensorValue{}, fmt.Errorf("rank %d exceeds %d", len(t.GetDims()), MaxRank)
	}
	tv := tensorValue{shape: make(Shape, len(t.GetDims()))}
	n := 1
	for i, d := range t.GetDims() {
		if d < 1 || d > maxTensorSize/int64(n) {
			return tensorValue{}, fmt.Errorf("dimension %d is %d (shape %v)", i, d, t.GetDims())
		}
		tv.shape[i] = int(d)
		n *= int(d)
	}
	raw := t.GetRawData() // nil when absent: onnx-go tests the same way
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		tv.typ = Float32
		switch {
		case raw != nil && len(t.GetFloatData()) > 0:
			return tensorValue{}, errors.New("has both raw_data and float_data")
		case raw != nil:
			if len(raw) != 4*n {
				return tensorValue{}, fmt.Errorf("shape %v needs %d bytes of raw_data, got %d", tv.shape, 4*n, len(raw))
			}
			tv.floats = make([]float32, n)
			for i := range tv.floats {
				tv.floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		default:
			if len(t.GetFloatData()) != n {
				return tensorValue{}, fmt.Errorf("shape %v needs %d values, got %d", tv.shape, n, len(t.GetFloatData()))
			}
			tv.floats = slices.Clone(t.GetFloatData())
		}
		for i, v := range tv.floats {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return tensorValue{}, fmt.Errorf("value %d is %v", i, v)
			}
		}
	case onnxpb.TensorProto_INT64:
		tv.typ = Int64
		switch {
		case raw != nil && len(t.GetInt64Data()) > 0:
			return tensorValue{}, errors.New("has both raw_data and int64_data")
		case raw != nil:
			if len(raw) != 8*n {
				return tensorValue{}, fmt.Errorf("shape %v needs %d bytes of raw_data, got %d", tv.shape, 8*n, len(raw))
			}
			tv.ints = make([]int64, n)
			for i := range tv.ints {
				tv.ints[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		default:
			if len(t.GetInt64Data()) != n {
				return tensorValue{}, fmt.Errorf("shape %v needs %d values, got %d", tv.shape, n, len(t.GetInt64Data()))
			}
			tv.ints = slices.Clone(t.GetInt64Data())
		}
	default:
		return tensorValue{}, fmt.Errorf("element type %v: want FLOAT or INT64", onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	return tv, nil
}

// decodeAttrs converts node attributes to the values CheckNode reads,
// refusing kinds the verified set never uses.
func decodeAttrs(attrs []*onnxpb.AttributeProto) (map[string]any, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(attrs))
	for _, a := range attrs {
		name := a.GetName()
		if name == "" {
			return nil, errors.New("an attribute has no name")
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("attribute %q is given twice", name)
		}
		if a.GetRefAttrName() != "" {
			return nil, fmt.Errorf("attribute %q refers to a function attribute", name)
		}
		// onnx-go dispatches on the type field alone.
		switch a.GetType() {
		case onnxpb.AttributeProto_INT:
			out[name] = a.GetI()
		case onnxpb.AttributeProto_FLOAT:
			f := a.GetF()
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("attribute %q is %v", name, f)
			}
			out[name] = f
		case onnxpb.AttributeProto_INTS:
			out[name] = slices.Clone(a.GetInts())
		case onnxpb.AttributeProto_TENSOR:
			tv, err := decodeTensor(a.GetT())
			if err != nil {
				return nil, fmt.Errorf("attribute %q: %w", name, err)
			}
			out[name] = TensorAttr{Shape: tv.shape, Type: tv.typ, Ints: tv.ints}
		default:
			return nil, fmt.Errorf("attribute %q has type %v, which no verified op uses", name, a.GetType())
		}
	}
	return out, nil
}

// inPlaceOps are the ops gorgonnx computes into their first operand.
var inPlaceOps = map[string]bool{"Add": true, "Sub": true, "Mul": true, "Div": true}
