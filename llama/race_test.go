//go:build race

package llama

// raceEnabled: this test binary runs under the race detector (go test
// -race), whose shadow memory and metadata the leak tests allow for.
const raceEnabled = true
