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

// WriteFile writes data to path through a temporary file in the same
// directory renamed into place, so that concurrent runs never see a
// partial file; it creates the directory with dirMode if it is missing.
func WriteFile(path string, data []byte, dirMode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}
