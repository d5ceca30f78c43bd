// Package cliflag holds the checks the commands share on their flags.
package cliflag

import (
	"fmt"

	flag "github.com/spf13/pflag"
)

// RefuseEmpty refuses each named flag given on the command line with an
// empty value: a typed "" is not "unset", and a path or name that is
// empty has no meaning.
func RefuseEmpty(fs *flag.FlagSet, names ...string) error {
	for _, name := range names {
		if f := fs.Lookup(name); f != nil && f.Changed && f.Value.String() == "" {
			return fmt.Errorf("--%s \"\": give a value or leave the flag out", name)
		}
	}
	return nil
}
