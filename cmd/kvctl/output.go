package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
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

// humanBytes returns n in bytes, KiB, MiB, GiB, ... with one decimal:
// "512 B", "1.5 KiB", "3.1 MiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago returns how long before now t was, to the second: "1m30s ago"; "-"
// for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%v ago", max(now.Sub(t), 0).Truncate(time.Second))
}

// count returns n things, "1 thing" for 1: "3 moves", "1 move".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// plain returns b for a line of text output: as is when it is valid UTF-8
// without control characters (a newline, a tab, ...), else quoted as a Go
// string ("a\nb"), so that each key or value stays on its line.
func plain(b []byte) string {
	if !utf8.Valid(b) || strings.ContainsFunc(string(b), unicode.IsControl) {
		return strconv.Quote(string(b))
	}
	return string(b)
}
