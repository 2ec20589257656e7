package model

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The verified op set: the operators, shapes and attributes that onnx-go
// v0.5.0 (gorgonnx backend, gorgonia v0.9.18) computes correctly, each use
// checked against a plain-Go reference in opset_test.go, including repeated
// runs of one graph. The ONNX writer (models/onnxbuild) refuses anything else
// when a graph is built, and the loader refuses it when a model is loaded,
// because outside this set gorgonnx fails at run time or, worse, returns
// wrong numbers without an error.

// MaxRank is the highest tensor rank any verified op is used with.
const MaxRank = 4

// Shape is a static tensor shape.
type Shape []int

// Size is the number of elements (1 for a scalar).
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// ElemType is a tensor element type the verified set uses.
type ElemType int

// Element types: float32 for every computed value, int64 only for Reshape's
// constant target shape.
const (
	Float32 ElemType = iota + 1
	Int64
)

func (t ElemType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("ElemType(%d)", int(t))
}

// Operand is what the checker knows about a value that feeds a node.
type Operand struct {
	Shape Shape
	Type  ElemType
	// FromConstantNode marks the output of a Constant node. gorgonnx turns it
	// into a gorgonia constant outside the expression graph: it can be read
	// as it is, but broadcasting it fails at run time ("run: <nil>").
	FromConstantNode bool
	// Ints is the value of a constant int64 tensor (an initializer or a
	// Constant node's output); Reshape reads its target shape from it.
	Ints []int64
}

// AttrKind is the type of an attribute value. In a Node's Attrs the values
// are int64 (AttrInt), float32 (AttrFloat), []int64 (AttrInts) and
// TensorAttr (AttrTensor).
type AttrKind int

// Attribute kinds the verified ops use.
const (
	AttrInt AttrKind = iota + 1
	AttrFloat
	AttrInts
	AttrTensor
)

func (k AttrKind) String() string {
	switch k {
	case AttrInt:
		return "int"
	case AttrFloat:
		return "float"
	case AttrInts:
		return "ints"
	case AttrTensor:
		return "tensor"
	}
	return fmt.Sprintf("AttrKind(%d)", int(k))
}

// TensorAttr is a tensor-valued attribute (Constant's value), reduced to what
// the checks need.
type TensorAttr struct {
	Shape Shape
	Type  ElemType
	Ints  []int64 // the values when Type is Int64
}

// Node is one operator application as the checker sees it.
type Node struct {
	Op     string
	Inputs []Operand
	Attrs  map[string]any
}

// OpRule says how an operator may be used.
type OpRule struct {
	// Inputs is the number of inputs; with Variadic, the least number.
	Inputs   int
	Variadic bool
	// Ranks lists the ranks the float inputs may have.
	Ranks []int
	// Int64Inputs lists the inputs that must be constant int64 tensors.
	Int64Inputs []int
	// Attrs lists the attributes the op may carry. Any other attribute is
	// refused: gorgonnx ignores what it does not know (Conv's group, for one),
	// which computes something else without an error.
	Attrs map[string]AttrKind
	// Required lists the attributes that must be present.
	Required []string
	// ConstantNodeInputs is whether Constant nodes' outputs may feed the op.
	ConstantNodeInputs bool
	// Allowed says in words which uses are verified.
	Allowed string
	// infer checks what the fields cannot express and returns the output.
	infer func(in []Operand, attrs map[string]any) (Operand, error)
}

var (
	anyRank   = []int{0, 1, 2, 3, 4}
	dataRanks = []int{1, 2, 3, 4}
)

func unary(name string) OpRule {
	return OpRule{
		Inputs:             1,
		Ranks:              dataRanks,
		ConstantNodeInputs: name == "Identity",
		Allowed:            "any float tensor of rank 1 to 4",
		infer:              func(in []Operand, _ map[string]any) (Operand, error) { return floatOf(in[0].Shape), nil },
	}
}

const elementwiseAllowed = "same shapes (rank 1-4); [T,N] with [N] (either order) when T != N; " +
	"[T,N] with [1,N], [T,1] or [1,1]; a size-1 operand of shape [] with any rank, or [1] with rank 2-4; " +
	"a Constant node's output only with the same shape as the other operand"

func elementwise() OpRule {
	return OpRule{
		Inputs:             2,
		Ranks:              anyRank,
		ConstantNodeInputs: true,
		Allowed:            elementwiseAllowed,
		infer:              inferElementwise,
	}
}

// VerifiedOps maps each ONNX op type the runtime executes correctly to how it
// may be used. It is the single source for the writer and the loader; treat it
// as read-only.
var VerifiedOps = map[string]OpRule{
	"MatMul": {
		Inputs:             2,
		Ranks:              []int{2},
		ConstantNodeInputs: true,
		Allowed:            "2-D × 2-D only ([M,K]·[K,N]); 1-D, 3-D and batched MatMul fail in gorgonnx",
		infer:              inferMatMul,
	},
	"Gemm": {
		Inputs: 3,
		Ranks:  []int{1, 2},
		Attrs:  map[string]AttrKind{"alpha": AttrFloat, "beta": AttrFloat, "transA": AttrInt, "transB": AttrInt},
		Allowed: "A, B 2-D; C present with shape [1], [1,1], [N] or [1,N], and fewer elements than the [M,N] result " +
			"(gorgonnx writes the result into a full-size C, so a full C accumulates across runs; C [M,1] is read as a row)",
		infer: inferGemm,
	},
	"Add":      elementwise(),
	"Sub":      elementwise(),
	"Mul":      elementwise(),
	"Div":      elementwise(),
	"Relu":     unary("Relu"),
	"Sigmoid":  unary("Sigmoid"),
	"Tanh":     unary("Tanh"),
	"Exp":      unary("Exp"),
	"Log":      unary("Log"),
	"Sqrt":     unary("Sqrt"),
	"Identity": unary("Identity"),
	"Abs":      unary("Abs"),
	"Neg":      unary("Neg"),
	"Softplus": unary("Softplus"),
	"Softmax": {
		Inputs:  1,
		Ranks:   []int{2},
		Attrs:   map[string]AttrKind{"axis": AttrInt},
		Allowed: "2-D with axis 1 or -1 (the default); gorgonnx computes axis 0 over rows anyway",
		infer:   inferSoftmax,
	},
	"Reshape": {
		Inputs:             2,
		Ranks:              dataRanks,
		Int64Inputs:        []int{1},
		ConstantNodeInputs: true,
		Allowed: "a constant int64 target shape with every dimension given (> 0); " +
			"gorgonnx resolves 0 and -1 from only the leading input dimensions",
		infer: inferReshape,
	},
	"Transpose": {
		Inputs:   1,
		Ranks:    []int{2, 3, 4},
		Attrs:    map[string]AttrKind{"perm": AttrInts},
		Required: []string{"perm"},
		Allowed:  "rank 2-4 with an explicit perm",
		infer:    inferTranspose,
	},
	"Concat": {
		Inputs:   2,
		Variadic: true,
		Ranks:    []int{1, 2, 3},
		Attrs:    map[string]AttrKind{"axis": AttrInt},
		Required: []string{"axis"},
		Allowed:  "two or more inputs of one rank (1-3), a non-negative axis; negative axes fail in gorgonnx",
		infer:    inferConcat,
	},
	"Constant": {
		Inputs:   0,
		Attrs:    map[string]AttrKind{"value": AttrTensor},
		Required: []string{"value"},
		Allowed:  "a float32 or int64 tensor value of rank 0-4; its output may feed MatMul, Reshape, Identity and same-shape Add/Sub/Mul/Div",
		infer:    inferConstant,
	},
}

// VerifiedOpTypes lists the verified op types in sorted order.
func VerifiedOpTypes() []string { return slices.Sorted(maps.Keys(VerifiedOps)) }

// ErrUnverifiedOp is returned (wrapped) for an op outside the verified set.
var ErrUnverifiedOp = errors.New("op outside the verified set")

// CheckNode checks one node against the verified set and returns what it
// produces. Errors say what is wrong; they do not name the node, the caller
// knows which one it is.
func CheckNode(n Node) (Operand, error) {
	rule, ok := VerifiedOps[n.Op]
	if !ok {
		return Operand{}, fmt.Errorf("%w (verified: %s)", ErrUnverifiedOp, strings.Join(VerifiedOpTypes(), ", "))
	}
	switch {
	case rule.Variadic && len(n.Inputs) < rule.Inputs:
		return Operand{}, fmt.Errorf("%s takes at least %d inputs, got %d", n.Op, rule.Inputs, len(n.Inputs))
	case !rule.Variadic && len(n.Inputs) != rule.Inputs:
		return Operand{}, fmt.Errorf("%s takes %d inputs, got %d", n.Op, rule.Inputs, len(n.Inputs))
	}
	for i, in := range n.Inputs {
		if in.FromConstantNode && !rule.ConstantNodeInputs {
			return Operand{}, fmt.Errorf("input %d is a Constant node's output, which gorgonnx cannot feed to %s; use an initializer", i, n.Op)
		}
		if slices.Contains(rule.Int64Inputs, i) {
			if in.Type != Int64 || in.Ints == nil {
				return Operand{}, fmt.Errorf("input %d must be a constant int64 tensor (an initializer or a Constant node)", i)
			}
			continue
		}
		if in.Type != Float32 {
			return Operand{}, fmt.Errorf("input %d is %v, want float32", i, in.Type)
		}
		if !slices.Contains(rule.Ranks, len(in.Shape)) {
			return Operand{}, fmt.Errorf("input %d has rank %d (shape %v); %s is verified for ranks %v only", i, len(in.Shape), in.Shape, n.Op, rule.Ranks)
		}
		for _, d := range in.Shape {
			if d < 1 {
				return Operand{}, fmt.Errorf("input %d has shape %v; every dimension must be at least 1", i, in.Shape)
			}
		}
	}
	for name, v := range n.Attrs {
		kind, ok := rule.Attrs[name]
		if !ok {
			return Operand{}, fmt.Errorf("attribute %q is not verified for %s", name, n.Op)
		}
		if !attrIs(v, kind) {
			return Operand{}, fmt.Errorf("attribute %q must be of kind %v, got %T", name, kind, v)
		}
	}
	for _, name := range rule.Required {
		if _, ok := n.Attrs[name]; !ok {
			return Operand{}, fmt.Errorf("attribute %q is required", name)
		}
	}
	out, err := rule.infer(n.Inputs, n.Attrs)
	if err != nil {
		return Operand{}, err
	}
	if len(out.Shape) > MaxRank {
		return Operand{}, fmt.Errorf("output rank %d exceeds %d", len(out.Shape), MaxRank)
	}
	return out, nil
}

func attrIs(v any, k AttrKind) bool {
	switch v.(type) {
	case int64:
		return k == AttrInt
	case float32:
		return k == AttrFloat
	case []int64:
		return k == AttrInts
	case TensorAttr:
		return k == AttrTensor
	}
	return false
}

func floatOf(s Shape) Operand { return Operand{Shape: slices.Clone(s), Type: Float32} }

func inferMatMul(in []Operand, _ map[string]any) (Operand, error) {
	a, b := in[0].Shape, in[1].Shape
	if a[1] != b[0] {
		return Operand{}, fmt.Errorf("%v · %v: inner dimensions differ", a, b)
	}
	return floatOf(Shape{a[0], b[1]}), nil
}

func inferGemm(in []Operand, attrs map[string]any) (Operand, error) {
	a, b, c := in[0].Shape, in[1].Shape, in[2].Shape
	if len(a) != 2 || len(b) != 2 {
		return Operand{}, fmt.Errorf("inputs A %v and B %v must be 2-D", a, b)
	}
	for _, name := range []string{"transA", "transB"} {
		if v, ok := attrs[name]; ok && v.(int64) != 0 && v.(int64) != 1 {
			return Operand{}, fmt.Errorf("%s must be 0 or 1, got %d", name, v)
		}
	}
	m, k := a[0], a[1]
	if t, _ := attrs["transA"].(int64); t == 1 {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if t, _ := attrs["transB"].(int64); t == 1 {
		kb, n = n, kb
	}
	if k != kb {
		return Operand{}, fmt.Errorf("inputs A %v and B %v: inner dimensions differ", a, b)
	}
	rowOrScalar := slices.Equal(c, Shape{1}) || slices.Equal(c, Shape{1, 1}) ||
		slices.Equal(c, Shape{n}) || slices.Equal(c, Shape{1, n})
	if !rowOrScalar {
		return Operand{}, fmt.Errorf("input C %v: want [1], [1,1], [%d] or [1,%d] for a [%d,%d] result", c, n, n, m, n)
	}
	if c.Size() == m*n {
		return Operand{}, fmt.Errorf("input C %v is as large as the [%d,%d] result: gorgonnx would write into C and accumulate across runs; use MatMul then Add", c, m, n)
	}
	return floatOf(Shape{m, n}), nil
}

func inferElementwise(in []Operand, _ map[string]any) (Operand, error) {
	a, b := in[0].Shape, in[1].Shape
	if slices.Equal(a, b) {
		if len(a) == 0 {
			return Operand{}, errors.New("both operands are scalars; give them shape [1]")
		}
		return floatOf(a), nil
	}
	if in[0].FromConstantNode || in[1].FromConstantNode {
		return Operand{}, fmt.Errorf("shapes %v and %v need broadcasting, which fails for a Constant node's output; use an initializer", a, b)
	}
	big, small := a, b
	if len(b) > len(a) || (len(a) == len(b) && b.Size() > a.Size()) {
		big, small = b, a
	}
	switch {
	case len(small) == 0 && len(big) >= 1:
		return floatOf(big), nil
	case len(small) == 1 && small[0] == 1 && len(big) >= 2:
		return floatOf(big), nil
	case len(small) == 1 && len(big) == 2 && small[0] == big[1]:
		if big[0] == big[1] {
			return Operand{}, fmt.Errorf("shapes %v and %v: gorgonnx cannot broadcast a 1-D operand over a square matrix; give it shape [1,%d]", a, b, small[0])
		}
		return floatOf(big), nil
	case len(small) == 2 && len(big) == 2 &&
		(small[0] == 1 || small[0] == big[0]) && (small[1] == 1 || small[1] == big[1]):
		return floatOf(big), nil
	}
	return Operand{}, fmt.Errorf("shapes %v and %v: broadcast not verified (verified: %s)", a, b, elementwiseAllowed)
}

func inferSoftmax(in []Operand, attrs map[string]any) (Operand, error) {
	if v, ok := attrs["axis"]; ok && v.(int64) != 1 && v.(int64) != -1 {
		return Operand{}, fmt.Errorf("axis %d: only axis 1 or -1 of a 2-D input is computed correctly", v)
	}
	return floatOf(in[0].Shape), nil
}

func inferReshape(in []Operand, _ map[string]any) (Operand, error) {
	if in[0].FromConstantNode {
		return Operand{}, errors.New("reshaping a Constant node's output is not verified; use an initializer")
	}
	target := in[1]
	if len(target.Shape) != 1 {
		return Operand{}, fmt.Errorf("the target shape must be 1-D, got shape %v", target.Shape)
	}
	if len(target.Ints) < 1 || len(target.Ints) > MaxRank {
		return Operand{}, fmt.Errorf("target %v: want 1 to %d dimensions", target.Ints, MaxRank)
	}
	out := make(Shape, len(target.Ints))
	for i, d := range target.Ints {
		if d < 1 {
			return Operand{}, fmt.Errorf("target %v: dimension %d is %d; give every dimension explicitly", target.Ints, i, d)
		}
		out[i] = int(d)
	}
	if out.Size() != in[0].Shape.Size() {
		return Operand{}, fmt.Errorf("%v to %v: element counts differ", in[0].Shape, out)
	}
	return floatOf(out), nil
}

func inferTranspose(in []Operand, attrs map[string]any) (Operand, error) {
	perm := attrs["perm"].([]int64)
	x := in[0].Shape
	if len(perm) != len(x) {
		return Operand{}, fmt.Errorf("perm %v for a rank-%d input", perm, len(x))
	}
	out := make(Shape, len(x))
	seen := make([]bool, len(x))
	for i, p := range perm {
		if p < 0 || int(p) >= len(x) || seen[p] {
			return Operand{}, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, len(x)-1)
		}
		seen[p] = true
		out[i] = x[p]
	}
	return floatOf(out), nil
}

func inferConcat(in []Operand, attrs map[string]any) (Operand, error) {
	axis := attrs["axis"].(int64)
	first := in[0].Shape
	if axis < 0 || int(axis) >= len(first) {
		return Operand{}, fmt.Errorf("axis %d: want 0..%d (negative axes fail in gorgonnx)", axis, len(first)-1)
	}
	out := slices.Clone(first)
	for i, o := range in[1:] {
		s := o.Shape
		if len(s) != len(first) {
			return Operand{}, fmt.Errorf("input %d has rank %d, input 0 rank %d", i+1, len(s), len(first))
		}
		for d := range s {
			if d != int(axis) && s[d] != first[d] {
				return Operand{}, fmt.Errorf("input %d shape %v differs from input 0 shape %v outside axis %d", i+1, s, first, axis)
			}
		}
		out[axis] += s[axis]
	}
	return floatOf(out), nil
}

func inferConstant(_ []Operand, attrs map[string]any) (Operand, error) {
	t := attrs["value"].(TensorAttr)
	if len(t.Shape) > MaxRank {
		return Operand{}, fmt.Errorf("a value of rank %d exceeds %d", len(t.Shape), MaxRank)
	}
	switch t.Type {
	case Float32:
		return Operand{Shape: slices.Clone(t.Shape), Type: Float32, FromConstantNode: true}, nil
	case Int64:
		return Operand{Shape: slices.Clone(t.Shape), Type: Int64, FromConstantNode: true, Ints: slices.Clone(t.Ints)}, nil
	}
	return Operand{}, fmt.Errorf("a value of type %v: want float32 or int64", t.Type)
}
