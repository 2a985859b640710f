package metrics

// pyNum is a number in sacrebleu's bootstrap arithmetic: a Python float, or
// a NumPy float32 scalar (sacrebleu sums resampled statistics as float32).
// NumPy 2 treats Python scalars as "weak": an operation with a float32
// operand converts the Python value to float32 and computes in float32.
type pyNum struct {
	v   float64
	f32 bool
}

func pyFloat(v float64) pyNum   { return pyNum{v: v} }
func npFloat32(v float32) pyNum { return pyNum{v: float64(v), f32: true} }

func (a pyNum) binop(b pyNum, op byte) pyNum {
	if a.f32 || b.f32 {
		x, y := float32(a.v), float32(b.v)
		var r float32
		switch op {
		case '+':
			r = x + y
		case '-':
			r = x - y
		case '*':
			r = x * y
		case '/':
			r = x / y
		}
		return npFloat32(r)
	}
	var r float64
	switch op {
	case '+':
		r = a.v + b.v
	case '-':
		r = a.v - b.v
	case '*':
		r = a.v * b.v
	case '/':
		r = a.v / b.v
	}
	return pyFloat(r)
}

func (a pyNum) add(b pyNum) pyNum { return a.binop(b, '+') }
func (a pyNum) mul(b pyNum) pyNum { return a.binop(b, '*') }
func (a pyNum) div(b pyNum) pyNum { return a.binop(b, '/') }
