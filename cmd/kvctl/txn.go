package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

// The JSON description of a transaction that kvctl txn reads.
type txnSpec struct {
	If   []compareSpec `json:"if"`
	Then []opSpec      `json:"then"`
	Else []opSpec      `json:"else"`
}

// compareSpec is one condition: a key and exactly one of its targets.
type compareSpec struct {
	Key           *string      `json:"key"`
	Version       relationSpec `json:"version"`
	CreateVersion relationSpec `json:"create_version"`
	Value         relationSpec `json:"value"`
}

// relationSpec is {"eq"|"ne"|"lt"|"gt": OPERAND}, nil when absent.
type relationSpec map[string]json.RawMessage

// opSpec is one operation: exactly one of put, del, get.
type opSpec struct {
	Put *putSpec `json:"put"`
	Del *keySpec `json:"del"`
	Get *keySpec `json:"get"`
}

type keySpec struct {
	Key *string `json:"key"`
}

type putSpec struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
	TTL   string  `json:"ttl"`
}

var relations = map[string]client.Relation{
	"eq": client.Equal,
	"ne": client.NotEqual,
	"lt": client.Less,
	"gt": client.Greater,
}

// txnOp is an operation as parsed, kept to print its result.
type txnOp struct {
	kind string // "put", "del" or "get"
	key  []byte
}

// parsedTxn is a transaction ready to run, and its operations per branch.
type parsedTxn struct {
	txn       client.Txn
	then, els []txnOp
}

// parseTxn parses a transaction's JSON description. Unknown fields, a
// missing key, a condition or an operation that is not exactly one thing,
// are errors that say where they are ("if[1]", "then[0].put").
func parseTxn(data []byte) (parsedTxn, error) {
	var spec txnSpec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return parsedTxn{}, errors.New("no transaction given: want a JSON object {\"if\":[...],\"then\":[...],\"else\":[...]}")
		}
		return parsedTxn{}, fmt.Errorf("transaction: %w", err)
	}
	if dec.More() {
		return parsedTxn{}, errors.New("transaction: more than one JSON value given")
	}
	var p parsedTxn
	for i, cs := range spec.If {
		cmp, err := parseCompare(cs)
		if err != nil {
			return parsedTxn{}, fmt.Errorf("if[%d]: %w", i, err)
		}
		p.txn.If = append(p.txn.If, cmp)
	}
	var err error
	if p.txn.Then, p.then, err = parseOps("then", spec.Then); err != nil {
		return parsedTxn{}, err
	}
	if p.txn.Else, p.els, err = parseOps("else", spec.Else); err != nil {
		return parsedTxn{}, err
	}
	if len(p.then) == 0 && len(p.els) == 0 {
		return parsedTxn{}, errors.New("transaction has no operation: give \"then\" or \"else\" a put, del or get")
	}
	return p, nil
}

func parseKey(k *string) ([]byte, error) {
	if k == nil || *k == "" {
		return nil, errors.New(`"key" is missing or empty`)
	}
	return []byte(*k), nil
}

func parseCompare(cs compareSpec) (client.Compare, error) {
	key, err := parseKey(cs.Key)
	if err != nil {
		return client.Compare{}, err
	}
	targets := 0
	for _, r := range []relationSpec{cs.Version, cs.CreateVersion, cs.Value} {
		if r != nil {
			targets++
		}
	}
	if targets != 1 {
		return client.Compare{}, fmt.Errorf(`want exactly one of "version", "create_version", "value"; got %d`, targets)
	}
	target, r := "version", cs.Version
	switch {
	case cs.CreateVersion != nil:
		target, r = "create_version", cs.CreateVersion
	case cs.Value != nil:
		target, r = "value", cs.Value
	}
	if len(r) != 1 {
		return client.Compare{}, fmt.Errorf(`%s: want exactly one relation of "eq", "ne", "lt", "gt"; got %d`, target, len(r))
	}
	for name, operand := range r {
		rel, ok := relations[name]
		if !ok {
			return client.Compare{}, fmt.Errorf(`%s: unknown relation %q: want "eq", "ne", "lt" or "gt"`, target, name)
		}
		if bytes.Equal(bytes.TrimSpace(operand), []byte("null")) {
			return client.Compare{}, fmt.Errorf("%s: %s: the operand is null", target, name)
		}
		if target == "value" {
			var s string
			if err := json.Unmarshal(operand, &s); err != nil {
				return client.Compare{}, fmt.Errorf("value: %s: want a string, got %s", name, operand)
			}
			return client.ValueIs(key, rel, []byte(s)), nil
		}
		var v uint64
		if err := json.Unmarshal(operand, &v); err != nil {
			return client.Compare{}, fmt.Errorf("%s: %s: want a whole number >= 0, got %s", target, name, operand)
		}
		if target == "create_version" {
			return client.CreateVersionIs(key, rel, v), nil
		}
		return client.VersionIs(key, rel, v), nil
	}
	panic("unreachable")
}

func parseOps(branch string, specs []opSpec) ([]client.Op, []txnOp, error) {
	var ops []client.Op
	var parsed []txnOp
	for i, s := range specs {
		where := fmt.Sprintf("%s[%d]", branch, i)
		n := 0
		for _, set := range []bool{s.Put != nil, s.Del != nil, s.Get != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, nil, fmt.Errorf(`%s: want exactly one of "put", "del", "get"; got %d`, where, n)
		}
		switch {
		case s.Put != nil:
			key, err := parseKey(s.Put.Key)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.put: %w", where, err)
			}
			if s.Put.Value == nil {
				return nil, nil, fmt.Errorf(`%s.put: "value" is missing`, where)
			}
			var ttl time.Duration
			if s.Put.TTL != "" {
				if ttl, err = time.ParseDuration(s.Put.TTL); err != nil || ttl <= 0 {
					return nil, nil, fmt.Errorf(`%s.put: "ttl" %q: want a duration > 0 such as "30s" or "5m"`, where, s.Put.TTL)
				}
			}
			ops = append(ops, client.OpPut(key, []byte(*s.Put.Value), ttl))
			parsed = append(parsed, txnOp{"put", key})
		case s.Del != nil:
			key, err := parseKey(s.Del.Key)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.del: %w", where, err)
			}
			ops = append(ops, client.OpDelete(key))
			parsed = append(parsed, txnOp{"del", key})
		default:
			key, err := parseKey(s.Get.Key)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.get: %w", where, err)
			}
			ops = append(ops, client.OpGet(key))
			parsed = append(parsed, txnOp{"get", key})
		}
	}
	return ops, parsed, nil
}

// txnJSON is txn's JSON output.
type txnJSON struct {
	Succeeded bool            `json:"succeeded"`
	Version   uint64          `json:"version"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Results   []txnResultJSON `json:"results"`
}

// txnResultJSON is one operation's result: for a get, Found and, when found,
// the value and its versions; for a put, Version; for a del, Deleted.
type txnResultJSON struct {
	Op            string  `json:"op"`
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Found         *bool   `json:"found,omitempty"`
	Deleted       *bool   `json:"deleted,omitempty"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
	Version       uint64  `json:"version,omitempty"`
	CreateVersion uint64  `json:"create_version,omitempty"`
	TTLMs         int64   `json:"ttl_ms,omitempty"`
}

const txnHelp = `Run a transaction: if every condition of "if" holds, the operations of "then"
run, else those of "else", all atomically. Every key of a transaction must be
on one shard: give keys that change together a common hash tag, the part
between '{' and '}' ("{user1}.balance" and "{user1}.history" are on one shard);
keys of different shards are refused.

The transaction is read from stdin, or from --file, as JSON:

  {
    "if": [
      {"key": "K", "version": {"eq": 5}},          # K's version (0: missing)
      {"key": "K", "create_version": {"gt": 0}},   # 0 when K is missing
      {"key": "K", "value": {"ne": "x"}}           # never holds for a missing K
    ],
    "then": [
      {"put": {"key": "K", "value": "V", "ttl": "10s"}},   # "ttl" is optional
      {"del": {"key": "K"}},
      {"get": {"key": "K"}}                                # sees earlier writes
    ],
    "else": [ ...operations, as "then"... ]
  }

Each condition has a "key" and one of "version", "create_version" (whole
numbers) or "value" (a string), compared by one relation: "eq", "ne", "lt" or
"gt" (values compare as byte strings). An empty or missing "if" always holds.
(The # comments above are not JSON: leave them out.)

kvctl prints SUCCEEDED (the conditions held: "then" ran) or FAILED ("else"
ran), then one line per operation of the branch that ran:
  get:  KEY VALUE VERSION, or KEY (not found)
  put:  the key's new VERSION
  del:  deleted, or not found
FAILED is an outcome, not an error: kvctl exits 0 with it. With -o json, it
prints {"succeeded","version","results":[{"op","key",...}]}: a get's "found",
"value", "version", "create_version"; a put's "version"; a del's "deleted".`

func newTxnCommand(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "txn [--file F]",
		Short: "Run a transaction (if/then/else) on the keys of one shard",
		Long:  txnHelp,
		Example: `  kvctl txn <<'EOF'
  {"if":   [{"key": "{user1}.balance", "value": {"eq": "100"}}],
   "then": [{"put": {"key": "{user1}.balance", "value": "70"}},
            {"put": {"key": "{user1}.history", "value": "paid 30"}}],
   "else": [{"get": {"key": "{user1}.balance"}}]}
  EOF
  kvctl txn --file transfer.json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("txn takes no argument, got %q: give the transaction on stdin or with --file", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data []byte
			var err error
			if file != "" {
				data, err = os.ReadFile(file)
			} else {
				data, err = io.ReadAll(cmd.InOrStdin())
			}
			if err != nil {
				return fmt.Errorf("read the transaction: %w", err)
			}
			p, err := parseTxn(data)
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				res, err := c.Txn(ctx, p.txn)
				if err != nil {
					return err
				}
				return a.printTxn(cmd, p, res)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the transaction from file `F` instead of stdin")
	return cmd
}

func (a *app) printTxn(cmd *cobra.Command, p parsedTxn, res client.TxnResult) error {
	ops := p.then
	if !res.Succeeded {
		ops = p.els
	}
	out := cmd.OutOrStdout()
	if res.Duplicate {
		// A retry found the transaction applied by an earlier attempt,
		// whose results are gone.
		fmt.Fprintf(cmd.ErrOrStderr(), "the transaction was applied by an earlier attempt at version %d: its results are not known\n", res.Version)
		ops = nil
	}
	if a.output == outputJSON {
		j := txnJSON{Succeeded: res.Succeeded, Version: res.Version, Duplicate: res.Duplicate, Results: []txnResultJSON{}}
		for i, r := range res.Results {
			if i >= len(ops) {
				break
			}
			jr := txnResultJSON{Op: ops[i].kind}
			jr.Key, jr.KeyEncoding = jsonBytes(ops[i].key)
			switch ops[i].kind {
			case "get":
				found := r.Found
				jr.Found = &found
				if found {
					var v string
					v, jr.ValueEncoding = jsonBytes(r.Value.Data)
					jr.Value = &v
					jr.Version, jr.CreateVersion, jr.TTLMs = r.Value.Version, r.Value.CreateVersion, r.Value.TTL.Milliseconds()
				}
			case "put":
				jr.Version = r.Value.Version
			case "del":
				deleted := r.Found
				jr.Deleted = &deleted
			}
			j.Results = append(j.Results, jr)
		}
		return writeJSON(out, j)
	}
	outcome := "SUCCEEDED"
	if !res.Succeeded {
		outcome = "FAILED"
	}
	if _, err := fmt.Fprintln(out, outcome); err != nil {
		return err
	}
	for i, r := range res.Results {
		if i >= len(ops) {
			break
		}
		var err error
		switch op := ops[i]; {
		case op.kind == "get" && r.Found:
			_, err = fmt.Fprintf(out, "%s %s %d\n", plain(op.key), plain(r.Value.Data), r.Value.Version)
		case op.kind == "get":
			_, err = fmt.Fprintf(out, "%s (not found)\n", plain(op.key))
		case op.kind == "put":
			_, err = fmt.Fprintln(out, r.Value.Version)
		case r.Found:
			_, err = fmt.Fprintln(out, "deleted")
		default:
			_, err = fmt.Fprintln(out, "not found")
		}
		if err != nil {
			return err
		}
	}
	return nil
}
