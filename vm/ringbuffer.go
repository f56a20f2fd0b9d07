package vm

import "sync"

// ringBuffer keeps the last 64 KiB written to it.
type ringBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const ringSize = 64 << 10

// Write keeps p, dropping what is older than the last 64 KiB.
func (b *ringBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > ringSize {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-ringSize:]...)
	}
	return len(p), nil
}

// String returns what the buffer keeps.
func (b *ringBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
