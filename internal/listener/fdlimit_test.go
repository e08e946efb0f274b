package listener

import "testing"

// TestCapConnections: the client connections leave a quarter of the open-file
// limit to everything else.
func TestCapConnections(t *testing.T) {
	tests := []struct {
		conns int
		limit uint64
		want  int
	}{
		{10000, 0, 10000},
		{10000, 1048576, 10000},
		{10000, 1024, 768},
		{100, 1024, 100},
		{10000, 1, 1},
	}
	for _, tt := range tests {
		if got := CapConnections(tt.conns, tt.limit); got != tt.want {
			t.Errorf("CapConnections(%d, %d) = %d; want %d", tt.conns, tt.limit, got, tt.want)
		}
	}
}
