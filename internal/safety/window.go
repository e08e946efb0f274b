package safety

import "unicode/utf8"

// Windows cuts a text that arrives in pieces (a streamed answer) into
// windows of Size characters, each starting Overlap characters before the
// previous one ended, so that a phrase cut by a window's end is seen whole
// in the next. It holds only the text of the window being filled. It is not
// safe for concurrent use.
type Windows struct {
	size, overlap int
	buf           []byte // the text from the start of the window being filled
	runes         int    // characters in buf
	start         int    // characters before buf
	checked       int    // characters that were in a window returned so far
}

// NewWindows returns Windows of size characters overlapping by overlap
// (0 <= overlap < size).
func NewWindows(size, overlap int) *Windows {
	return &Windows{size: size, overlap: overlap}
}

// Add takes the next piece of the text and returns the windows it
// completed, in order.
func (w *Windows) Add(s string) []string {
	var out []string
	for s != "" {
		// Fill the current window up to size characters.
		take, n := 0, 0
		for take < len(s) && w.runes+n < w.size {
			_, sz := utf8.DecodeRuneInString(s[take:])
			take += sz
			n++
		}
		w.buf = append(w.buf, s[:take]...)
		w.runes += n
		s = s[take:]
		if w.runes < w.size {
			break
		}
		out = append(out, string(w.buf))
		w.checked = w.start + w.runes
		w.keepTail()
	}
	return out
}

// keepTail keeps the last overlap characters of a returned window as the
// start of the next.
func (w *Windows) keepTail() {
	drop := w.runes - w.overlap
	i := 0
	for range drop {
		_, sz := utf8.DecodeRune(w.buf[i:])
		i += sz
	}
	w.buf = append(w.buf[:0], w.buf[i:]...)
	w.start += drop
	w.runes = w.overlap
}

// Rest returns the last, partial window at the end of the text: what has
// not been in a window yet, with the overlap before it; "" when there is
// nothing new.
func (w *Windows) Rest() string {
	if w.start+w.runes <= w.checked {
		return ""
	}
	s := string(w.buf)
	w.checked = w.start + w.runes
	return s
}

// Checked returns how many characters of the text have been in a window
// returned by Add or Rest.
func (w *Windows) Checked() int { return w.checked }
