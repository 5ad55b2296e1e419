package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// TestRealCluster runs the commands against a real 3-node cluster.
func TestRealCluster(t *testing.T) {
	c := startRealCluster(t)

	t.Run("put conditions", func(t *testing.T) {
		c.ok(t, "", "OK\n", "put", "lock", "w1", "--if-absent")
		v := c.version(t, "lock")
		c.fails(t, "", fmt.Sprintf("condition failed: current version %d", v), "put", "lock", "w2", "--if-absent")
		c.fails(t, "", fmt.Sprintf("condition failed: current version %d", v), "put", "lock", "w2", "--if-version", fmt.Sprint(v+100))
		r := c.run(t, "", "-o", "json", "put", "lock", "w2", "--if-version", fmt.Sprint(v))
		var j struct{ Version uint64 }
		if r.code != 0 || jsonUnmarshal(r.stdout, &j) != nil || j.Version <= v {
			t.Errorf("put --if-version %d (the current one): %v; want a version > %d", v, r, v)
		}
		c.ok(t, "", "w2\n", "get", "lock")
		c.fails(t, "", "condition failed: current version 0 (the key does not exist)", "put", "nolock", "x", "--if-version", "3")
		c.ok(t, "", "OK\n", "put", "nolock", "x", "--if-version", "0")
	})

	t.Run("del if-version", func(t *testing.T) {
		c.ok(t, "", "OK\n", "put", "d", "1")
		v := c.version(t, "d")
		c.fails(t, "", fmt.Sprintf("condition failed: current version %d", v), "del", "d", "--if-version", fmt.Sprint(v+1))
		c.ok(t, "", "1\n", "get", "d")
		c.ok(t, "", "1\n", "del", "d", "--if-version", fmt.Sprint(v))
		c.fails(t, "", `key "d" not found`, "get", "d")
	})

	t.Run("cas", func(t *testing.T) {
		c.ok(t, "", "OK\n", "put", "mode", "blue")
		c.ok(t, "", "OK\n", "cas", "mode", "blue", "green")
		v := c.version(t, "mode")
		c.fails(t, "", fmt.Sprintf("condition failed: current version %d", v), "cas", "mode", "blue", "red")
		c.ok(t, "", "green\n", "get", "mode")
		c.fails(t, "", "condition failed: current version 0 (the key does not exist)", "cas", "nomode", "a", "b")
		c.ok(t, "from stdin", "OK\n", "cas", "mode", "green", "-")
		c.ok(t, "", "from stdin\n", "get", "mode")
	})

	t.Run("ttl", func(t *testing.T) {
		c.ok(t, "", "OK\n", "put", "session", "alice", "--ttl", "1h")
		r := c.run(t, "", "ttl", "session")
		d, err := time.ParseDuration(strings.TrimSpace(r.stdout))
		if r.code != 0 || err != nil || d <= 59*time.Minute || d > time.Hour {
			t.Errorf("kvctl ttl session (put with --ttl 1h): %v; want a duration in (59m, 1h]", r)
		}
		// get: the value on stdout as is, the TTL on stderr.
		r = c.run(t, "", "get", "session")
		if r.code != 0 || r.stdout != "alice\n" || !strings.HasPrefix(r.stderr, "ttl: ") {
			t.Errorf("kvctl get session: %v; want stdout alice, stderr ttl: ...", r)
		}
		r = c.run(t, "", "-o", "json", "get", "session")
		var g getJSON
		if r.code != 0 || jsonUnmarshal(r.stdout, &g) != nil || g.TTLMs <= 59*60*1000 || g.TTLMs > 3600*1000 {
			t.Errorf("kvctl -o json get session: %v; want ttl_ms in (59m, 1h]", r)
		}
		r = c.run(t, "", "-o", "json", "ttl", "session")
		var tj ttlJSON
		if r.code != 0 || jsonUnmarshal(r.stdout, &tj) != nil || !tj.HasTTL || tj.Key != "session" || tj.TTLMs <= 59*60*1000 {
			t.Errorf("kvctl -o json ttl session: %v; want has_ttl and ttl_ms about 1h", r)
		}
		// A put without --ttl clears it.
		c.ok(t, "", "OK\n", "put", "session", "bob")
		c.ok(t, "", "no ttl\n", "ttl", "session")
		c.ok(t, "", `{"key":"session","has_ttl":false,"ttl_ms":0}`+"\n", "-o", "json", "ttl", "session")
		c.ok(t, "", "bob\n", "get", "session")
		c.fails(t, "", `key "nosession" not found`, "ttl", "nosession")
	})

	t.Run("ttl expires", func(t *testing.T) {
		c.ok(t, "", "OK\n", "put", "short", "x", "--ttl", "300ms")
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := c.run(t, "", "get", "short")
			if r.code == 1 && r.stderr == "Error: key \"short\" not found\n" {
				break
			}
			if r.code != 0 || time.Now().After(deadline) {
				t.Fatalf("kvctl get short (put with --ttl 300ms): %v; want it gone within 20s", r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("mput mget", func(t *testing.T) {
		c.ok(t, "", "OK\n", "mput", "m/a=1", "m/b=two words", "m/c=", "m/d=x=y")
		c.ok(t, "", "m/a 1\nm/b two words\nm/c \nm/d x=y\n", "mget", "m/a", "m/b", "m/c", "m/d")
		r := c.run(t, "", "mget", "m/a", "m/zz", "m/c")
		if r.code != 1 || r.stdout != "m/a 1\nm/zz (not found)\nm/c \n" || r.stderr != "Error: 1 of 3 keys not found\n" {
			t.Errorf("kvctl mget with a missing key: %v", r)
		}
		r = c.run(t, "", "-o", "json", "mget", "m/a", "m/zz")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var a, zz mgetJSON
		if r.code != 1 || len(lines) != 2 || jsonUnmarshal(lines[0], &a) != nil || jsonUnmarshal(lines[1], &zz) != nil ||
			!a.Found || a.Value == nil || *a.Value != "1" || a.Version == 0 || zz.Found || zz.Key != "m/zz" || zz.Value != nil {
			t.Errorf("kvctl -o json mget m/a m/zz: %v; want two JSON lines, m/a found with 1, m/zz not found", r)
		}
		r = c.run(t, "", "-o", "json", "mput", "m/e=5", "m/f=6")
		var mj mputJSON
		if r.code != 0 || jsonUnmarshal(r.stdout, &mj) != nil || len(mj.Versions) != 2 ||
			mj.Versions[0].Key != "m/e" || mj.Versions[1].Key != "m/f" || mj.Versions[0].Version == 0 {
			t.Errorf("kvctl -o json mput: %v", r)
		}
		c.ok(t, "", "5\n", "get", "m/e")
	})

	t.Run("txn", func(t *testing.T) {
		c.ok(t, "", "OK\n", "mput", "{user1}.balance=100", "{user1}.history=")
		transfer := `{"if":   [{"key": "{user1}.balance", "value": {"eq": "100"}}],
		 "then": [{"put": {"key": "{user1}.balance", "value": "70"}},
		          {"put": {"key": "{user1}.history", "value": "paid 30", "ttl": "1h"}},
		          {"get": {"key": "{user1}.history"}},
		          {"del": {"key": "{user1}.nothing"}}],
		 "else": [{"get": {"key": "{user1}.balance"}}, {"get": {"key": "{user1}.none"}}]}`
		r := c.run(t, transfer, "txn")
		lines := strings.Split(r.stdout, "\n")
		v := c.version(t, "{user1}.balance")
		want := []string{"SUCCEEDED", fmt.Sprint(v), fmt.Sprint(v), fmt.Sprintf("{user1}.history paid 30 %d", v), "not found", ""}
		if r.code != 0 || strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Errorf("kvctl txn (the transfer): %v; want lines %q", r, want)
		}
		c.ok(t, "", "70\n", "get", "{user1}.balance")
		// Again: the balance is no longer 100, so else runs.
		c.ok(t, transfer, fmt.Sprintf("FAILED\n{user1}.balance 70 %d\n{user1}.none (not found)\n", v), "txn")
		r = c.run(t, transfer, "-o", "json", "txn")
		var j txnJSON
		if r.code != 0 || jsonUnmarshal(r.stdout, &j) != nil || j.Succeeded || len(j.Results) != 2 ||
			j.Results[0].Op != "get" || *j.Results[0].Found != true || *j.Results[0].Value != "70" || *j.Results[1].Found {
			t.Errorf("kvctl -o json txn: %v", r)
		}
		// Versions and deletes, from a file.
		file := t.TempDir() + "/t.json"
		writeFile(t, file, fmt.Sprintf(`{"if":[{"key":"{user1}.balance","version":{"eq":%d}},{"key":"{user1}.balance","create_version":{"gt":0}}],
			"then":[{"del":{"key":"{user1}.history"}}]}`, v))
		c.ok(t, "", "SUCCEEDED\ndeleted\n", "txn", "--file", file)
		c.fails(t, "", `key "{user1}.history" not found`, "get", "{user1}.history")
		// Keys of two shards are refused with the node's reason.
		r = c.run(t, `{"then":[{"put":{"key":"a","value":"1"}},{"put":{"key":"b","value":"1"}},{"put":{"key":"c","value":"1"}}]}`, "txn")
		if r.code != 1 || !strings.Contains(r.stderr, "hash tag") {
			t.Errorf("kvctl txn on keys of different shards: %v; want exit 1 and an error about hash tags", r)
		}
	})

	t.Run("scan", func(t *testing.T) {
		var keys []string
		var pairs []string
		for i := range 25 {
			k := fmt.Sprintf("s/%02d", i)
			keys = append(keys, k)
			pairs = append(pairs, k+"="+fmt.Sprint(i))
		}
		c.ok(t, "", "OK\n", append([]string{"mput"}, pairs...)...)
		c.ok(t, "", "OK\n", "mput", "s0=outside", "t/1=outside")
		var all strings.Builder
		for i, k := range keys {
			fmt.Fprintf(&all, "%s %d\n", k, i)
		}
		c.ok(t, "", all.String(), "scan", "--prefix", "s/", "--page-size", "4")
		c.ok(t, "", all.String(), "scan", "--prefix", "s/")
		c.ok(t, "", strings.Join(keys[:7], "\n")+"\n", "scan", "--prefix", "s/", "--limit", "7", "--page-size", "3", "--keys-only")
		c.ok(t, "", "", "scan", "--prefix", "nothing/")
		r := c.run(t, "", "-o", "json", "scan", "--prefix", "s/", "--page-size", "5", "--limit", "12")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 12 {
			t.Fatalf("kvctl -o json scan --limit 12: %v; want 12 lines", r)
		}
		for i, line := range lines {
			var j scanJSON
			if err := jsonUnmarshal(line, &j); err != nil || j.Key != keys[i] || j.Value == nil || *j.Value != fmt.Sprint(i) || j.Version == 0 {
				t.Errorf("line %d %q (%v); want key %s, value %d", i, line, err, keys[i], i)
			}
		}
		c.ok(t, "", `{"key":"t/1","version":`+fmt.Sprint(c.version(t, "t/1"))+`,"create_version":`+fmt.Sprint(c.version(t, "t/1"))+"}\n",
			"-o", "json", "scan", "--prefix", "t/", "--keys-only")
	})
}
