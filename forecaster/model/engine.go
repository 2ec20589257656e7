package model

import (
	"errors"
	"fmt"
	"sync"

	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
)

// engine is one onnx-go model with its gorgonnx graph and execution machine.
// The machine keeps state between runs, so an engine must not be used by two
// goroutines at once.
type engine struct {
	graph   *gorgonnx.Graph
	input   onnx.DataCarrier
	inputT  tensor.Tensor
	inBuf   []float32 // backing of inputT: runs copy the new input into it
	outputs []engineOutput
	// broken is set after onnx-go panicked: the machine may be half-run.
	broken error
}

type engineOutput struct {
	name string
	size int
	node onnx.DataCarrier
}

// newEngine decodes an ONNX file with onnx-go. Its input tensor is bound
// before the first run: gorgonnx builds the expression graph from the tensor
// the input holds at that moment, and an unset input becomes a scalar.
func newEngine(onnxBytes []byte, input string, inShape Shape, outputs []string, outSizes []int) (e *engine, err error) {
	// gorgonnx names expression-graph nodes from an unguarded package-level
	// counter while it builds the graph (decode and first run): building two
	// engines at once is a data race. Later runs do not touch it.
	buildMu.Lock()
	defer buildMu.Unlock()
	defer recoverPanic(&err, "onnx-go decode")
	g := gorgonnx.NewGraph()
	m := onnx.NewModel(g)
	if err := m.UnmarshalBinary(onnxBytes); err != nil {
		return nil, fmt.Errorf("onnx-go decode: %w", err)
	}
	carrier := func(name string) (onnx.DataCarrier, error) {
		n, ok := m.GetNodeByName(name)
		if !ok {
			return nil, fmt.Errorf("onnx-go decode: no value named %q", name)
		}
		dc, ok := n.(onnx.DataCarrier)
		if !ok {
			return nil, fmt.Errorf("onnx-go decode: value %q carries no tensor", name)
		}
		return dc, nil
	}
	e = &engine{graph: g, inBuf: make([]float32, inShape.Size())}
	// Look the input up by name: onnx-go's SetInput(i) takes i as a node ID,
	// which is the i-th graph input only when no initializer is listed first.
	if e.input, err = carrier(input); err != nil {
		return nil, err
	}
	e.inputT = tensor.New(tensor.WithShape(inShape...), tensor.WithBacking(e.inBuf))
	if err := e.input.SetTensor(e.inputT); err != nil {
		return nil, fmt.Errorf("onnx-go: bind input %q: %w", input, err)
	}
	for i, name := range outputs {
		dc, err := carrier(name)
		if err != nil {
			return nil, err
		}
		e.outputs = append(e.outputs, engineOutput{name: name, size: outSizes[i], node: dc})
	}
	// The first run builds the expression graph and the machine; do it here,
	// under buildMu, on the zero input. Its outputs are not used.
	if _, err := e.run(e.inBuf); err != nil {
		return nil, fmt.Errorf("first run: %w", err)
	}
	return e, nil
}

var buildMu sync.Mutex

// run computes the outputs for one input. The returned slices belong to the
// machine and are overwritten by the next run: copy what you keep.
func (e *engine) run(in []float32) (outs [][]float32, err error) {
	if e.broken != nil {
		return nil, fmt.Errorf("session unusable after an earlier failure, create a new one: %w", e.broken)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("onnx-go run panicked: %v", r)
			e.broken = err
		}
	}()
	if len(in) != len(e.inBuf) {
		return nil, fmt.Errorf("input has %d values, want %d", len(in), len(e.inBuf))
	}
	copy(e.inBuf, in)
	// Rebinding the same tensor is cheap and makes sure the machine reads it
	// even if an op replaced the node's value during the previous run.
	if err := e.input.SetTensor(e.inputT); err != nil {
		return nil, fmt.Errorf("onnx-go: bind input: %w", err)
	}
	if err := e.graph.Run(); err != nil {
		// gorgonnx reports some failures as an error wrapping nil.
		if err.Error() == "" || err.Error() == "<nil>" {
			err = errors.New("run failed without a reason (a known gorgonnx failure on unsupported broadcasts)")
		}
		return nil, fmt.Errorf("onnx-go run: %w", err)
	}
	outs = make([][]float32, len(e.outputs))
	for i, o := range e.outputs {
		t := o.node.GetTensor()
		if t == nil {
			return nil, fmt.Errorf("onnx-go run: output %q has no value", o.name)
		}
		data, ok := t.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("onnx-go run: output %q is %T, want []float32", o.name, t.Data())
		}
		if len(data) != o.size {
			return nil, fmt.Errorf("onnx-go run: output %q has %d values, want %d", o.name, len(data), o.size)
		}
		outs[i] = data
	}
	return outs, nil
}

func recoverPanic(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s panicked: %v", what, r)
	}
}
