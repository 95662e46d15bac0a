package fields_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cnbridged/cnbridged/internal/fields"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, line string
		want       fields.Record
		event      string
	}{
		{"exit killed by an unnamed signal", `{"time":"t","host":"h","idx":1,"val":1,"proc":{"event":"exit","cpu":1,"timestamp_ns":5,"pid":7,"exit_code":40,"signal":40}}`,
			fields.Record{Time: "t", Host: "h", Idx: fields.Some[int64](1), Val: fields.Some[int64](1),
				Proc: fields.Some(fields.Proc{Event: "exit", CPU: 1, TimestampNs: 5, PID: fields.Some[int64](7),
					ExitCode: fields.Some[int64](40), Signal: fields.Some(fields.Signal("40"))})}, "exit"},
		{"uid 0 is carried", `{"time":"t","host":"h","process":{"uid":0,"cmdline":[]}}`,
			fields.Record{Time: "t", Host: "h", Process: fields.Some(fields.Process{UID: fields.Some[int64](0), Cmdline: fields.Some([]string{})})}, "msg"},
		{"null is absent", `{"time":"t","host":"h","type":"gap","pids_allocated":null}`,
			fields.Record{Time: "t", Host: "h", Type: fields.Some("gap")}, "gap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fields.ParseStrict([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if e := got.Event(); e != tt.event {
				t.Errorf("Event() = %q, want %q", e, tt.event)
			}
			back, _ := json.Marshal(got)
			if again, err := fields.ParseStrict(back); err != nil || !cmp.Equal(again, got) {
				t.Errorf("marshal and parse again: %s, %v", back, err)
			}
		})
	}
}

func TestParseUnknownMembers(t *testing.T) {
	line := []byte(`{"time":"t","host":"h","newer":1,"process":{"exe":"/x","newer":2}}`)
	r, err := fields.Parse(line)
	if err != nil || r.Process.V.Exe.V != "/x" {
		t.Fatalf("Parse = %+v, %v; want a record with process.exe /x", r, err)
	}
	if _, err := fields.ParseStrict(line); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("ParseStrict error = %v, want one naming the unknown member", err)
	}
	if _, err := fields.Parse([]byte(`{"time":"t","proc":{"event":"exit","signal":-1}}`)); err == nil {
		t.Error("a negative signal parsed")
	}
}
