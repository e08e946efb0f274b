package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// JSONLines is implemented by a slog.Handler that writes each record as a
// line of JSON to a writer, and lets the access log write its lines there
// itself: built into a reused buffer, one Write each, in the handler's
// format ("time", "level", "msg", then the attributes), without slog's
// generic attribute handling, which cost about 4% of the gateway's CPU per
// request. The Handler uses it only when its Logger's handler implements it
// (a handler with attributes or groups added does not).
type JSONLines interface {
	JSONLines() io.Writer
}

// lineBufs are the access log's line buffers.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeLine writes the access-log line of attrs to w as slog's JSONHandler
// would, at level INFO with message "request".
func writeLine(w io.Writer, t time.Time, attrs []slog.Attr) {
	bp := lineBufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request"`...)
	for _, a := range attrs {
		b = append(b, ',')
		b = wire.AppendString(b, a.Key)
		b = append(b, ':')
		b = appendJSONValue(b, a.Value)
	}
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		lineBufs.Put(bp)
	}
}

// appendJSONValue appends v as slog's JSONHandler writes it: durations in
// nanoseconds, floats as encoding/json writes them.
func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return wire.AppendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindFloat64:
		if f := v.Float64(); !math.IsInf(f, 0) && !math.IsNaN(f) {
			return appendFloat(b, f)
		}
	}
	j, err := json.Marshal(v.Resolve().Any())
	if err != nil {
		return wire.AppendString(b, "!ERROR:"+err.Error())
	}
	return append(b, j...)
}

// appendFloat formats f as encoding/json does: plain decimal between 1e-6
// and 1e21, exponent form outside with a one-digit exponent unpadded.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 becomes 1e-7.
		if n := len(b) - start; n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}
