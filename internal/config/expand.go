package config

import (
	"sort"
	"strconv"
	"strings"
)

// expandEnv replaces every ${NAME} in s with the value lookupEnv gives for
// NAME, where NAME is [A-Za-z_][A-Za-z0-9_]*. "$${" is a literal "${"; any
// other "$" is left as is, so that a value such as "pa$$word" needs no
// escaping. The result is not expanded again. used reports whether a
// variable was substituted; missing lists the variables that are not set, in
// order, and each of them expands to "".
func expandEnv(s string, lookupEnv func(string) (string, bool)) (out string, used bool, missing []string) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += len("$${")
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 || !isEnvName(s[i+2:i+end]) {
				b.WriteByte('$')
				i++
				continue
			}
			name := s[i+2 : i+end]
			if v, ok := lookupEnv(name); ok {
				b.WriteString(v)
				used = true
			} else {
				missing = append(missing, name)
			}
			i += end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), used, missing
}

// isEnvName reports whether s is a valid environment variable name for ${NAME}.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// minHidden is the shortest environment value hidden wherever it appears in
// an error; a shorter one (a port, "true") is hidden only where it is a whole
// quoted value, so that "must be at least 1" keeps its 1.
const minHidden = 8

// hideEnvValues replaces, in every message, each value that came from the
// environment with its ${NAME}: any variable may hold a secret, and a value
// put in the wrong field would otherwise be quoted back.
func hideEnvValues(errs Errors, substituted map[string]string) {
	names := sortedKeys(substituted)
	sort.SliceStable(names, func(i, j int) bool { return len(substituted[names[i]]) > len(substituted[names[j]]) })
	for _, e := range errs {
		for _, name := range names {
			v, ref := substituted[name], "${"+name+"}"
			if v == "" {
				continue
			}
			quoted := strconv.Quote(v)
			e.Msg = strings.ReplaceAll(e.Msg, quoted, strconv.Quote(ref))
			if len(v) >= minHidden {
				e.Msg = strings.ReplaceAll(e.Msg, quoted[1:len(quoted)-1], ref)
				e.Msg = strings.ReplaceAll(e.Msg, v, ref)
			}
		}
	}
}
