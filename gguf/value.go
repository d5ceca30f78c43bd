package gguf

import (
	"fmt"
	"math"
	"strings"
)

// ValueType is the type tag of a GGUF metadata value (enum gguf_type).
type ValueType uint32

// GGUF metadata value types. The numeric values are part of the file format.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12

	numValueTypes = 13
)

var valueTypeNames = [numValueTypes]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

// String returns the lower-case name of the type ("uint32", "array", ...).
func (t ValueType) String() string {
	if t < numValueTypes {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(t))
}

// Valid reports whether t is a defined GGUF value type.
func (t ValueType) Valid() bool { return t < numValueTypes }

// fixedSize returns the encoded size of a fixed-size scalar type, or 0 for
// strings and arrays.
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// minEncodedSize is the smallest number of bytes one value of type t can
// occupy in a file. It is used to bound counts read from untrusted input.
func (t ValueType) minEncodedSize() int {
	switch t {
	case TypeString:
		return 8 // uint64 length
	case TypeArray:
		return 12 // uint32 element type + uint64 count
	}
	return t.fixedSize()
}

// Elem is the set of Go types that can be stored as GGUF array elements
// (and scalar values). Nested arrays use Array.
type Elem interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// Array is a GGUF array value. Values holds a typed slice matching Type:
// []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool,
// []string, []uint64, []int64, []float64, or []Array for nested arrays
// (Type == TypeArray).
type Array struct {
	Type   ValueType
	Values any
}

// NewArray returns an array holding s (not copied).
func NewArray[T Elem](s []T) Array {
	if s == nil {
		s = []T{}
	}
	return Array{Type: typeOfElem[T](), Values: s}
}

// NestedArray returns an array whose elements are arrays (which may have
// different element types and lengths). Nested arrays are valid GGUF, but
// note that llama.cpp's own gguf reader rejects them ("invalid GGUF type"),
// so do not put them into files meant for llama.cpp.
func NestedArray(elems ...Array) Array {
	if elems == nil {
		elems = []Array{}
	}
	return Array{Type: TypeArray, Values: elems}
}

func typeOfElem[T Elem]() ValueType {
	var z T
	switch any(z).(type) {
	case uint8:
		return TypeUint8
	case int8:
		return TypeInt8
	case uint16:
		return TypeUint16
	case int16:
		return TypeInt16
	case uint32:
		return TypeUint32
	case int32:
		return TypeInt32
	case float32:
		return TypeFloat32
	case bool:
		return TypeBool
	case string:
		return TypeString
	case uint64:
		return TypeUint64
	case int64:
		return TypeInt64
	case float64:
		return TypeFloat64
	}
	panic("unreachable")
}

// Len returns the number of elements, or 0 if Values is not a valid slice.
func (a Array) Len() int {
	switch s := a.Values.(type) {
	case []uint8:
		return len(s)
	case []int8:
		return len(s)
	case []uint16:
		return len(s)
	case []int16:
		return len(s)
	case []uint32:
		return len(s)
	case []int32:
		return len(s)
	case []float32:
		return len(s)
	case []bool:
		return len(s)
	case []string:
		return len(s)
	case []uint64:
		return len(s)
	case []int64:
		return len(s)
	case []float64:
		return len(s)
	case []Array:
		return len(s)
	}
	return 0
}

// validate checks that Values is a slice of the Go type matching Type,
// recursively for nested arrays.
func (a Array) validate(depth int) error {
	if depth > maxArrayDepth {
		return fmt.Errorf("array nesting deeper than %d", maxArrayDepth)
	}
	ok := false
	switch s := a.Values.(type) {
	case []uint8:
		ok = a.Type == TypeUint8
	case []int8:
		ok = a.Type == TypeInt8
	case []uint16:
		ok = a.Type == TypeUint16
	case []int16:
		ok = a.Type == TypeInt16
	case []uint32:
		ok = a.Type == TypeUint32
	case []int32:
		ok = a.Type == TypeInt32
	case []float32:
		ok = a.Type == TypeFloat32
	case []bool:
		ok = a.Type == TypeBool
	case []string:
		ok = a.Type == TypeString
	case []uint64:
		ok = a.Type == TypeUint64
	case []int64:
		ok = a.Type == TypeInt64
	case []float64:
		ok = a.Type == TypeFloat64
	case []Array:
		if a.Type != TypeArray {
			break
		}
		for i, e := range s {
			if err := e.validate(depth + 1); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		ok = true
	}
	if !ok {
		return fmt.Errorf("array of %s holds %T", a.Type, a.Values)
	}
	return nil
}

// ArrayAs returns the elements of a as []T, or an error wrapping
// ErrTypeMismatch if the element type differs.
func ArrayAs[T Elem](a Array) ([]T, error) {
	s, ok := a.Values.([]T)
	if !ok || a.Type != typeOfElem[T]() {
		return nil, fmt.Errorf("%w: array of %s, want array of %s", ErrTypeMismatch, a.Type, typeOfElem[T]())
	}
	return s, nil
}

// Ints returns the elements of an array of any integer type as int64.
// uint64 elements above math.MaxInt64 are reported as an error.
func (a Array) Ints() ([]int64, error) {
	switch s := a.Values.(type) {
	case []uint8:
		return convInts(s), nil
	case []int8:
		return convInts(s), nil
	case []uint16:
		return convInts(s), nil
	case []int16:
		return convInts(s), nil
	case []uint32:
		return convInts(s), nil
	case []int32:
		return convInts(s), nil
	case []int64:
		return convInts(s), nil
	case []uint64:
		out := make([]int64, len(s))
		for i, v := range s {
			if v > math.MaxInt64 {
				return nil, fmt.Errorf("%w: element %d (%d) overflows int64", ErrTypeMismatch, i, v)
			}
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: array of %s is not an integer array", ErrTypeMismatch, a.Type)
}

func convInts[T uint8 | int8 | uint16 | int16 | uint32 | int32 | int64](s []T) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

// clone returns a deep copy of a.
func (a Array) clone() Array {
	switch s := a.Values.(type) {
	case []uint8:
		return Array{a.Type, append([]uint8{}, s...)}
	case []int8:
		return Array{a.Type, append([]int8{}, s...)}
	case []uint16:
		return Array{a.Type, append([]uint16{}, s...)}
	case []int16:
		return Array{a.Type, append([]int16{}, s...)}
	case []uint32:
		return Array{a.Type, append([]uint32{}, s...)}
	case []int32:
		return Array{a.Type, append([]int32{}, s...)}
	case []float32:
		return Array{a.Type, append([]float32{}, s...)}
	case []bool:
		return Array{a.Type, append([]bool{}, s...)}
	case []string:
		return Array{a.Type, append([]string{}, s...)}
	case []uint64:
		return Array{a.Type, append([]uint64{}, s...)}
	case []int64:
		return Array{a.Type, append([]int64{}, s...)}
	case []float64:
		return Array{a.Type, append([]float64{}, s...)}
	case []Array:
		out := make([]Array, len(s))
		for i, e := range s {
			out[i] = e.clone()
		}
		return Array{a.Type, out}
	}
	return a
}

// String formats the array for humans; long arrays are abbreviated.
func (a Array) String() string {
	const maxShown = 8
	n := a.Len()
	var b strings.Builder
	fmt.Fprintf(&b, "[%s x %d: ", a.Type, n)
	for i := 0; i < n && i < maxShown; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatElem(a, i))
	}
	if n > maxShown {
		b.WriteString(", ...")
	}
	b.WriteString("]")
	return b.String()
}

func formatElem(a Array, i int) string {
	switch s := a.Values.(type) {
	case []string:
		return fmt.Sprintf("%q", s[i])
	case []Array:
		return s[i].String()
	case []uint8:
		return fmt.Sprint(s[i])
	case []int8:
		return fmt.Sprint(s[i])
	case []uint16:
		return fmt.Sprint(s[i])
	case []int16:
		return fmt.Sprint(s[i])
	case []uint32:
		return fmt.Sprint(s[i])
	case []int32:
		return fmt.Sprint(s[i])
	case []float32:
		return fmt.Sprint(s[i])
	case []bool:
		return fmt.Sprint(s[i])
	case []uint64:
		return fmt.Sprint(s[i])
	case []int64:
		return fmt.Sprint(s[i])
	case []float64:
		return fmt.Sprint(s[i])
	}
	return "?"
}

// Value is a typed GGUF metadata value. The zero Value is invalid; build
// values with the constructors (Uint32, String, Slice, ...) or ValueOf.
type Value struct {
	typ ValueType
	x   any // uint8 ... float64, string, bool, or Array
}

// Scalar constructors.
func Uint8(v uint8) Value     { return Value{TypeUint8, v} }
func Int8(v int8) Value       { return Value{TypeInt8, v} }
func Uint16(v uint16) Value   { return Value{TypeUint16, v} }
func Int16(v int16) Value     { return Value{TypeInt16, v} }
func Uint32(v uint32) Value   { return Value{TypeUint32, v} }
func Int32(v int32) Value     { return Value{TypeInt32, v} }
func Float32(v float32) Value { return Value{TypeFloat32, v} }
func Bool(v bool) Value       { return Value{TypeBool, v} }
func String(v string) Value   { return Value{TypeString, v} }
func Uint64(v uint64) Value   { return Value{TypeUint64, v} }
func Int64(v int64) Value     { return Value{TypeInt64, v} }
func Float64(v float64) Value { return Value{TypeFloat64, v} }

// ArrayValue wraps an Array as a Value.
func ArrayValue(a Array) Value { return Value{TypeArray, a} }

// Slice returns an array value holding s (not copied).
func Slice[T Elem](s []T) Value { return ArrayValue(NewArray(s)) }

// ValueOf converts a Go value to a Value. It accepts the Go types listed in
// Elem, slices of them, Array, []Array and Value.
func ValueOf(x any) (Value, error) {
	switch v := x.(type) {
	case Value:
		if !v.Valid() {
			return Value{}, fmt.Errorf("gguf: invalid Value")
		}
		return v, nil
	case uint8:
		return Uint8(v), nil
	case int8:
		return Int8(v), nil
	case uint16:
		return Uint16(v), nil
	case int16:
		return Int16(v), nil
	case uint32:
		return Uint32(v), nil
	case int32:
		return Int32(v), nil
	case float32:
		return Float32(v), nil
	case bool:
		return Bool(v), nil
	case string:
		return String(v), nil
	case uint64:
		return Uint64(v), nil
	case int64:
		return Int64(v), nil
	case float64:
		return Float64(v), nil
	case []uint8:
		return Slice(v), nil
	case []int8:
		return Slice(v), nil
	case []uint16:
		return Slice(v), nil
	case []int16:
		return Slice(v), nil
	case []uint32:
		return Slice(v), nil
	case []int32:
		return Slice(v), nil
	case []float32:
		return Slice(v), nil
	case []bool:
		return Slice(v), nil
	case []string:
		return Slice(v), nil
	case []uint64:
		return Slice(v), nil
	case []int64:
		return Slice(v), nil
	case []float64:
		return Slice(v), nil
	case Array:
		if err := v.validate(0); err != nil {
			return Value{}, fmt.Errorf("gguf: %w", err)
		}
		return ArrayValue(v), nil
	case []Array:
		return ValueOf(NestedArray(v...))
	}
	return Value{}, fmt.Errorf("gguf: unsupported Go type %T for a metadata value", x)
}

// MustValueOf is like ValueOf but panics on error. Intended for literals.
func MustValueOf(x any) Value {
	v, err := ValueOf(x)
	if err != nil {
		panic(err)
	}
	return v
}

// Type returns the value's type (TypeArray for arrays).
func (v Value) Type() ValueType { return v.typ }

// Valid reports whether v holds a well-formed value.
func (v Value) Valid() bool { return v.validate() == nil }

func (v Value) validate() error {
	ok := false
	switch x := v.x.(type) {
	case uint8:
		ok = v.typ == TypeUint8
	case int8:
		ok = v.typ == TypeInt8
	case uint16:
		ok = v.typ == TypeUint16
	case int16:
		ok = v.typ == TypeInt16
	case uint32:
		ok = v.typ == TypeUint32
	case int32:
		ok = v.typ == TypeInt32
	case float32:
		ok = v.typ == TypeFloat32
	case bool:
		ok = v.typ == TypeBool
	case string:
		ok = v.typ == TypeString
	case uint64:
		ok = v.typ == TypeUint64
	case int64:
		ok = v.typ == TypeInt64
	case float64:
		ok = v.typ == TypeFloat64
	case Array:
		if v.typ != TypeArray {
			break
		}
		return x.validate(1)
	}
	if !ok {
		return fmt.Errorf("invalid value (type %s holding %T)", v.typ, v.x)
	}
	return nil
}

// Any returns the underlying Go value: one of the Elem types or Array.
func (v Value) Any() any { return v.x }

// ArrayType returns the element type for array values and false otherwise.
func (v Value) ArrayType() (ValueType, bool) {
	a, ok := v.x.(Array)
	return a.Type, ok
}

func (v Value) mismatch(want string) error {
	return fmt.Errorf("%w: value is %s, want %s", ErrTypeMismatch, v.describe(), want)
}

func (v Value) describe() string {
	if a, ok := v.x.(Array); ok {
		return "array of " + a.Type.String()
	}
	return v.typ.String()
}

func as[T any](v Value, want ValueType) (T, error) {
	x, ok := v.x.(T)
	if !ok || v.typ != want {
		var z T
		return z, v.mismatch(want.String())
	}
	return x, nil
}

// Exact-type accessors. They fail with ErrTypeMismatch unless the stored type
// is exactly the requested one.
func (v Value) AsUint8() (uint8, error)     { return as[uint8](v, TypeUint8) }
func (v Value) AsInt8() (int8, error)       { return as[int8](v, TypeInt8) }
func (v Value) AsUint16() (uint16, error)   { return as[uint16](v, TypeUint16) }
func (v Value) AsInt16() (int16, error)     { return as[int16](v, TypeInt16) }
func (v Value) AsUint32() (uint32, error)   { return as[uint32](v, TypeUint32) }
func (v Value) AsInt32() (int32, error)     { return as[int32](v, TypeInt32) }
func (v Value) AsFloat32() (float32, error) { return as[float32](v, TypeFloat32) }
func (v Value) AsBool() (bool, error)       { return as[bool](v, TypeBool) }
func (v Value) AsString() (string, error)   { return as[string](v, TypeString) }
func (v Value) AsUint64() (uint64, error)   { return as[uint64](v, TypeUint64) }
func (v Value) AsInt64() (int64, error)     { return as[int64](v, TypeInt64) }
func (v Value) AsFloat64() (float64, error) { return as[float64](v, TypeFloat64) }
func (v Value) AsArray() (Array, error)     { return as[Array](v, TypeArray) }

// AsInt converts any integer-typed value to int64 (uint64 values above
// math.MaxInt64 are an error).
func (v Value) AsInt() (int64, error) {
	switch x := v.x.(type) {
	case uint8:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%w: uint64 value %d overflows int64", ErrTypeMismatch, x)
		}
		return int64(x), nil
	}
	return 0, v.mismatch("an integer")
}

// AsUint converts any non-negative integer-typed value to uint64.
func (v Value) AsUint() (uint64, error) {
	if x, ok := v.x.(uint64); ok {
		return x, nil
	}
	i, err := v.AsInt()
	if err != nil {
		return 0, err
	}
	if i < 0 {
		return 0, fmt.Errorf("%w: negative value %d, want an unsigned integer", ErrTypeMismatch, i)
	}
	return uint64(i), nil
}

// AsFloat converts a float32 or float64 value to float64.
func (v Value) AsFloat() (float64, error) {
	switch x := v.x.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, v.mismatch("a float")
}

// String formats the value for humans. Use AsString to get a string value.
func (v Value) String() string {
	switch x := v.x.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case Array:
		return x.String()
	case nil:
		return "<invalid>"
	}
	return fmt.Sprint(v.x)
}

func (v Value) clone() Value {
	if a, ok := v.x.(Array); ok {
		return Value{v.typ, a.clone()}
	}
	return v
}
