package schema_test

import (
	"strings"
	"testing"

	"github.com/cnbridged/cnbridged/internal/schema"
	"github.com/cnbridged/cnbridged/internal/schema/schematest"
)

// edit rewrites a member of an encoded sample with the strings old → new.
func edit(t *testing.T, doc []byte, old, new string) []byte {
	t.Helper()
	if !strings.Contains(string(doc), old) {
		t.Fatalf("%q not in %s", old, doc)
	}
	return []byte(strings.Replace(string(doc), old, new, 1))
}

// TestECSValidatorRejects: the ECS validator catches each kind of
// mistake, so that TestECSConformsToSchema can fail.
func TestECSValidatorRejects(t *testing.T) {
	doc := schema.AppendECS(nil, sample(t, "exec"))
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown field", `"working_directory":`, `"workdir":`, "process.workdir: not an ECS field"},
		{"keyword as number", `"user":{"id":"0"`, `"user":{"id":0`, "process.user.id (keyword): 0 is not a string"},
		{"long as string", `"pid":1780,`, `"pid":"1780",`, "process.pid (long): 1780 is not an integer"},
		{"not an array", `"category":["process"]`, `"category":"process"`, "event.category: ECS normalizes it to an array"},
		{"value not allowed", `"kind":"event"`, `"kind":"happening"`, "event.kind: happening is not an allowed value"},
		{"type the category does not expect", `"type":["start"]`, `"type":["creation"]`, "event.type creation is not one category process expects"},
		{"bad date", `"start":"2026-11-30T16:03:47.154920112Z"`, `"start":"yesterday"`, "process.start (date): yesterday is not an RFC 3339 date"},
		{"custom field not documented", `"cpu":0`, `"cpus":0`, "cnbridged.proc.cpus: not an ECS field"},
		{"missing @timestamp", `"@timestamp":`, `"time":`, "@timestamp: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := schematest.ValidateECS(edit(t, doc, tc.old, tc.new))
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("errors %q, want one containing %q", errs, tc.want)
			}
		})
	}
}

// TestOCSFValidatorRejects: the OCSF validator catches each kind of
// mistake, so that TestOCSFConformsToSchema can fail.
func TestOCSFValidatorRejects(t *testing.T) {
	doc := schema.AppendOCSF(nil, sample(t, "exec"), schema.Product{Version: "1"})
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown attribute", `"cmd_line":"sleep 0.3"`, `"command_line":"sleep 0.3"`, "process.command_line: not an attribute of process"},
		{"string as number", `"uid":"0"`, `"uid":0`, "process.user.uid (string_t): 0 is not a string"},
		{"timestamp as string", `"time":1796054627168`, `"time":"1796054627168"`, "time (timestamp_t): 1796054627168 is not an integer"},
		{"integer_t past 32 bits", `"pid":1780,`, `"pid":17800000000,`, "process.pid (integer_t): 1.78e+10 does not fit 32 bits"},
		{"not in enum", `"activity_id":1,`, `"activity_id":7,`, "activity_id: 7 is not in its enum"},
		{"caption", `"severity":"Informational"`, `"severity":"Info"`, `severity: "Info", want the caption of severity_id 1, "Informational"`},
		{"type_uid", `"type_uid":100701`, `"type_uid":100702`, "type_uid 100702, want class_uid×100 + activity_id = 100701"},
		{"required", `"metadata":{"version":"1.8.0",`, `"metadata":{`, "metadata.version: required by metadata"},
		{"regex", `"pod_uuid":"0c5e8a52-1a2b-4c3d-9e8f-0123456789ab"`, `"pod_uuid":"pod-1"`, `process.container.pod_uuid (uuid_t): "pod-1" does not match`},
		{"profile not listed", `,"profiles":["container"]`, ``, "attributes of profile container used; metadata.profiles [] does not list it"},
		{"not an array", `"lineage":["/usr/bin/bash","/usr/bin/dash","/usr/bin/sleep"]`, `"lineage":"/usr/bin/sleep"`, "process.lineage: not an array"},
		{"at least one", `"actor":{"process":{"pid":1779,"uid":"2761f572-1620-42ee-aba7-50e6c1c3f2f5:1779:142175","name":"dash","file":{"path":"/usr/bin/dash","name":"dash","type_id":1,"type":"Regular File"}}}`, `"actor":{}`, "actor: actor needs at least one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, _ := schematest.ValidateOCSF(edit(t, doc, tc.old, tc.new))
			if !strings.Contains(strings.Join(errs, "\n"), tc.want) {
				t.Errorf("errors %q, want one containing %q", errs, tc.want)
			}
		})
	}
}
