package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"unicode/utf8"
)

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// jsonBytes returns b as a JSON string field: b itself if it is valid UTF-8,
// else its standard base64 encoding, with encoding "base64" to say so.
// Keys and values are bytes; most are text, and text should read as text.
func jsonBytes(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
