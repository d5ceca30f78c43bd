package gguf

import (
	"fmt"
)

// KV is one metadata key/value pair.
type KV struct {
	Key   string
	Value Value
}

// Metadata is an ordered list of key/value pairs. Order is preserved when
// reading and writing. Keys are unique in files produced by this package;
// lookups scan linearly (metadata has tens to hundreds of keys).
type Metadata []KV

// Index returns the position of key, or -1.
func (m Metadata) Index(key string) int {
	for i := range m {
		if m[i].Key == key {
			return i
		}
	}
	return -1
}

// Has reports whether key is present.
func (m Metadata) Has(key string) bool { return m.Index(key) >= 0 }

// Get returns the value stored under key.
func (m Metadata) Get(key string) (Value, bool) {
	if i := m.Index(key); i >= 0 {
		return m[i].Value, true
	}
	return Value{}, false
}

// Keys returns all keys in order.
func (m Metadata) Keys() []string {
	keys := make([]string, len(m))
	for i := range m {
		keys[i] = m[i].Key
	}
	return keys
}

// Set replaces the value of an existing key in place (keeping its position)
// or appends a new pair.
func (m *Metadata) Set(key string, v Value) {
	if i := m.Index(key); i >= 0 {
		(*m)[i].Value = v
		return
	}
	*m = append(*m, KV{Key: key, Value: v})
}

// Delete removes key and reports whether it was present.
func (m *Metadata) Delete(key string) bool {
	i := m.Index(key)
	if i < 0 {
		return false
	}
	*m = append((*m)[:i], (*m)[i+1:]...)
	return true
}

// Clone returns a deep copy.
func (m Metadata) Clone() Metadata {
	if m == nil {
		return nil
	}
	out := make(Metadata, len(m))
	for i, kv := range m {
		out[i] = KV{Key: kv.Key, Value: kv.Value.clone()}
	}
	return out
}

func (m Metadata) lookup(key string) (Value, error) {
	v, ok := m.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("%w: %q", ErrKeyNotFound, key)
	}
	return v, nil
}

func get[T any](m Metadata, key string, conv func(Value) (T, error)) (T, error) {
	v, err := m.lookup(key)
	if err != nil {
		var z T
		return z, err
	}
	x, err := conv(v)
	if err != nil {
		var z T
		return z, fmt.Errorf("key %q: %w", key, err)
	}
	return x, nil
}

// Typed getters. Missing keys yield an error wrapping ErrKeyNotFound, values
// of the wrong type an error wrapping ErrTypeMismatch.

func (m Metadata) GetUint8(key string) (uint8, error)     { return get(m, key, Value.AsUint8) }
func (m Metadata) GetInt8(key string) (int8, error)       { return get(m, key, Value.AsInt8) }
func (m Metadata) GetUint16(key string) (uint16, error)   { return get(m, key, Value.AsUint16) }
func (m Metadata) GetInt16(key string) (int16, error)     { return get(m, key, Value.AsInt16) }
func (m Metadata) GetUint32(key string) (uint32, error)   { return get(m, key, Value.AsUint32) }
func (m Metadata) GetInt32(key string) (int32, error)     { return get(m, key, Value.AsInt32) }
func (m Metadata) GetFloat32(key string) (float32, error) { return get(m, key, Value.AsFloat32) }
func (m Metadata) GetBool(key string) (bool, error)       { return get(m, key, Value.AsBool) }
func (m Metadata) GetString(key string) (string, error)   { return get(m, key, Value.AsString) }
func (m Metadata) GetUint64(key string) (uint64, error)   { return get(m, key, Value.AsUint64) }
func (m Metadata) GetInt64(key string) (int64, error)     { return get(m, key, Value.AsInt64) }
func (m Metadata) GetFloat64(key string) (float64, error) { return get(m, key, Value.AsFloat64) }
func (m Metadata) GetArray(key string) (Array, error)     { return get(m, key, Value.AsArray) }

// GetInt returns a value of any integer type as int64.
func (m Metadata) GetInt(key string) (int64, error) { return get(m, key, Value.AsInt) }

// GetUint returns a non-negative value of any integer type as uint64.
func (m Metadata) GetUint(key string) (uint64, error) { return get(m, key, Value.AsUint) }

// GetFloat returns a float32 or float64 value as float64.
func (m Metadata) GetFloat(key string) (float64, error) { return get(m, key, Value.AsFloat) }

// GetStrings returns an array of strings.
func (m Metadata) GetStrings(key string) ([]string, error) { return getSlice[string](m, key) }

// GetFloat32s returns an array of float32.
func (m Metadata) GetFloat32s(key string) ([]float32, error) { return getSlice[float32](m, key) }

// GetInt32s returns an array of int32.
func (m Metadata) GetInt32s(key string) ([]int32, error) { return getSlice[int32](m, key) }

// GetUint32s returns an array of uint32.
func (m Metadata) GetUint32s(key string) ([]uint32, error) { return getSlice[uint32](m, key) }

// GetInts returns an array of any integer type as []int64.
func (m Metadata) GetInts(key string) ([]int64, error) {
	return get(m, key, func(v Value) ([]int64, error) {
		a, err := v.AsArray()
		if err != nil {
			return nil, err
		}
		return a.Ints()
	})
}

func getSlice[T Elem](m Metadata, key string) ([]T, error) {
	return get(m, key, func(v Value) ([]T, error) {
		a, err := v.AsArray()
		if err != nil {
			return nil, err
		}
		return ArrayAs[T](a)
	})
}

// GetIntOr returns GetInt(key), or def when the key is absent. A present key
// with a non-integer value is still an error.
func (m Metadata) GetIntOr(key string, def int64) (int64, error) {
	if !m.Has(key) {
		return def, nil
	}
	return m.GetInt(key)
}

// Architecture returns general.architecture.
func (m Metadata) Architecture() (string, error) { return m.GetString(KeyArchitecture) }
