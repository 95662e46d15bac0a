package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

const envPrefix = "CNBRIDGED_"

// envName is the environment variable that overrides key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv applies CNBRIDGED_<KEY> variables to the keys the defaults and
// the file have, and reports the variables that name no key: a misspelt
// variable would otherwise be ignored silently. An empty variable is a
// value: CNBRIDGED_METRICS_LISTEN= disables the endpoint as
// metrics.listen: "" does.
func (ld *loader) applyEnv(environ []string) {
	if environ == nil {
		environ = os.Environ()
	}
	keys := map[string]string{}
	for _, k := range ld.v.AllKeys() {
		keys[envName(k)] = k
	}
	var unknown []string
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) {
			continue
		}
		key, ok := keys[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		ld.v.Set(key, val)
		ld.sources[key] = "environment " + name
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		ld.probs = append(ld.probs, Problem{Source: "environment " + name,
			Msg: "no such key; variables are CNBRIDGED_<SECTION>_<KEY> for a key section.key, e.g. CNBRIDGED_METRICS_LISTEN"})
	}
}

// source says where key's value came from.
func (ld *loader) source(key string) string {
	for k := key; ; {
		if s, ok := ld.sources[k]; ok {
			return s
		}
		if line, ok := ld.pos[k]; ok {
			return fmt.Sprintf("%s:%d", ld.path, line)
		}
		if strings.HasSuffix(k, "]") {
			// A list element the file does not have: added by --set.
			for sk, s := range ld.sources {
				if strings.HasPrefix(sk, k+".") || strings.HasPrefix(sk, k+"[") {
					return s
				}
			}
		}
		// Walk up: sinks.out.path → sinks.out; routes[0].sinks[1] → routes[0].sinks.
		i := max(strings.LastIndexByte(k, '.'), strings.LastIndexByte(k, '['))
		if i <= 0 {
			break
		}
		k = k[:i]
	}
	if ld.path == "" {
		return "built-in default"
	}
	return ld.path
}

func (ld *loader) add(key, msg string) {
	ld.probs = append(ld.probs, Problem{Key: key, Source: ld.source(key), Msg: msg})
}

// covered reports whether key, or a key above it, had a decode problem.
func (ld *loader) covered(key string) bool {
	for k := range ld.bad {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// splitKey splits "key: message".
func splitKey(s string) (key, msg string) {
	k, m, ok := strings.Cut(s, ": ")
	if !ok || strings.ContainsAny(k, " \"") {
		return "", s
	}
	return k, m
}
