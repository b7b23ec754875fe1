package provider

import "bytes"

// The providers with the most traffic (Stripe first) read a handful of
// fields from each body. encoding/json would decode through reflection
// after validating; here the body is validated once (json.Valid) and then
// walked: members hands over each member of an object as raw bytes, and
// only the fields wanted are decoded. Keys match exactly (encoding/json
// also matches them case-insensitively); the last of repeated keys wins, as
// with encoding/json.

// members calls fn with each member of obj, a JSON object that the caller
// has validated: the key as written between its quotes (escapes not
// decoded) and the raw value without surrounding whitespace. It returns
// false, having called fn for nothing, when obj is not an object.
func members(obj []byte, fn func(key, val []byte)) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return true
		}
		if obj[i] == ',' {
			i++
			continue
		}
		if obj[i] != '"' {
			return true // not valid JSON: stop
		}
		end := skipString(obj, i)
		if end < 0 {
			return true
		}
		key := obj[i+1 : end-1]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return true
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return true
		}
		fn(key, obj[i:vend])
		i = vend
	}
}

// skipSpace returns the index of the first byte at or after i in b that is
// not JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index just after the JSON string that starts at
// b[i], or -1.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just after the JSON value that starts at
// b[i], or -1. It trusts b to be valid JSON (the caller checks the result).
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return i
}

// keyIs reports whether a raw key from members is name.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key) == name
	}
	s, ok := jsonString(append(append([]byte{'"'}, key...), '"'))
	return ok && s == name
}

// isNull reports whether a raw value is null.
func isNull(raw []byte) bool { return string(raw) == "null" }
