package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseTxn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		wantErr string // "" for a valid transaction
		then    int    // with wantErr "": the operations of each branch
		els     int
	}{
		{"full", `{"if":[{"key":"k","version":{"eq":5}},{"key":"k","value":{"ne":"x"}},{"key":"k","create_version":{"gt":0}},{"key":"k","version":{"lt":9}}],
			"then":[{"put":{"key":"k","value":"v","ttl":"10s"}},{"del":{"key":"k"}},{"get":{"key":"k"}}],"else":[{"get":{"key":"k"}}]}`, "", 3, 1},
		{"no if", `{"then":[{"put":{"key":"k","value":""}}]}`, "", 1, 0},
		{"else only", `{"if":[{"key":"k","version":{"eq":0}}],"else":[{"get":{"key":"k"}}]}`, "", 0, 1},
		{"empty input", ``, "no transaction given", 0, 0},
		{"not JSON", `if k = 5`, "transaction: invalid character", 0, 0},
		{"two values", `{"then":[{"get":{"key":"k"}}]} {}`, "more than one JSON value", 0, 0},
		{"unknown field", `{"then":[{"get":{"key":"k"}}],"iff":[]}`, `unknown field "iff"`, 0, 0},
		{"unknown op field", `{"then":[{"put":{"key":"k","value":"v","tll":"1s"}}]}`, `unknown field "tll"`, 0, 0},
		{"no operations", `{"if":[{"key":"k","version":{"eq":1}}]}`, "transaction has no operation", 0, 0},
		{"compare without key", `{"if":[{"version":{"eq":1}}],"then":[{"get":{"key":"k"}}]}`, `if[0]: "key" is missing or empty`, 0, 0},
		{"compare without target", `{"if":[{"key":"k"}],"then":[{"get":{"key":"k"}}]}`, `if[0]: want exactly one of "version", "create_version", "value"; got 0`, 0, 0},
		{"compare with two targets", `{"if":[{"key":"k","version":{"eq":1},"value":{"eq":"x"}}],"then":[{"get":{"key":"k"}}]}`, "if[0]: want exactly one of", 0, 0},
		{"two relations", `{"if":[{"key":"k","version":{"eq":1,"gt":0}}],"then":[{"get":{"key":"k"}}]}`, `if[0]: version: want exactly one relation`, 0, 0},
		{"no relation", `{"if":[{"key":"k","version":{}}],"then":[{"get":{"key":"k"}}]}`, `if[0]: version: want exactly one relation`, 0, 0},
		{"unknown relation", `{"if":[{"key":"k","version":{"ge":1}}],"then":[{"get":{"key":"k"}}]}`, `if[0]: version: unknown relation "ge"`, 0, 0},
		{"negative version", `{"if":[{"key":"k","version":{"eq":-1}}],"then":[{"get":{"key":"k"}}]}`, "if[0]: version: eq: want a whole number >= 0, got -1", 0, 0},
		{"version as a string", `{"if":[{"key":"k","create_version":{"eq":"5"}}],"then":[{"get":{"key":"k"}}]}`, `if[0]: create_version: eq: want a whole number >= 0, got "5"`, 0, 0},
		{"value as a number", `{"if":[{"key":"k","value":{"eq":5}}],"then":[{"get":{"key":"k"}}]}`, "if[0]: value: eq: want a string, got 5", 0, 0},
		{"null operand", `{"if":[{"key":"k","value":{"eq":null}}],"then":[{"get":{"key":"k"}}]}`, "if[0]: value: eq: the operand is null", 0, 0},
		{"empty op", `{"then":[{}]}`, `then[0]: want exactly one of "put", "del", "get"; got 0`, 0, 0},
		{"two ops in one", `{"then":[{"get":{"key":"k"},"del":{"key":"k"}}]}`, `then[0]: want exactly one of "put", "del", "get"; got 2`, 0, 0},
		{"put without value", `{"then":[{"put":{"key":"k"}}]}`, `then[0].put: "value" is missing`, 0, 0},
		{"put without key", `{"then":[{"put":{"value":"v"}}]}`, `then[0].put: "key" is missing or empty`, 0, 0},
		{"bad ttl", `{"then":[{"get":{"key":"k"}}],"else":[{"put":{"key":"k","value":"v","ttl":"10"}}]}`, `else[0].put: "ttl" "10": want a duration > 0`, 0, 0},
		{"negative ttl", `{"then":[{"put":{"key":"k","value":"v","ttl":"-1s"}}]}`, `then[0].put: "ttl" "-1s": want a duration > 0`, 0, 0},
		{"del with empty key", `{"then":[{"del":{"key":""}}]}`, `then[0].del: "key" is missing or empty`, 0, 0},
		{"get without key", `{"then":[{"get":{}}]}`, `then[0].get: "key" is missing or empty`, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseTxn([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil || len(p.then) != tc.then || len(p.els) != tc.els ||
					len(p.txn.Then) != tc.then || len(p.txn.Else) != tc.els {
					t.Errorf("parseTxn(%s) = %d then, %d else, %v; want %d, %d, no error", tc.in, len(p.then), len(p.els), err, tc.then, tc.els)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseTxn(%s) error = %v; want one containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestParsePairs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string // "k1=v1|k2=v2"
		wantErr string
	}{
		{[]string{"a=1", "b=", "c=x=y"}, "a=1|b=|c=x=y", ""},
		{[]string{"a"}, "", `argument "a": want KEY=VALUE`},
		{[]string{"=1"}, "", `argument "=1": the key is empty`},
		{[]string{"a=1", "a=2"}, "", `key "a" given twice`},
		{nil, "", "no KEY=VALUE given"},
	} {
		keys, values, err := parsePairs(tc.args)
		var got []string
		for i := range keys {
			got = append(got, string(keys[i])+"="+string(values[i]))
		}
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parsePairs(%q) error = %v; want %q", tc.args, err, tc.wantErr)
			}
		} else if err != nil || strings.Join(got, "|") != tc.want {
			t.Errorf("parsePairs(%q) = %q, %v; want %s", tc.args, got, err, tc.want)
		}
	}
}

// TestArgumentErrors checks the errors kvctl reports before it talks to
// any node: the endpoint is dead, so an error about it means the arguments
// were not checked first.
func TestArgumentErrors(t *testing.T) {
	dead := deadAddr(t)
	for _, tc := range []struct {
		name       string
		stdin      string
		args       []string
		wantStderr string // a substring
	}{
		{"put: two conditions", "", []string{"put", "k", "v", "--if-absent", "--if-version", "3"}, "[if-absent if-version] were all set"},
		{"put: bad version", "", []string{"put", "k", "v", "--if-version", "-1"}, `invalid argument "-1" for "--if-version"`},
		{"put: ttl 0", "", []string{"put", "k", "v", "--ttl", "0s"}, "--ttl 0s: must be > 0"},
		{"put: negative ttl", "", []string{"put", "k", "v", "--ttl", "-5s"}, "--ttl -5s: must be > 0"},
		{"put: ttl without a unit", "", []string{"put", "k", "v", "--ttl", "30"}, `invalid argument "30" for "--ttl"`},
		{"del: no --if-absent", "", []string{"del", "k", "--if-absent"}, "unknown flag: --if-absent"},
		{"del: no --ttl", "", []string{"del", "k", "--ttl", "1s"}, "unknown flag: --ttl"},
		{"cas: two args", "", []string{"cas", "k", "old"}, "accepts 3 arg(s), received 2"},
		{"cas: ttl 0", "", []string{"cas", "k", "a", "b", "--ttl", "0s"}, "--ttl 0s: must be > 0"},
		{"ttl: no key", "", []string{"ttl"}, "accepts 1 arg(s), received 0"},
		{"mget: no key", "", []string{"mget"}, "requires at least 1 arg(s), only received 0"},
		{"mput: no =", "", []string{"mput", "a=1", "b"}, `argument "b": want KEY=VALUE`},
		{"mput: twice", "", []string{"mput", "a=1", "a=2"}, `key "a" given twice`},
		{"scan: an argument", "", []string{"scan", "user/"}, `scan takes no argument, got "user/": give the prefix with --prefix`},
		{"scan: negative limit", "", []string{"scan", "--limit", "-1"}, "--limit -1: must be >= 0"},
		{"scan: page too large", "", []string{"scan", "--page-size", "10001"}, "--page-size 10001: want 1..10000"},
		{"txn: bad JSON", "{", []string{"txn"}, "transaction: unexpected EOF"},
		{"txn: empty stdin", "", []string{"txn"}, "no transaction given"},
		{"txn: missing file", "", []string{"txn", "--file", "/nonexistent/t.json"}, "read the transaction: open /nonexistent/t.json"},
		{"txn: an argument", "", []string{"txn", "t.json"}, `txn takes no argument, got "t.json": give the transaction on stdin or with --file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kvctl(t, tc.stdin, append([]string{"--endpoints", dead}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.wantStderr) || strings.Contains(r.stderr, dead) {
				t.Errorf("kvctl %s: %v; want exit 1 and stderr containing %q", strings.Join(tc.args, " "), r, tc.wantStderr)
			}
		})
	}
}

func TestFormatTTL(t *testing.T) {
	for _, tc := range []struct {
		ms   int64
		want string
	}{
		{1, "1ms"}, {250, "250ms"}, {999, "999ms"}, {1000, "1s"}, {29512, "29.5s"}, {29550, "29.6s"}, {90000, "1m30s"},
	} {
		if got := formatTTL(msDuration(tc.ms)); got != tc.want {
			t.Errorf("formatTTL(%dms) = %q; want %q", tc.ms, got, tc.want)
		}
	}
}

func TestPlain(t *testing.T) {
	for in, want := range map[string]string{
		"hello":         "hello",
		"two words":     "two words",
		"":              "",
		"line1\nline2":  `"line1\nline2"`,
		"tab\there":     `"tab\there"`,
		"\xff\xfe":      `"\xff\xfe"`,
		"héllo {user1}": "héllo {user1}",
	} {
		if got := plain([]byte(in)); got != want {
			t.Errorf("plain(%q) = %s; want %s", in, got, want)
		}
	}
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
