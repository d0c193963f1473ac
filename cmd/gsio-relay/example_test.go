package main

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
)

// exampleConfig is docs/gsio-relay.example.toml: every key of the config
// file, with its default. GSIO_WRITE_EXAMPLE=1 go test -run
// TestExampleConfig ./cmd/gsio-relay/ writes it anew from the flags.
const exampleConfig = "../../docs/gsio-relay.example.toml"

// exampleDataDir replaces the default --data-dir (~/.gsio-relay, the
// home of whoever runs it) in the example: the systemd unit's directory.
const exampleDataDir = "/var/lib/gsio-relay"

// TestExampleConfig loads the example config file with the real loader:
// every visible flag of run is a key in it, and it sets every field to
// its default (data-dir aside), so that the file can never go stale.
func TestExampleConfig(t *testing.T) {
	if os.Getenv("GSIO_WRITE_EXAMPLE") != "" {
		if err := os.WriteFile(exampleConfig, []byte(renderExample()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(exampleConfig, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range runFlags(defaultRunConfig()).flags {
		name := f.Names()[0]
		if v, ok := f.(cli.VisibleFlag); (ok && !v.IsVisible()) || name == "config" {
			continue
		}
		if _, ok := raw[name]; !ok {
			t.Errorf("%s lacks the key %q (GSIO_WRITE_EXAMPLE=1 rewrites it)", exampleConfig, name)
		}
	}
	got, _, err := parseRunArgs([]string{"gsio-relay", "run", "--config", exampleConfig})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultRunConfig()
	want.Node.DataDir = exampleDataDir
	got.args, got.values = nil, nil
	nilEmpty(reflect.ValueOf(got).Elem())
	nilEmpty(reflect.ValueOf(want).Elem())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the example config is not the defaults:\n%+v\nwant\n%+v", got, want)
	}
}

// nilEmpty makes every empty slice of v nil: a list key of the file
// (allowed-origins = []) is an empty list where the default is nil.
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				nilEmpty(f)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

// renderExample writes the example from the run flags: their categories,
// usages and defaults.
func renderExample() string {
	var b strings.Builder
	b.WriteString(`# gsio-relay run --config /etc/gsio-relay/relay.toml
#
# Every key of the config file with its default: each key is the name of a
# flag of "gsio-relay run" (gsio-relay run --help). A flag given on the
# command line or in the environment (GSIO_RELAY_<NAME>) wins over the file.
# An unknown key is an error. SIGHUP reloads the limits marked "live"
# (docs/OPERATIONS.md "Reload"); the others need a restart.
# A test (cmd/gsio-relay/example_test.go) loads this file: it stays true.
`)
	cat := ""
	for _, f := range runFlags(defaultRunConfig()).flags {
		name := f.Names()[0]
		if v, ok := f.(cli.VisibleFlag); (ok && !v.IsVisible()) || name == "config" {
			continue
		}
		if c := f.(cli.CategorizableFlag).GetCategory(); c != cat {
			cat = c
			fmt.Fprintf(&b, "\n# --- %s ---\n", cat)
		}
		usage := strings.ReplaceAll(f.(cli.DocGenerationFlag).GetUsage(), "`", "")
		if when, ok := liveKeys[name]; ok {
			usage += " [live: " + when + "]"
		}
		fmt.Fprintf(&b, "\n%s%s = %s\n", wrapComment(usage), name, tomlValue(name, f))
	}
	return b.String()
}

func wrapComment(s string) string {
	var b strings.Builder
	line := "#"
	for _, w := range strings.Fields(s) {
		if len(line)+1+len(w) > 76 {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	return b.String() + line + "\n"
}

func tomlValue(name string, f cli.Flag) string {
	if name == "data-dir" {
		return strconv.Quote(exampleDataDir)
	}
	v := reflect.ValueOf(f).Elem().FieldByName("Value")
	if !v.IsValid() {
		// altsrc wraps the cli flag: its first field.
		v = reflect.ValueOf(f).Elem().Field(0).Elem().FieldByName("Value")
	}
	switch x := v.Interface().(type) {
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return strconv.Quote(x.String())
	case *cli.StringSlice:
		return tomlList(x.Value())
	case bool, int, int64:
		return fmt.Sprint(x)
	}
	panic(fmt.Sprintf("flag %s: value of type %s", name, v.Type()))
}

func tomlList(s []string) string {
	q := make([]string, len(s))
	for i, v := range slices.Clone(s) {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
