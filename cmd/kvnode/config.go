package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// Configuration sources besides the command line. Every flag can also be
// set by an environment variable, RINGKV_ and the flag's name upper-cased
// with '-' as '_' (RINGKV_DATA_DIR for --data-dir), and by a key of the
// config file that --config (or RINGKV_CONFIG) names, the flag's name as
// is (data-dir). A flag given on the command line wins over the
// environment, which wins over the file, which wins over the default.
const (
	envPrefix  = "RINGKV_"
	configFlag = "config"
)

// envName returns the environment variable of flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyConfig sets every flag of fs that the command line did not set from
// environ (os.Environ's form) or else from the config file. It is generic
// over fs, so every flag, present and future, works in both. Errors name
// the variable or key: an unknown file key (a typo would otherwise be
// ignored), or a value of the wrong type. An unknown RINGKV_ variable is
// not an error, since other tools (scripts, tests) may set variables of
// that prefix, but it is returned in ignored for the caller to warn about,
// as etcd does with its ETCD_ variables.
func applyConfig(fs *flag.FlagSet, environ []string) (ignored []string, err error) {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	byEnv := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[envName(f.Name)] = f })
	fromEnv := map[string]string{} // flag name -> value
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) {
			continue
		}
		f, ok := byEnv[k]
		if !ok {
			ignored = append(ignored, fmt.Sprintf("environment variable %s: kvnode has no flag --%s", k,
				strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, envPrefix)), "_", "-")))
			continue
		}
		fromEnv[f.Name] = v
	}
	sort.Strings(ignored)

	// The file is named by --config, or else by RINGKV_CONFIG.
	path := ""
	if f := fs.Lookup(configFlag); f != nil {
		path = f.Value.String()
		if v, ok := fromEnv[configFlag]; ok && !onCommandLine[configFlag] {
			path = v
			if err := fs.Set(configFlag, v); err != nil {
				return ignored, fmt.Errorf("environment variable %s: %w", envName(configFlag), err)
			}
		}
	}
	var fromFile map[string]string
	if path != "" {
		var err error
		if fromFile, err = readConfigFile(fs, path); err != nil {
			return ignored, err
		}
	}

	// Apply the file, then the environment over it; the command line
	// already won.
	for _, name := range sortedKeys(fromFile) {
		if onCommandLine[name] {
			continue
		}
		if _, ok := fromEnv[name]; ok {
			continue
		}
		if err := fs.Set(name, fromFile[name]); err != nil {
			return ignored, fmt.Errorf("config file %s: key %q: want %s: %w", path, name, flagType(fs.Lookup(name)), err)
		}
	}
	for _, name := range sortedKeys(fromEnv) {
		if onCommandLine[name] || name == configFlag {
			continue
		}
		if err := fs.Set(name, fromEnv[name]); err != nil {
			return ignored, fmt.Errorf("environment variable %s=%q: want %s: %w", envName(name), fromEnv[name], flagType(fs.Lookup(name)), err)
		}
	}
	return ignored, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readConfigFile reads a YAML (.yaml, .yml) or TOML (.toml) file of flag
// names and values, and returns each value as the flag would take it on the
// command line. It checks every key names a flag and every value has the
// flag's type.
func readConfigFile(fs *flag.FlagSet, path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	raw := map[string]any{}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	case ".toml":
		if _, err := toml.Decode(string(b), &raw); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("config file %s: unknown format %q: want .yaml, .yml or .toml", path, ext)
	}
	out := map[string]string{}
	var errs []string
	for _, key := range sortedAnyKeys(raw) {
		f := fs.Lookup(key)
		switch {
		case key == configFlag:
			errs = append(errs, fmt.Sprintf("key %q: a config file cannot name another", key))
			continue
		case f == nil:
			errs = append(errs, fmt.Sprintf("unknown key %q: kvnode has no flag --%s", key, key))
			continue
		}
		s, err := flagString(f, raw[key])
		if err != nil {
			errs = append(errs, fmt.Sprintf("key %q: %v", key, err))
			continue
		}
		out[key] = s
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config file %s: %s (see kvnode --help)", path, strings.Join(errs, "; "))
	}
	return out, nil
}

func sortedAnyKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// flagType describes the values f takes, for errors.
func flagType(f *flag.Flag) string {
	switch flagValue(f).(type) {
	case bool:
		return "a boolean (true or false)"
	case int, int64, uint, uint64:
		return "an integer"
	case float64:
		return "a number"
	case time.Duration:
		return `a duration such as "500ms" or "1m"`
	}
	return "a string"
}

// flagValue returns f's current value as its Go type, or its string form
// for a flag.Value that is not a flag.Getter.
func flagValue(f *flag.Flag) any {
	if g, ok := f.Value.(flag.Getter); ok {
		return g.Get()
	}
	return f.Value.String()
}

// flagString converts a value decoded from a file to what flag f takes on
// the command line, refusing a value of another type than f's. A list is
// accepted for a string flag and joined with commas (initial-cluster,
// join).
func flagString(f *flag.Flag, v any) (string, error) {
	want := flagType(f)
	bad := func() (string, error) {
		return "", fmt.Errorf("want %s, got %s", want, describe(v))
	}
	switch flagValue(f).(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return bad()
	case int, int64, uint, uint64:
		switch n := v.(type) {
		case int:
			return strconv.Itoa(n), nil
		case int64:
			return strconv.FormatInt(n, 10), nil
		case uint64:
			return strconv.FormatUint(n, 10), nil
		case float64:
			if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
				return strconv.FormatInt(int64(n), 10), nil
			}
		}
		return bad()
	case float64:
		switch n := v.(type) {
		case int:
			return strconv.Itoa(n), nil
		case int64:
			return strconv.FormatInt(n, 10), nil
		case float64:
			return strconv.FormatFloat(n, 'g', -1, 64), nil
		}
		return bad()
	case time.Duration:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return bad()
	default:
		switch s := v.(type) {
		case string:
			return s, nil
		case []any:
			parts := make([]string, len(s))
			for i, e := range s {
				str, ok := e.(string)
				if !ok {
					return "", fmt.Errorf("want %s or a list of strings, got a list holding %s", want, describe(e))
				}
				parts[i] = str
			}
			return strings.Join(parts, ","), nil
		}
		return bad()
	}
}

// describe names the type of a decoded value, and shows it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case bool:
		return fmt.Sprintf("a boolean (%v)", x)
	case int, int64, uint64:
		return fmt.Sprintf("an integer (%v)", x)
	case float64:
		return fmt.Sprintf("a number (%v)", x)
	case string:
		return fmt.Sprintf("a string (%q)", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a table of keys"
	case time.Time:
		return fmt.Sprintf("a date (%v)", x)
	}
	return fmt.Sprintf("%T", v)
}
