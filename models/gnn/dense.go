package gnn

import "slices"

// dense is a small row-major matrix for the plain-Go forward pass: the
// reference the exported graph must reproduce. The networks are tiny
// (tens of rows, ten columns), so naive loops are fast enough.
type dense struct {
	r, c int
	v    []float64
}

func newDense(r, c int) *dense { return &dense{r: r, c: c, v: make([]float64, r*c)} }

func (d *dense) at(i, j int) float64     { return d.v[i*d.c+j] }
func (d *dense) set(i, j int, v float64) { d.v[i*d.c+j] = v }
func (d *dense) clone() *dense           { return &dense{r: d.r, c: d.c, v: slices.Clone(d.v)} }

// mul is a·b; it panics on mismatched shapes, which only a bug can produce.
func mul(a, b *dense) *dense {
	if a.c != b.r {
		panic("gnn: mul shape mismatch")
	}
	out := newDense(a.r, b.c)
	for i := range a.r {
		row := out.v[i*b.c : (i+1)*b.c]
		for k := range a.c {
			aik := a.v[i*a.c+k]
			if aik == 0 {
				continue
			}
			brow := b.v[k*b.c : (k+1)*b.c]
			for j, bv := range brow {
				row[j] += aik * bv
			}
		}
	}
	return out
}

func transpose(a *dense) *dense {
	out := newDense(a.c, a.r)
	for i := range a.r {
		for j := range a.c {
			out.v[j*a.r+i] = a.v[i*a.c+j]
		}
	}
	return out
}

// concatRows stacks matrices with the same number of columns.
func concatRows(ds ...*dense) *dense {
	out := &dense{c: ds[0].c}
	for _, d := range ds {
		if d.c != out.c {
			panic("gnn: concat shape mismatch")
		}
		out.r += d.r
		out.v = append(out.v, d.v...)
	}
	return out
}

func add(a, b *dense) *dense {
	if a.r != b.r || a.c != b.c {
		panic("gnn: add shape mismatch")
	}
	out := a.clone()
	for i, v := range b.v {
		out.v[i] += v
	}
	return out
}

// addCol adds the [r, 1] column b to every column of a.
func addCol(a, b *dense) *dense {
	if b.r != a.r || b.c != 1 {
		panic("gnn: addCol shape mismatch")
	}
	out := a.clone()
	for i := range a.r {
		for j := range a.c {
			out.v[i*a.c+j] += b.v[i]
		}
	}
	return out
}

func apply(a *dense, f func(float64) float64) *dense {
	out := newDense(a.r, a.c)
	for i, v := range a.v {
		out.v[i] = f(v)
	}
	return out
}

// hadamard is the element-wise product of same-shaped matrices.
func hadamard(a, b *dense) *dense {
	if a.r != b.r || a.c != b.c {
		panic("gnn: hadamard shape mismatch")
	}
	out := a.clone()
	for i, v := range b.v {
		out.v[i] *= v
	}
	return out
}

// divide is the element-wise quotient of same-shaped matrices.
func divide(a, b *dense) *dense {
	if a.r != b.r || a.c != b.c {
		panic("gnn: divide shape mismatch")
	}
	out := a.clone()
	for i, v := range b.v {
		out.v[i] /= v
	}
	return out
}

// addScalar adds v to every element.
func addScalar(a *dense, v float64) *dense {
	out := a.clone()
	for i := range out.v {
		out.v[i] += v
	}
	return out
}
