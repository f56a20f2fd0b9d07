// Package cachedir says where nkscript keeps what it can make again:
// microVM kernels and compiled BPF objects.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is $NKSCRIPT_CACHE, or nkscript's directory under the user's cache
// directory ($XDG_CACHE_HOME/nkscript, else ~/.cache/nkscript): each user
// has their own, and a non-root user never writes root's.
func Dir() (string, error) {
	if d := os.Getenv("NKSCRIPT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return filepath.Join(d, "nkscript"), nil
}
