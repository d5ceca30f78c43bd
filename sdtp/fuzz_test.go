package sdtp

import (
	"math"
	"testing"
)

// FuzzParseSchedule: any flag text parses to an error or to a schedule
// that Validate judges without panicking; a valid one selects sanely.
func FuzzParseSchedule(f *testing.F) {
	f.Add("4,7,10", "0.9")
	f.Add("2, 5", "0.8,0.5")
	f.Add("", "")
	f.Add("-1,99999999999", "NaN")
	f.Fuzz(func(t *testing.T, layers, ratios string) {
		s, err := ParseSchedule(layers, ratios)
		if err != nil {
			return
		}
		if s.Validate(32) != nil {
			return
		}
		exp := s.Expected(100)
		for i := 1; i < len(exp); i++ {
			if exp[i] > exp[i-1] || exp[i] < 1 {
				t.Fatalf("expected counts %v not shrinking", exp)
			}
		}
		for _, r := range s.KeepRatios {
			if math.IsNaN(r) || r <= 0 || r > 1 {
				t.Fatalf("Validate let keep ratio %v through", r)
			}
		}
	})
}
