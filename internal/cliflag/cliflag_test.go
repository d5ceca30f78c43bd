package cliflag

import (
	"testing"

	flag "github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRefuseEmpty(t *testing.T) {
	parse := func(args ...string) *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.String("out", "", "")
		fs.String("model", "m.gguf", "")
		require.NoError(t, fs.Parse(args))
		return fs
	}
	assert.NoError(t, RefuseEmpty(parse(), "out", "model"), "not given")
	assert.NoError(t, RefuseEmpty(parse("--out", "dir"), "out", "model"))
	assert.EqualError(t, RefuseEmpty(parse("--out", ""), "out", "model"), `--out "": give a value or leave the flag out`)
	assert.EqualError(t, RefuseEmpty(parse("--model="), "out", "model"), `--model "": give a value or leave the flag out`)
	assert.NoError(t, RefuseEmpty(parse("--out", ""), "model", "unknown"), "only the named flags")
}
