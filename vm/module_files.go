package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// stripSignatureFile removes the signature of the module in file (see
// stripModuleSignature).
func stripSignatureFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if s := stripModuleSignature(b); len(s) != len(b) {
		return os.WriteFile(file, s, 0o644)
	}
	return nil
}

// decompressModules writes the modules rels (relative to src) to dst
// uncompressed, so that the guest kernel need not decompress them.
func decompressModules(ctx context.Context, src, dst string, rels []string) error {
	byTool := map[string][]string{}
	for _, rel := range rels {
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		in := filepath.Join(src, rel)
		switch {
		case strings.HasSuffix(rel, ".xz"):
			byTool["xz"] = append(byTool["xz"], rel)
		case strings.HasSuffix(rel, ".zst"):
			byTool["zstd"] = append(byTool["zstd"], rel)
		default:
			if err := copyFile(in, out); err != nil {
				return err
			}
		}
	}
	for tool, list := range byTool {
		// Decompress in place in the (temporary) source tree, in batches
		// run in parallel, then move the results.
		var batches [][]string
		for len(list) > 0 {
			n := min(len(list), 200)
			batches = append(batches, list[:n])
			list = list[n:]
		}
		errc := make(chan error, len(batches))
		sem := make(chan struct{}, runtime.NumCPU())
		for _, b := range batches {
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				args := []string{"-d", "-q", "-f"}
				for _, rel := range b {
					args = append(args, filepath.Join(src, rel))
				}
				out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%s -d: %w: %s", tool, err, bytes.TrimSpace(out))
				}
				errc <- err
			}()
		}
		for range batches {
			if err := <-errc; err != nil {
				return fmt.Errorf("decompress modules: %w", err)
			}
		}
		for _, rel := range byTool[tool] {
			plain := uncompressedName(rel)
			if err := os.Rename(filepath.Join(src, plain), filepath.Join(dst, plain)); err != nil {
				return fmt.Errorf("decompress modules: %w", err)
			}
		}
	}
	return nil
}

// copyFile copies the file src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// moduleSigMagic ends a signed kernel module.
const moduleSigMagic = "~Module signature appended~\n"

// stripModuleSignature removes a module's appended signature: checking it
// is slow without KVM, and the kernel does not insist on it.
func stripModuleSignature(ko []byte) []byte {
	if !bytes.HasSuffix(ko, []byte(moduleSigMagic)) {
		return ko
	}
	// struct module_signature (12 bytes, sig_len big-endian last) precedes
	// the magic.
	end := len(ko) - len(moduleSigMagic)
	if end < 12 {
		return ko
	}
	info := ko[end-12 : end]
	sigLen := int(info[8])<<24 | int(info[9])<<16 | int(info[10])<<8 | int(info[11])
	if sigLen > end-12 {
		return ko
	}
	return ko[:end-12-sigLen]
}
